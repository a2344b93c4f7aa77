/*
 * remo -- look at a running remo server from a shell (remo(1)).
 *
 *   remo [options] URL                      the exports, with their types
 *   remo [options] URL describe PATH        fields, methods, signatures
 *   remo [options] URL call PATH [ARG...]   call a function or method
 *   remo [options] URL get PATH             read a value (a field, an item)
 *   remo [options] URL set PATH VALUE       write a field or an item
 *
 * PATH is an export's name followed by .field or .method and [index]
 * parts: calc, calc.acc, calc.history[-1], config["name"].  ARG and
 * VALUE are literals (doc/man/remo.1): JSON (null, true, 1, 2.5, "s",
 * [..], {..}) plus (a, b) tuples, b"..." bytes, and a bare word as a
 * string.  --json prints JSON for scripts; errors print by name with the
 * remote traceback's frames.  Exit status: 0, 1 (the call failed: a
 * remote error), 2 (usage, a literal that does not parse), 3 (could not
 * connect).
 */
#define _GNU_SOURCE
#include <remo/remo.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool json;

/* ---- literals ------------------------------------------------------------ */

struct lit {
	const char *p;
	const char *err;
};

static remo_value lit_value(struct lit *l, unsigned depth);

static void lit_ws(struct lit *l)
{
	while (isspace((unsigned char)*l->p))
		l->p++;
}

static remo_value lit_fail(struct lit *l, const char *why)
{
	if (l->err == NULL)
		l->err = why;
	return (remo_value){.kind = REMO_INVALID};
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* UTF-8 of code point cp into out; its length. */
static size_t utf8_put(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static bool hex4(const char *p, unsigned *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return false;
		*out = *out << 4 | (unsigned)h;
	}
	return true;
}

/* A quoted string (JSON escapes; bytes: \xHH too) after the quote. */
static remo_value lit_string(struct lit *l, bool bytes)
{
	size_t cap = strlen(l->p) + 1, n = 0;
	char *buf = malloc(cap * 2 + 8);
	if (buf == NULL)
		return lit_fail(l, "out of memory");
	for (;;) {
		char c = *l->p++;
		if (c == '\0') {
			free(buf);
			return lit_fail(l, "a string without its closing quote");
		}
		if (c == '"')
			break;
		if (c != '\\') {
			buf[n++] = c;
			continue;
		}
		char e = *l->p;
		if (e == '\0') { /* a backslash last: keep p on the NUL */
			free(buf);
			return lit_fail(l, "a string without its closing quote");
		}
		l->p++;
		unsigned cp;
		switch (e) {
		case '"': buf[n++] = '"'; break;
		case '\\': buf[n++] = '\\'; break;
		case '/': buf[n++] = '/'; break;
		case 'b': buf[n++] = '\b'; break;
		case 'f': buf[n++] = '\f'; break;
		case 'n': buf[n++] = '\n'; break;
		case 'r': buf[n++] = '\r'; break;
		case 't': buf[n++] = '\t'; break;
		case 'x':
			if (!bytes || hexval(l->p[0]) < 0 || hexval(l->p[1]) < 0) {
				free(buf);
				return lit_fail(l, "\\xHH is for bytes (b\"...\")");
			}
			buf[n++] = (char)(hexval(l->p[0]) << 4 | hexval(l->p[1]));
			l->p += 2;
			break;
		case 'u':
			if (bytes || !hex4(l->p, &cp)) {
				free(buf);
				return lit_fail(l, "\\u needs four hex digits "
				                "(in a string)");
			}
			l->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
				unsigned lo;
				if (l->p[0] != '\\' || l->p[1] != 'u' ||
				    !hex4(l->p + 2, &lo) || lo < 0xdc00 ||
				    lo >= 0xe000) {
					free(buf);
					return lit_fail(l, "a lone surrogate");
				}
				l->p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				free(buf);
				return lit_fail(l, "a lone surrogate");
			}
			n += utf8_put(buf + n, cp);
			break;
		default:
			free(buf);
			return lit_fail(l, "an unknown escape");
		}
	}
	remo_value v = bytes ? remo_bytes(buf, n) : remo_strn(buf, n);
	free(buf);
	if (!remo_ok(v))
		return lit_fail(l, "out of memory");
	return v;
}

