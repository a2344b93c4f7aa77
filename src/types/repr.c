/*
 * repr.c -- remo_repr, a debugging notation for values.
 *
 * Python's notation, because remo's model is Python's and so are most of
 * the people who will read these lines in a log: nil, true, 42, 1.5,
 * "text", b"\x00", (1,), [1, 2], {"k": 1}, KeyError("no such key"),
 * <object #7>.  Nesting past REMO_MAX_DEPTH prints "...", which also
 * keeps a list that contains itself from recursing forever.
 */
#include "types/types.h"

#include <math.h>
#include <stdio.h>

static int repr_put(remo_buf *b, const char *s, size_t n)
{
	int rc = remo__buf_grow(b, n);
	if (rc == REMO_OK) {
		memcpy(b->data + b->len, s, n);
		b->len += n;
	}
	return rc;
}

static int repr_puts(remo_buf *b, const char *s)
{
	return repr_put(b, s, strlen(s));
}

static int repr_quoted(remo_buf *b, const char *p, size_t n, bool bytes)
{
	int rc = repr_puts(b, bytes ? "b\"" : "\"");
	for (size_t i = 0; rc == REMO_OK && i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			rc = repr_put(b, esc, 2);
		} else if (c == '\n') {
			rc = repr_puts(b, "\\n");
		} else if (c == '\t') {
			rc = repr_puts(b, "\\t");
		} else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80)) {
			snprintf(esc, sizeof esc, "\\x%02x", c);
			rc = repr_puts(b, esc);
		} else {
			rc = repr_put(b, (const char *)&c, 1);
		}
	}
	return rc == REMO_OK ? repr_puts(b, "\"") : rc;
}

static int repr_value(remo_buf *b, remo_value v, unsigned depth)
{
	char num[64];
	int rc = REMO_OK;

	if (depth > REMO_MAX_DEPTH)
		return repr_puts(b, "...");
	switch (v.kind) {
	case REMO_NIL:
		return repr_puts(b, "nil");
	case REMO_BOOL:
		return repr_puts(b, v.as.b ? "true" : "false");
	case REMO_INT:
		snprintf(num, sizeof num, "%lld", (long long)v.as.i);
		return repr_puts(b, num);
	case REMO_DOUBLE:
		if (isnan(v.as.d))
			return repr_puts(b, "nan");
		if (isinf(v.as.d))
			return repr_puts(b, v.as.d > 0 ? "inf" : "-inf");
		/* %.17g round-trips; add ".0" so 1.0 does not read as an int. */
		snprintf(num, sizeof num, "%.17g", v.as.d);
		if (strpbrk(num, ".e") == NULL)
			strcat(num, ".0");
		return repr_puts(b, num);
	case REMO_STR:
	case REMO_BYTES:
		return repr_quoted(b, remo__str_ptr(REMO__STR(v)), REMO__STR(v)->len,
		                   v.kind == REMO_BYTES);
	case REMO_TUPLE:
	case REMO_LIST: {
		bool tuple = v.kind == REMO_TUPLE;
		/* a list is shown as it was at one instant */
		remo_value list = tuple ? remo_nil() : remo_list_copy(v);
		if (!tuple && !remo_ok(list))
			return REMO_ENOMEM;
		size_t n = tuple ? remo_tuple_len(v) : remo_list_len(list);
		rc = repr_puts(b, tuple ? "(" : "[");
		for (size_t i = 0; rc == REMO_OK && i < n; i++) {
			if (i > 0)
				rc = repr_puts(b, ", ");
			if (rc == REMO_OK)
				rc = repr_value(b, tuple ? remo_tuple_get(v, i)
				                         : remo_list_get(list, i),
				                depth + 1);
		}
		remo_value_release(list);
		if (rc == REMO_OK && tuple && n == 1)
			rc = repr_puts(b, ",");
		return rc == REMO_OK ? repr_puts(b, tuple ? ")" : "]") : rc;
	}
	case REMO_DICT: {
		size_t pos = 0;
		remo_value k, val;
		bool first = true;
		remo_value d = remo_dict_copy(v); /* as it was at one instant */
		if (!remo_ok(d))
			return REMO_ENOMEM;
		rc = repr_puts(b, "{");
		while (rc == REMO_OK && remo_dict_next(d, &pos, &k, &val)) {
			if (!first)
				rc = repr_puts(b, ", ");
			first = false;
			if (rc == REMO_OK)
				rc = repr_value(b, k, depth + 1);
			if (rc == REMO_OK)
				rc = repr_puts(b, ": ");
			if (rc == REMO_OK)
				rc = repr_value(b, val, depth + 1);
		}
		remo_value_release(d);
		return rc == REMO_OK ? repr_puts(b, "}") : rc;
	}
	case REMO_ERROR: {
		const struct remo__error *e = REMO__ERROR(v);
		rc = repr_puts(b, remo_error_name(v));
		if (rc == REMO_OK)
			rc = repr_puts(b, "(");
		if (rc == REMO_OK)
			rc = repr_value(b, e->message, depth + 1);
		if (rc == REMO_OK && remo_dict_len(e->attrs) != 0) {
			rc = repr_puts(b, ", ");
			if (rc == REMO_OK)
				rc = repr_value(b, e->attrs, depth + 1);
		}
		return rc == REMO_OK ? repr_puts(b, ")") : rc;
	}
	case REMO_OBJECT:
	case REMO_CALLABLE:
	case REMO_FRAME:
	case REMO_TRACEBACK: {
		/* <Calc proxy #1>, <Calc object>, <function add>, <object #7> */
		const struct remo__ref *r = REMO__REF(v);
		char text[160];
		const char *what = remo__is_objlike(v.kind) && r->type
		                   ? r->type->name
		                   : v.kind == REMO_CALLABLE && r->func
		                           ? (r->self.kind != REMO_NIL ? "method"
		                                                       : "function")
		                           : remo_kind_name(v.kind);
		if (v.kind == REMO_CALLABLE && r->func)
			snprintf(text, sizeof text, "<%s %s%s>", what, r->func->name,
			         remo_is_proxy(v) ? " proxy" : "");
		else if (r->owner != NULL)
			snprintf(text, sizeof text, "<%s proxy #%llu>", what,
			         (unsigned long long)r->id);
		else if (r->id == 0)
			snprintf(text, sizeof text, "<%s object>", what);
		else
			snprintf(text, sizeof text, "<%s #%llu%s>", what,
			         (unsigned long long)r->id, r->home ? " home" : "");
		return repr_puts(b, text);
	}
	default:
		return repr_puts(b, "<invalid>");
	}
}

char *remo_repr(remo_value v)
{
	remo_buf b = {0};
	if (repr_value(&b, v, 0) != REMO_OK || repr_put(&b, "", 1) != REMO_OK) {
		remo_buf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}
