/*
 * closure.c -- remote (or local) callables as real C function pointers
 * (remo_closure), and ops structs filled with them (remo_ops).
 *
 * The function pointer is types/cfn.c's: a libffi closure that converts
 * C arguments to values and the result back.  What its calls do is
 * decided here: remo_call on the callable, one round trip if it is a
 * proxy.  A failed call returns zero to its C caller and leaves its
 * status for remo_closure_status() and its error in remo_last_error().
 */
#include "api/api.h"

struct remo_closure {
	remo_value fn;          /* retained */
	struct remo__cfn *cfn;
};

int remo_closure_status(void)
{
	return remo__cfn_status();
}

/* A call through the function pointer: a call of the callable. */
static int closure_call(void *user, remo_value args, remo_value *out)
{
	const struct remo_closure *c = user;
	return remo_call(c->fn, args, out);
}

remo_closure *remo_closure_new(remo_value fn, const char *sig, int *status)
{
	int rc = REMO_OK;
	struct remo_closure *c = NULL;
	if (fn.kind != REMO_CALLABLE || sig == NULL)
		rc = REMO_EINVAL;
	else if ((c = remo__malloc(sizeof *c)) == NULL)
		rc = REMO_ENOMEM;
	else if ((rc = remo__cfn_new(sig, closure_call, c, &c->cfn)) != REMO_OK)
		remo__free(c);
	else
		c->fn = remo_value_retain(fn);
	if (rc != REMO_OK)
		c = NULL;
	if (status != NULL)
		*status = rc;
	return c;
}

void (*remo_closure_fn(const remo_closure *c))(void)
{
	return c ? remo__cfn_code(c->cfn) : NULL;
}

void remo_closure_free(remo_closure *c)
{
	if (c == NULL)
		return;
	remo__cfn_free(c->cfn);
	remo_value_release(c->fn);
	remo__free(c);
}

/* ==== ops structs ====================================================== */

struct remo_ops {
	size_t n;
	remo_closure *closures[];
};

remo_ops *remo_ops_fill(remo_value obj, const remo_ops_slot *slots, size_t n,
                        void (**table)(void), int *status)
{
	int rc = REMO_OK;
	remo_ops *ops = remo__malloc(sizeof *ops + n * sizeof ops->closures[0]);
	if (ops == NULL) {
		rc = REMO_ENOMEM;
		goto out;
	}
	ops->n = 0;
	for (size_t i = 0; i < n; i++) {
		remo_value m;
		rc = remo_getattr(obj, slots[i].name, &m);
		if (rc != REMO_OK)
			break;
		remo_closure *c = m.kind == REMO_CALLABLE
		                  ? remo_closure_new(m, slots[i].sig, &rc) : NULL;
		if (m.kind != REMO_CALLABLE)
			rc = remo__raisef("TypeError", "'%s' is not a method",
			                  slots[i].name);
		remo_value_release(m);
		if (c == NULL)
			break;
		ops->closures[ops->n++] = c;
		table[i] = remo_closure_fn(c);
	}
	if (rc != REMO_OK) {
		remo_ops_free(ops);
		ops = NULL;
	}
out:
	if (status != NULL)
		*status = rc;
	return ops;
}

void remo_ops_free(remo_ops *ops)
{
	if (ops == NULL)
		return;
	for (size_t i = 0; i < ops->n; i++)
		remo_closure_free(ops->closures[i]);
	remo__free(ops);
}