static remo_value lit_number(struct lit *l)
{
	const char *s = l->p;
	char *end;
	bool real = false;
	const char *q = s + (*s == '-' || *s == '+');
	if (strncmp(q, "inf", 3) == 0 || strncmp(q, "nan", 3) == 0)
		real = true;
	for (const char *x = q; isalnum((unsigned char)*x) || *x == '.' ||
	     ((*x == '-' || *x == '+') && (x[-1] == 'e' || x[-1] == 'E'));
	     x++)
		if (*x == '.' || *x == 'e' || *x == 'E')
			real = true;
	errno = 0;
	if (!real) {
		long long i = strtoll(s, &end, 10);
		if (end != s && errno == 0) {
			l->p = end;
			return remo_int(i);
		}
		if (errno == ERANGE)
			return lit_fail(l, "an integer past 64 bits");
	}
	double d = strtod(s, &end);
	if (end == s)
		return lit_fail(l, "not a literal");
	l->p = end;
	return remo_double(d);
}

/* Items up to close: a list, a tuple or a dict's. */
static remo_value lit_items(struct lit *l, char close, remo_kind kind,
                            unsigned depth)
{
	remo_value c = kind == REMO_DICT ? remo_dict() : remo_list();
	bool comma = false; /* (a,) is a tuple of one */
	lit_ws(l);
	while (*l->p != close) {
		remo_value k = lit_value(l, depth + 1), v = remo_nil();
		lit_ws(l);
		if (remo_ok(k) && kind == REMO_DICT) {
			if (*l->p != ':') {
				remo_value_release(k);
				remo_value_release(c);
				return lit_fail(l, "a dict item needs ':'");
			}
			l->p++;
			v = lit_value(l, depth + 1);
			lit_ws(l);
		}
		if (!remo_ok(k) || !remo_ok(v)) {
			remo_value_release(k);
			remo_value_release(v);
			remo_value_release(c);
			return lit_fail(l, "a bad item");
		}
		int rc = kind == REMO_DICT ? remo_dict_set(c, k, v)
		                           : remo_list_append(c, k);
		if (rc != REMO_OK) {
			remo_value_release(c);
			return lit_fail(l, rc == REMO_EUNHASHABLE
			                ? "an unhashable dict key" : "a bad item");
		}
		comma = *l->p == ',';
		if (comma) {
			l->p++;
			lit_ws(l);
		} else if (*l->p != close) {
			remo_value_release(c);
			return lit_fail(l, "items are separated by ','");
		}
	}
	l->p++;
	if (kind != REMO_TUPLE)
		return c;
	size_t n = remo_list_len(c);
	if (n == 1 && !comma) { /* (x): just x, as in Python */
		remo_value x = remo_list_get(c, 0);
		x = remo_value_retain(x);
		remo_value_release(c);
		return x;
	}
	remo_value t = remo_tuple(n);
	for (size_t i = 0; remo_ok(t) && i < n; i++)
		remo_tuple_set(t, i, remo_value_retain(remo_list_get(c, i)));
	remo_value_release(c);
	return t;
}

static remo_value lit_value(struct lit *l, unsigned depth)
{
	if (depth > REMO_MAX_DEPTH)
		return lit_fail(l, "nested too deep");
	lit_ws(l);
	const char *p = l->p;
	if (*p == '"') {
		l->p++;
		return lit_string(l, false);
	}
	if (p[0] == 'b' && p[1] == '"') {
		l->p += 2;
		return lit_string(l, true);
	}
	if (*p == '[' || *p == '(' || *p == '{') {
		l->p++;
		return lit_items(l, *p == '[' ? ']' : *p == '(' ? ')' : '}',
		                 *p == '[' ? REMO_LIST : *p == '('
		                 ? REMO_TUPLE : REMO_DICT, depth);
	}
	static const struct {
		const char *word;
		remo_value v;
	} words[] = {
		{"null", {.kind = REMO_NIL}}, {"nil", {.kind = REMO_NIL}},
		{"true", {.kind = REMO_BOOL, .as.b = true}},
		{"false", {.kind = REMO_BOOL, .as.b = false}},
	};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		size_t n = strlen(words[i].word);
		if (strncmp(p, words[i].word, n) == 0 &&
		    !isalnum((unsigned char)p[n]) && p[n] != '_') {
			l->p += n;
			return words[i].v;
		}
	}
	if (isdigit((unsigned char)*p) || *p == '-' || *p == '+' ||
	    *p == '.' || strncmp(p, "inf", 3) == 0 || strncmp(p, "nan", 3) == 0)
		return lit_number(l);
	return lit_fail(l, "not a literal");
}

