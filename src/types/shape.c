/*
 * shape.c -- the shape codec: a registered type or function as the value
 * a peer needs to fake it (its shape), and a peer's shape back into a
 * remo_type or remo__func marked remote.  doc/wire.md section 5 gives
 * the format:
 *
 *   a function  ("F", name, signature, doc)
 *   a type      ("T", name, base shape id or 0, doc,
 *                ((name, code, readonly), ...),
 *                ((name, signature, doc), ...))
 *
 * Which shapes a peer has been sent, and the table of the peer's shapes,
 * are the session's (it owns one of each per peer); this file only turns
 * shapes into values and back.  Everything a peer sends is checked here
 * before it becomes a type: tags, arities, kinds, signatures that must
 * parse, field codes no longer than 256 bytes, a base that must have come
 * first.  A malformed shape is REMO_EPROTO, and nothing of it is kept.
 */
#include "types/types.h"

#include <stdio.h>

/* ==== to a value ========================================================= */

static remo_value shape_func_value(const struct remo__func *f)
{
	return remo_tuple_of(4, remo_str("F"), remo_str(f->name),
	                     remo_str(f->sig.text), remo_str(f->doc));
}

static remo_value shape_code_str(const struct remo__param *p)
{
	char code[300];
	if (p->code == '<')
		snprintf(code, sizeof code, "<%s>", p->type_name);
	else
		snprintf(code, sizeof code, "%c", p->code);
	return remo_str(code);
}

static remo_value shape_type_value(const remo_type *t)
{
	remo_value fields = remo_tuple(t->nfields);
	remo_value methods = remo_tuple(t->nmethods);
	for (size_t i = 0; remo_ok(fields) && i < t->nfields; i++)
		remo_tuple_set(fields, i, remo_tuple_of(3,
			remo_str(t->fields[i].name), shape_code_str(&t->fields[i].p),
			remo_bool(t->fields[i].flags & REMO_READONLY)));
	for (size_t i = 0; remo_ok(methods) && i < t->nmethods; i++)
		remo_tuple_set(methods, i, remo_tuple_of(3,
			remo_str(t->methods[i].name),
			remo_str(t->methods[i].sig.text),
			remo_str(t->methods[i].doc)));
	return remo_tuple_of(6, remo_str("T"), remo_str(t->name),
	                     remo_int(t->base ? remo__type_out_id(t->base) : 0),
	                     remo_str(t->doc), fields, methods);
}

remo_value remo__shape_value(const void *p, bool is_type)
{
	return is_type ? shape_type_value(p) : shape_func_value(p);
}

/* ==== from a peer's value ================================================ */

void remo__shape_free(struct remo__shape *sh)
{
	if (sh->func != NULL) {
		remo__func_free(sh->func);
		remo__free(sh->func);
	}
	if (sh->type != NULL) {
		remo_type *t = sh->type;
		for (size_t i = 0; i < t->nfields; i++) {
			remo__free(t->fields[i].name);
			remo__free(t->fields[i].p.type_name);
		}
		for (size_t i = 0; i < t->nmethods; i++)
			remo__func_free(&t->methods[i]);
		remo__free(t->fields);
		remo__free(t->methods);
		remo__free(t->name);
		remo__free(t->doc);
		remo__free(t);
	}
	remo__free(sh);
}

static char *shape_strdup(remo_value v)
{
	size_t n;
	const char *p = remo_str_data(v, &n);
	if (p == NULL)
		return NULL;
	char *d = remo__malloc(n + 1);
	if (d != NULL)
		memcpy(d, p, n + 1);
	return d;
}

/* A function or a method from (name, signature, doc). */
static int shape_func_init(struct remo__func *f, remo_value name,
                           remo_value sig, remo_value doc, bool method)
{
	memset(f, 0, sizeof *f);
	if (name.kind != REMO_STR || sig.kind != REMO_STR || doc.kind != REMO_STR)
		return REMO_EPROTO;
	if (remo__sig_parse(&f->sig, remo_str_data(sig, NULL), method, false) !=
	    REMO_OK)
		return REMO_EPROTO;
	f->name = shape_strdup(name);
	f->doc = shape_strdup(doc);
	if (f->name == NULL || f->doc == NULL) {
		remo__func_free(f);
		return REMO_ENOMEM;
	}
	return REMO_OK;
}

/* ("F", name, signature, doc) */
static int shape_func_from(struct remo__shape *sh, uint32_t id, remo_value v)
{
	sh->func = remo__malloc(sizeof *sh->func);
	if (sh->func == NULL)
		return REMO_ENOMEM;
	int rc = shape_func_init(sh->func, remo_tuple_get(v, 1),
	                         remo_tuple_get(v, 2), remo_tuple_get(v, 3),
	                         false);
	if (rc != REMO_OK) {
		remo__free(sh->func);
		sh->func = NULL;
		return rc;
	}
	sh->func->shape_id = id;
	sh->func->fwd_shape_id = remo__next_shape_id();
	return REMO_OK;
}

