/*
 * api/api.h -- the API layer: the operations of remo.h section 9 on local
 * values and proxies alike (ops.c), their call styles (section 11), and
 * closures, remote callables as C function pointers (closure.c).  It
 * installs the session's apply hook.
 */
#ifndef REMO_API_H
#define REMO_API_H

#include "session/session.h"

/* remo__op_apply: operation op on a local value, as serving a request
 * does (any op but LOOKUP). */
int remo__op_apply(int op, remo_value target, remo_value a, remo_value b,
                   remo_value *out);
/* remo__chunk: up to REMO_FORCE_CHUNK items of a local list from start
 * (a dict: key, value, key, value...) as a new tuple. */
int remo__chunk(remo_value v, size_t start, remo_value *out);
#endif /* REMO_API_H */
