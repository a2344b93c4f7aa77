/*
 * pod.c -- the client of remo-pod (pod.h): the pod's proxy, and the
 * server's functions looked up once each, on first use.
 */
#include "pod.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pod {
	remo_session *s;
	remo_value dict;
	pthread_mutex_t lock;
	remo_value fns; /* name -> proxy */
};

pod *pod_connect(const char *url, const remo_session_opts *opts, int *rc)
{
	pod *p = calloc(1, sizeof *p);
	int st = p == NULL ? REMO_ENOMEM
	                   : remo_connect(url, 10000, NULL, opts, &p->s);
	if (st == REMO_OK)
		st = remo_lookup(p->s, "pod", &p->dict);
	if (rc != NULL)
		*rc = st;
	if (st != REMO_OK) {
		if (p != NULL)
			remo_session_free(p->s);
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->fns = remo_dict();
	return p;
}

void pod_close(pod *p)
{
	if (p == NULL)
		return;
	remo_value_release(p->fns);
	remo_value_release(p->dict);
	pthread_mutex_destroy(&p->lock);
	remo_session_free(p->s);
	free(p);
}

remo_value pod_dict(pod *p)
{
	return p->dict;
}

/* What crosses into the pod: lists and dicts by value. */
static remo_value data(remo_value v)
{
	return v.kind == REMO_LIST || v.kind == REMO_DICT || v.kind == REMO_TUPLE
	       ? remo_by_value(v) : remo_value_retain(v);
}

int pod_set(pod *p, remo_value key, remo_value v)
{
	remo_value x = data(v);
	if (!remo_ok(x)) /* remo_by_value said why in remo_last_error */
		return remo_error_isa(remo_last_error(), "RecursionError")
		       ? REMO_EDEPTH : REMO_ENOMEM;
	int rc = remo_setitem(p->dict, key, x);
	remo_value_release(x);
	return rc;
}

int pod_get(pod *p, remo_value key, remo_value *out)
{
	return remo_getitem(p->dict, key, out);
}

int pod_call(pod *p, const char *fn, remo_value args, remo_value *out)
{
	pthread_mutex_lock(&p->lock);
	remo_value f = remo_nil();
	if (remo_dict_get_str(p->fns, fn, &f) == REMO_OK)
		f = remo_value_retain(f);
	pthread_mutex_unlock(&p->lock);
	int rc = REMO_OK;
	if (f.kind == REMO_NIL) {
		rc = remo_lookup(p->s, fn, &f);
		if (rc != REMO_OK)
			return rc;
		pthread_mutex_lock(&p->lock);
		remo_dict_set_str(p->fns, fn, remo_value_retain(f));
		pthread_mutex_unlock(&p->lock);
	}
	remo_value r;
	rc = remo_call(f, args, &r);
	remo_value_release(f);
	if (rc == REMO_OK && out != NULL)
		*out = r;
	else if (rc == REMO_OK)
		remo_value_release(r);
	return rc;
}

int pod_call1(pod *p, const char *fn, remo_value arg, remo_value *out)
{
	remo_value args = remo_tuple_of(1, data(arg));
	int rc = pod_call(p, fn, args, out);
	remo_value_release(args);
	return rc;
}

int pod_try_key(pod *p, remo_value *key, remo_value *task)
{
	remo_value r;
	int rc = pod_call(p, "try_key", remo_nil(), &r);
	if (rc != REMO_OK)
		return rc;
	if (r.kind != REMO_TUPLE) {
		remo_value_release(r);
		return REMO_ENOTFOUND;
	}
	*key = remo_value_retain(remo_tuple_get(r, 0));
	*task = remo_value_retain(remo_tuple_get(r, 1));
	remo_value_release(r);
	return REMO_OK;
}