/* A command-line argument: a literal, or, if it is not one and starts
 * with a letter, the word itself as a string. */
static remo_value parse_arg(const char *arg)
{
	struct lit l = {arg, NULL};
	remo_value v = lit_value(&l, 0);
	lit_ws(&l);
	if (remo_ok(v) && *l.p == '\0')
		return v;
	remo_value_release(v);
	if (isalpha((unsigned char)arg[0]) || arg[0] == '_' || arg[0] == '/')
		return remo_str(arg);
	fprintf(stderr, "remo: '%s': %s\n", arg, l.err ? l.err
	        : "text after the literal");
	exit(2);
}

/* ---- printing ------------------------------------------------------------ */

static void json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_cstr(FILE *f, const char *s)
{
	json_str(f, s ? s : "", s ? strlen(s) : 0);
}

/* Lists and dicts of the peer's: a copy, to print. */
static remo_value printable(remo_value v)
{
	remo_value c;
	const char *t = remo_type_name(v);
	if (remo_is_proxy(v) && (strcmp(t, "list") == 0 ||
	                         strcmp(t, "dict") == 0) &&
	    remo_force(v, &c) == REMO_OK)
		return c;
	return remo_value_retain(v);
}

static void json_value(FILE *f, remo_value v, unsigned depth)
{
	if (depth > REMO_MAX_DEPTH) {
		fputs("null", f);
		return;
	}
	v = printable(v);
	size_t n;
	const char *s;
	switch (v.kind) {
	case REMO_NIL: fputs("null", f); break;
	case REMO_BOOL: fputs(v.as.b ? "true" : "false", f); break;
	case REMO_INT: fprintf(f, "%lld", (long long)v.as.i); break;
	case REMO_DOUBLE:
		if (isfinite(v.as.d))
			fprintf(f, "%.17g", v.as.d);
		else
			json_cstr(f, isnan(v.as.d) ? "nan"
			             : v.as.d > 0 ? "inf" : "-inf");
		break;
	case REMO_STR:
		s = remo_str_data(v, &n);
		json_str(f, s, n);
		break;
	case REMO_BYTES: {
		const unsigned char *b = remo_bytes_data(v, &n);
		fputs("{\"bytes\": \"", f);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%02x", b[i]);
		fputs("\"}", f);
		break;
	}
	case REMO_TUPLE:
	case REMO_LIST:
		n = v.kind == REMO_TUPLE ? remo_tuple_len(v) : remo_list_len(v);
		fputc('[', f);
		for (size_t i = 0; i < n; i++) {
			if (i)
				fputs(", ", f);
			json_value(f, v.kind == REMO_TUPLE ? remo_tuple_get(v, i)
			                                   : remo_list_get(v, i),
			           depth + 1);
		}
		fputc(']', f);
		break;
	case REMO_DICT: {
		size_t pos = 0;
		remo_value k, x;
		bool strs = true;
		while (remo_dict_next(v, &pos, &k, &x))
			strs = strs && k.kind == REMO_STR;
		fputs(strs ? "{" : "{\"items\": [", f);
		pos = 0;
		for (bool first = true; remo_dict_next(v, &pos, &k, &x);
		     first = false) {
			fputs(first ? "" : ", ", f);
			if (!strs)
				fputc('[', f);
			json_value(f, k, depth + 1);
			fputs(strs ? ": " : ", ", f);
			json_value(f, x, depth + 1);
			if (!strs)
				fputc(']', f);
		}
		fputs(strs ? "}" : "]}", f);
		break;
	}
	case REMO_ERROR:
		fputs("{\"error\": ", f);
		json_cstr(f, remo_error_name(v));
		fputs(", \"message\": ", f);
		json_cstr(f, remo_error_message(v));
		fputc('}', f);
		break;
	default:
		fputs("{\"object\": ", f);
		json_cstr(f, remo_type_name(v));
		fputc('}', f);
		break;
	}
	remo_value_release(v);
}

static void print_value(remo_value v)
{
	if (json) {
		fputs("{\"result\": ", stdout);
		json_value(stdout, v, 0);
		fputs("}\n", stdout);
		return;
	}
	remo_value p = printable(v);
	char *r = remo_repr(p);
	printf("%s\n", r ? r : "?");
	remo_free(r);
	remo_value_release(p);
}