/* One field, (name, code, readonly), into t->fields[t->nfields]: the code
 * is parsed as a signature's one parameter, so a field has exactly the
 * codes a parameter may have. */
static int shape_field_from(remo_type *t, remo_value f)
{
	struct remo__sig one;
	char text[300];
	const char *code = remo_str_data(remo_tuple_get(f, 1), NULL);
	if (remo_tuple_len(f) != 3 || code == NULL ||
	    remo_tuple_get(f, 0).kind != REMO_STR ||
	    remo_tuple_get(f, 2).kind != REMO_BOOL || strlen(code) > 256)
		return REMO_EPROTO;
	snprintf(text, sizeof text, "v(%s)", code);
	if (remo__sig_parse(&one, text, false, false) != REMO_OK)
		return REMO_EPROTO;
	if (one.nargs != 1) {
		remo__sig_free(&one);
		return REMO_EPROTO;
	}
	struct remo__field *fld = &t->fields[t->nfields];
	fld->name = shape_strdup(remo_tuple_get(f, 0));
	fld->p = one.args[0];
	one.args[0] = (struct remo__param){0};
	remo__sig_free(&one);
	fld->flags = remo_tuple_get(f, 2).as.b ? REMO_READONLY : 0;
	t->nfields++; /* counted before the check: shape_free frees it */
	return fld->name != NULL ? REMO_OK : REMO_ENOMEM;
}

/* ("T", name, base shape id or 0, doc, fields, methods) */
static int shape_type_from(struct remo__shape *sh, uint32_t id, remo_value v,
                           remo__shape_base_fn *base_of, void *ctx)
{
	remo_value name = remo_tuple_get(v, 1), base = remo_tuple_get(v, 2);
	remo_value doc = remo_tuple_get(v, 3);
	remo_value fields = remo_tuple_get(v, 4);
	remo_value methods = remo_tuple_get(v, 5);
	if (name.kind != REMO_STR || base.kind != REMO_INT ||
	    doc.kind != REMO_STR || fields.kind != REMO_TUPLE ||
	    methods.kind != REMO_TUPLE)
		return REMO_EPROTO;
	remo_type *t = remo__malloc(sizeof *t);
	if (t == NULL)
		return REMO_ENOMEM;
	memset(t, 0, sizeof *t);
	sh->type = t;
	t->remote = true;
	t->shape_id = id;
	t->fwd_shape_id = remo__next_shape_id();
	t->name = shape_strdup(name);
	t->doc = shape_strdup(doc);
	if (t->name == NULL || t->doc == NULL)
		return REMO_ENOMEM;
	if (base.as.i != 0) {
		/* bases come first: a base the peer has not sent is an error */
		t->base = base.as.i > 0 && base.as.i <= UINT32_MAX
		          ? base_of(ctx, (uint32_t)base.as.i) : NULL;
		if (t->base == NULL)
			return REMO_EPROTO;
	}
	size_t nf = remo_tuple_len(fields), nm = remo_tuple_len(methods);
	t->fields = nf ? remo__malloc(nf * sizeof *t->fields) : NULL;
	t->methods = nm ? remo__malloc(nm * sizeof *t->methods) : NULL;
	if ((nf && !t->fields) || (nm && !t->methods))
		return REMO_ENOMEM;
	for (size_t i = 0; i < nf; i++) {
		int rc = shape_field_from(t, remo_tuple_get(fields, i));
		if (rc != REMO_OK)
			return rc;
	}
	for (size_t i = 0; i < nm; i++) {
		remo_value m = remo_tuple_get(methods, i);
		if (remo_tuple_len(m) != 3)
			return REMO_EPROTO;
		int rc = shape_func_init(&t->methods[i], remo_tuple_get(m, 0),
		                         remo_tuple_get(m, 1), remo_tuple_get(m, 2),
		                         true);
		if (rc != REMO_OK)
			return rc;
		t->nmethods++;
	}
	return REMO_OK;
}

int remo__shape_from_value(uint32_t id, remo_value v,
                           remo__shape_base_fn *base_of, void *ctx,
                           struct remo__shape **out)
{
	struct remo__shape *sh = remo__malloc(sizeof *sh);
	if (sh == NULL)
		return REMO_ENOMEM;
	memset(sh, 0, sizeof *sh);
	const char *tag = remo_str_data(remo_tuple_get(v, 0), NULL);
	int rc = REMO_EPROTO;
	if (v.kind != REMO_TUPLE || tag == NULL)
		rc = REMO_EPROTO;
	else if (strcmp(tag, "F") == 0 && remo_tuple_len(v) == 4)
		rc = shape_func_from(sh, id, v);
	else if (strcmp(tag, "T") == 0 && remo_tuple_len(v) == 6)
		rc = shape_type_from(sh, id, v, base_of, ctx);
	if (rc != REMO_OK) {
		remo__shape_free(sh);
		return rc;
	}
	*out = sh;
	return REMO_OK;
}
