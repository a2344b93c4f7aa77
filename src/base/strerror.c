/*
 * strerror.c -- the message table for enum remo_status.
 *
 * One table, indexed by code, holding both the C name and the sentence,
 * so that adding a code is one line here and one in remo.h.
 */
#include "base/base.h"

struct status_text {
	const char *name;
	const char *text;
};

#define S(code, text) [code] = {#code, text}
static const struct status_text status_table[] = {
	S(REMO_OK, "success"),
	S(REMO_ENOMEM, "out of memory"),
	S(REMO_EINVAL, "invalid argument"),
	S(REMO_ETYPE, "value of the wrong kind"),
	S(REMO_ERANGE, "index or number out of range"),
	S(REMO_ENOTFOUND, "not found"),
	S(REMO_EEXIST, "already registered differently"),
	S(REMO_EUNHASHABLE, "mutable value used as a dict key"),
	S(REMO_EDEPTH, "value nests deeper than REMO_MAX_DEPTH"),
	S(REMO_ETOOBIG, "value too big to encode"),
	S(REMO_ELIMIT, "a stated limit was reached"),
	S(REMO_ERAISED, "the operation raised an error (see remo_last_error)"),
	S(REMO_ECLOSED, "closed"),
	S(REMO_EPEERLOST, "the peer went away"),
	S(REMO_ETIMEDOUT, "timed out"),
	S(REMO_EPROTO, "the peer broke the protocol"),
	S(REMO_ESIGNATURE, "malformed signature"),
	S(REMO_ECANCELED, "cancelled"),
	S(REMO_EAUTH, "authentication failed"),
	S(REMO_EWIRE_TRUNCATED, "message ends inside a value"),
	S(REMO_EWIRE_RESERVED, "reserved MessagePack type byte 0xc1"),
	S(REMO_EWIRE_LENGTH, "str, bin or ext longer than the bytes left"),
	S(REMO_EWIRE_COUNT, "array or map count larger than the bytes left"),
	S(REMO_EWIRE_DEPTH, "message nests deeper than REMO_MAX_DEPTH"),
	S(REMO_EWIRE_VALUES, "message holds more than REMO_MAX_VALUES values"),
	S(REMO_EWIRE_TRAILING, "bytes left over after the value"),
	S(REMO_EWIRE_INTRANGE, "unsigned integer above INT64_MAX"),
	S(REMO_EWIRE_EXTTYPE, "unknown MessagePack extension type"),
	S(REMO_EWIRE_EXTBODY, "malformed remo extension body"),
	S(REMO_EWIRE_KEY, "map key is not an immutable value"),
	S(REMO_EWIRE_DUPKEY, "the same map key appears twice"),
	S(REMO_EWIRE_UTF8, "str is not valid UTF-8"),
};
#undef S

static const struct status_text *status_lookup(int status)
{
	if (status < 0 ||
	    (size_t)status >= sizeof status_table / sizeof status_table[0] ||
	    status_table[status].name == NULL)
		return NULL;
	return &status_table[status];
}

const char *remo_strerror(int status)
{
	const struct status_text *s = status_lookup(status);
	return s ? s->text : "unknown remo status";
}

const char *remo_status_name(int status)
{
	const struct status_text *s = status_lookup(status);
	return s ? s->name : NULL;
}