/* e by name, and its traceback's frames (function, file, line): on
 * stderr, or as JSON on stdout. */
static void print_error(remo_value e)
{
	FILE *o = json ? stdout : stderr;
	remo_value tb = remo_error_traceback(e), fl = remo_nil(), frames;
	bool have = tb.kind != REMO_NIL &&
	            remo_call_method(tb, "frames", remo_nil(), &fl) == REMO_OK &&
	            remo_force(fl, &frames) == REMO_OK;
	remo_value_release(fl);
	if (json) {
		fputs("{\"error\": {\"name\": ", o);
		json_cstr(o, remo_error_name(e));
		fputs(", \"message\": ", o);
		json_cstr(o, remo_error_message(e));
		fputs(", \"traceback\": [", o);
	} else {
		fprintf(o, "%s: %s\n", remo_error_name(e), remo_error_message(e));
		if (have)
			fprintf(o, "remote traceback, innermost first:\n");
	}
	for (size_t i = 0; have && i < remo_list_len(frames); i++) {
		remo_value fr = remo_list_get(frames, i), fn, file, line;
		if (remo_getattr(fr, "function", &fn) != REMO_OK)
			fn = remo_nil();
		if (remo_getattr(fr, "file", &file) != REMO_OK)
			file = remo_nil();
		if (remo_getattr(fr, "line", &line) != REMO_OK)
			line = remo_nil();
		const char *fs = remo_str_data(fn, NULL), *ff = remo_str_data(file,
		                                                               NULL);
		if (json) {
			fputs(i ? ", {\"function\": " : "{\"function\": ", o);
			json_cstr(o, fs);
			fputs(", \"file\": ", o);
			json_cstr(o, ff);
			fprintf(o, ", \"line\": %lld}", line.kind == REMO_INT
			       ? (long long)line.as.i : 0LL);
		} else {
			fprintf(o, "  %s (%s:%lld)\n", fs ? fs : "?", ff ? ff : "?",
			       line.kind == REMO_INT ? (long long)line.as.i : 0LL);
		}
		remo_value_release(fn);
		remo_value_release(file);
		remo_value_release(line);
	}
	if (have)
		remo_value_release(frames);
	if (json)
		fputs("]}}\n", o);
}

/* ---- paths --------------------------------------------------------------- */

enum { SEG_ATTR, SEG_ITEM };
struct seg {
	int kind;
	char name[256];
	remo_value key;
};

#define MAX_SEGS 32

/* Splits PATH into its export name (segs[0]) and .attr / [literal] parts. */
static size_t parse_path(const char *path, struct seg *segs)
{
	size_t n = 0;
	const char *p = path;
	while (*p != '\0') {
		if (n == MAX_SEGS)
			goto bad;
		if (n > 0 && *p == '[') {
			struct lit l = {p + 1, NULL};
			remo_value k = lit_value(&l, 0);
			lit_ws(&l);
			if (!remo_ok(k) || *l.p != ']')
				goto bad;
			segs[n].kind = SEG_ITEM;
			segs[n++].key = k;
			p = l.p + 1;
			continue;
		}
		if (n > 0) {
			if (*p != '.')
				goto bad;
			p++;
		}
		size_t len = strcspn(p, ".[");
		if (len == 0 || len >= sizeof segs[0].name)
			goto bad;
		segs[n].kind = SEG_ATTR;
		memcpy(segs[n].name, p, len);
		segs[n].name[len] = '\0';
		segs[n++].key = remo_nil();
		p += len;
	}
	if (n > 0)
		return n;
bad:
	fprintf(stderr, "remo: '%s' is not a path (NAME, NAME.field, "
	        "NAME[index]...)\n", path);
	exit(2);
}

/* The value at segs[0..n): a lookup, then getattr / getitem. */
static int resolve(remo_session *s, const struct seg *segs, size_t n,
                   remo_value *out)
{
	int rc = remo_lookup(s, segs[0].name, out);
	for (size_t i = 1; i < n && rc == REMO_OK; i++) {
		remo_value next;
		rc = segs[i].kind == SEG_ATTR
		     ? remo_getattr(*out, segs[i].name, &next)
		     : remo_getitem(*out, segs[i].key, &next);
		remo_value_release(*out);
		*out = rc == REMO_OK ? next : remo_nil();
	}
	return rc;
}

/* ---- commands ------------------------------------------------------------ */

static void print_describe(const char *name, remo_value d)
{
	if (json) {
		fputs("{\"name\": ", stdout);
		json_cstr(stdout, name);
		fputs(", \"describe\": ", stdout);
		json_value(stdout, d, 0);
		fputs("}\n", stdout);
		return;
	}
	remo_value x;
	remo_dict_get_str(d, "kind", &x);
	const char *kind = remo_str_data(x, NULL);
	if (strcmp(kind, "function") == 0) {
		remo_value sig, doc;
		remo_dict_get_str(d, "signature", &sig);
		remo_dict_get_str(d, "doc", &doc);
		printf("%s: function %s\n", name, remo_str_data(sig, NULL));
		if (*remo_str_data(doc, NULL))
			printf("  %s\n", remo_str_data(doc, NULL));
		return;
	}
	if (strcmp(kind, "object") != 0) {
		printf("%s: %s\n", name, kind);
		return;
	}
	remo_value type, doc, bases, fields, methods;
	remo_dict_get_str(d, "type", &type);
	remo_dict_get_str(d, "doc", &doc);
	remo_dict_get_str(d, "bases", &bases);
	remo_dict_get_str(d, "fields", &fields);
	remo_dict_get_str(d, "methods", &methods);
	printf("%s: %s", name, remo_str_data(type, NULL));
	for (size_t i = 0; i < remo_tuple_len(bases); i++)
		printf("%s%s", i ? ", " : " (a ",
		       remo_str_data(remo_tuple_get(bases, i), NULL));
	printf("%s\n", remo_tuple_len(bases) ? ")" : "");
	if (*remo_str_data(doc, NULL))
		printf("  %s\n", remo_str_data(doc, NULL));
	if (remo_tuple_len(fields))
		printf("fields:\n");
	for (size_t i = 0; i < remo_tuple_len(fields); i++) {
		remo_value f = remo_tuple_get(fields, i);
		printf("  %-16s %s%s\n", remo_str_data(remo_tuple_get(f, 0), NULL),
		       remo_str_data(remo_tuple_get(f, 1), NULL),
		       remo_tuple_get(f, 2).as.b ? "  (read-only)" : "");
	}
	if (remo_tuple_len(methods))
		printf("methods:\n");
	for (size_t i = 0; i < remo_tuple_len(methods); i++) {
		remo_value m = remo_tuple_get(methods, i);
		const char *mdoc = remo_str_data(remo_tuple_get(m, 2), NULL);
		printf("  %-16s %s%s%s\n",
		       remo_str_data(remo_tuple_get(m, 0), NULL),
		       remo_str_data(remo_tuple_get(m, 1), NULL),
		       *mdoc ? "  " : "", mdoc);
	}
}

static int cmd_list(remo_session *s)
{
	remo_value names;
	int rc = remo_lookup_names(s, &names);
	if (rc != REMO_OK)
		return rc;
	if (json)
		fputs("[", stdout);
	bool first = true;
	for (size_t i = 0; i < remo_tuple_len(names); i++) {
		const char *name = remo_str_data(remo_tuple_get(names, i), NULL);
		remo_value v, d, x;
		if (name == NULL || remo_lookup(s, name, &v) != REMO_OK)
			continue; /* gone since listed, or not to be named */
		if (remo_describe(v, &d) != REMO_OK ||
		    remo_dict_get_str(d, "kind", &x) != REMO_OK ||
		    remo_str_data(x, NULL) == NULL) {
			remo_value_release(v);
			continue;
		}
		const char *kind = remo_str_data(x, NULL);
		const char *what = remo_type_name(v);
		if (strcmp(kind, "function") == 0 &&
		    remo_dict_get_str(d, "signature", &x) == REMO_OK)
			what = remo_str_data(x, NULL);
		if (json) {
			fputs(first ? "{\"name\": " : ", {\"name\": ", stdout);
			first = false;
			json_cstr(stdout, name);
			fputs(", \"kind\": ", stdout);
			json_cstr(stdout, kind);
			fputs(", \"type\": ", stdout);
			json_cstr(stdout, what);
			fputs("}", stdout);
		} else {
			printf("%-20s %-9s %s\n", name, kind, what);
		}
		remo_value_release(d);
		remo_value_release(v);
	}
	if (json)
		fputs("]\n", stdout);
	remo_value_release(names);
	return REMO_OK;
}

static int run(remo_session *s, const char *cmd, int argc, char **argv)
{
	if (cmd == NULL || strcmp(cmd, "list") == 0)
		return cmd_list(s);
	if (argc < 1) {
		fprintf(stderr, "remo: %s needs a PATH\n", cmd);
		exit(2);
	}
	struct seg segs[MAX_SEGS];
	size_t n = parse_path(argv[0], segs);
	remo_value target = remo_nil(), out = remo_nil();
	int rc;
	if (strcmp(cmd, "describe") == 0 || strcmp(cmd, "get") == 0) {
		if (argc != 1) {
			fprintf(stderr, "remo: %s takes one PATH\n", cmd);
			exit(2);
		}
		rc = resolve(s, segs, n, &target);
		if (rc == REMO_OK && cmd[0] == 'd') {
			remo_value d;
			rc = remo_describe(target, &d);
			if (rc == REMO_OK)
				print_describe(argv[0], d);
			remo_value_release(d);
		} else if (rc == REMO_OK) {
			print_value(target);
		}
	} else if (strcmp(cmd, "call") == 0) {
		remo_value args = remo_tuple((size_t)argc - 1);
		for (int i = 1; i < argc; i++)
			remo_tuple_set(args, (size_t)i - 1, parse_arg(argv[i]));
		bool method = n > 1 && segs[n - 1].kind == SEG_ATTR;
		rc = resolve(s, segs, method ? n - 1 : n, &target);
		if (rc == REMO_OK)
			rc = method ? remo_call_method(target, segs[n - 1].name,
			                               args, &out)
			            : remo_call(target, args, &out);
		if (rc == REMO_OK)
			print_value(out);
		remo_value_release(args);
	} else if (strcmp(cmd, "set") == 0) {
		if (argc != 2 || n < 2) {
			fprintf(stderr, "remo: set takes NAME.field (or "
			        "NAME[key]) and a VALUE\n");
			exit(2);
		}
		remo_value v = parse_arg(argv[1]);
		rc = resolve(s, segs, n - 1, &target);
		if (rc == REMO_OK)
			rc = segs[n - 1].kind == SEG_ATTR
			     ? remo_setattr(target, segs[n - 1].name, v)
			     : remo_setitem(target, segs[n - 1].key, v);
		if (rc == REMO_OK && json)
			fputs("{\"result\": null}\n", stdout);
		remo_value_release(v);
	} else {
		fprintf(stderr, "remo: no command '%s' (list, describe, call, "
		        "get, set)\n", cmd);
		exit(2);
	}
	for (size_t i = 0; i < n; i++)
		remo_value_release(segs[i].key);
	remo_value_release(target);
	remo_value_release(out);
	return rc;
}

static int usage(void)
{
	fprintf(stderr,
	        "usage: remo [--json] [--secret-file PATH] [--timeout MS] URL "
	        "[list | describe PATH | call PATH [ARG...] | get PATH | "
	        "set PATH VALUE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static char secret[REMO_MAX_SECRET];
	remo_session_opts o = {0};
	int i = 1, timeout = 10000;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc) {
			if (remo_secret_load(argv[++i], secret, sizeof secret,
			                     &o.secret_len) != REMO_OK) {
				fprintf(stderr, "remo: %s: %s\n", argv[i],
				        remo_error_message(remo_last_error()));
				return 2;
			}
			o.secret = secret;
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			timeout = atoi(argv[++i]);
		} else {
			return usage();
		}
	}
	if (i >= argc)
		return usage();
	const char *url = argv[i++];
	const char *cmd = i < argc ? argv[i++] : NULL;
	o.timeout_ms = timeout > 0 ? timeout : -1;
	remo_session *s;
	int rc = remo_connect(url, timeout > 0 ? timeout : 10000, NULL, &o, &s);
	if (rc != REMO_OK) {
		remo_value e = remo_last_error();
		fprintf(stderr, "remo: %s: %s\n", url, e.kind == REMO_ERROR
		        ? remo_error_message(e) : remo_strerror(rc));
		return 3;
	}
	rc = run(s, cmd, argc - i, argv + i);
	if (rc != REMO_OK) {
		remo_value e = remo_value_retain(remo_last_error());
		if (e.kind != REMO_ERROR) {
			remo_value_release(e);
			e = remo_error(remo_status_name(rc), remo_strerror(rc));
		}
		print_error(e);
		remo_value_release(e);
	}
	remo_session_free(s);
	return rc == REMO_OK ? 0 : 1;
}
