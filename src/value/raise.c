/*
 * raise.c -- the per-thread error slot: remo_raise, remo_last_error.
 *
 * One slot per thread, like errno, holds the error value of the last
 * failure: an operation that fails stores its error value here and
 * returns a status; a registered C function raises by storing one here
 * and returning.  A flag says whether the slot was filled by a raise
 * since the dispatcher last cleared it, so that an old error left in the
 * slot is never mistaken for a new raise.
 *
 * The slot holds a reference; it is released when replaced and, through
 * a thread-exit destructor, when the thread ends.
 */
#include "value/value.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct raise_slot {
	remo_value err;
	bool raised;
	bool by_program; /* raised by remo_raise*: the program's own */
};

static pthread_key_t raise_key;
static pthread_once_t raise_once = PTHREAD_ONCE_INIT;

static void raise_slot_free(void *p)
{
	struct raise_slot *slot = p;
	remo_value_release(slot->err);
	free(slot);
}

static void raise_init(void)
{
	pthread_key_create(&raise_key, raise_slot_free);
}

/* The slot is plain malloc: it must exist even when remo's allocator is
 * failing on purpose, or an out-of-memory error could not be reported. */
static struct raise_slot *raise_slot(void)
{
	pthread_once(&raise_once, raise_init);
	struct raise_slot *slot = pthread_getspecific(raise_key);
	if (slot == NULL) {
		slot = calloc(1, sizeof *slot);
		if (slot == NULL)
			return NULL;
		pthread_setspecific(raise_key, slot);
	}
	return slot;
}

/* A static MemoryError for when not even the error can be allocated. */
static remo_value raise_oom(void)
{
	return remo_error("MemoryError", "out of memory");
}

int remo__raise(remo_value err)
{
	struct raise_slot *slot = raise_slot();
	if (!remo_ok(err))
		err = raise_oom();
	if (slot == NULL) {
		remo_value_release(err);
		return REMO_ERAISED;
	}
	remo_value_release(slot->err);
	slot->err = remo_ok(err) ? err : remo_nil();
	slot->raised = true;
	slot->by_program = false;
	return REMO_ERAISED;
}

static remo_value raise_vmake(const char *name, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
	return remo_error(name, msg);
}

remo_value (*remo__raise_hook)(remo_value err, int skip);

/* The error just raised is the program's (remo_raise and its kin), not
 * the failure of an operation the program called and may handle. */
void remo__raised_by_program(void)
{
	struct raise_slot *slot = raise_slot();
	if (slot != NULL)
		slot->by_program = true;
}

/* err with a traceback, if the traceback layer installed its hook.  A
 * macro, not a function: the hook counts the frames to skip from where
 * it is called, and a helper here could be inlined or tail-called away,
 * changing that count by one depending on the optimiser. */
#define RAISE_ATTACH(err, skip) \
	(remo__raise_hook != NULL ? remo__raise_hook((err), (skip)) : (err))

int remo__raisef(const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	remo_value e = raise_vmake(name, fmt, ap);
	va_end(ap);
	return remo__raise(e);
}

void remo_raise(const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	remo_value e = raise_vmake(name ? name : "Error", fmt, ap);
	va_end(ap);
	if (!remo_ok(e)) /* a malformed name: say so rather than lose it */
		e = remo_error("ValueError", "remo_raise: malformed error name");
	/* 1: the function that called remo_raise is where it failed */
	remo__raise(RAISE_ATTACH(e, 1));
	remo__raised_by_program();
}

void remo_raise_errno(int errnum, const char *fmt, ...)
{
	char msg[512] = "";
	va_list ap;
	va_start(ap, fmt);
	if (fmt != NULL)
		vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t n = strlen(msg);
	snprintf(msg + n, sizeof msg - n, "%s%s", n ? ": " : "",
	         strerror(errnum));
	const char *name = remo_errno_name(errnum);
	remo_value e = remo_error(name ? name : "OSError", msg);
	if (remo_ok(e) && name == NULL)
		remo_dict_set_str(remo_error_attrs(e), "errno", remo_int(errnum));
	remo__raise(RAISE_ATTACH(e, 1));
	remo__raised_by_program();
}

void remo_raise_value(remo_value error)
{
	if (error.kind != REMO_ERROR && remo_ok(error)) {
		remo_value_release(error);
		error = remo_error("TypeError", "remo_raise_value: not an error");
	}
	remo__raise(RAISE_ATTACH(error, 1));
	remo__raised_by_program();
}

remo_value remo_last_error(void)
{
	struct raise_slot *slot = raise_slot();
	return slot ? slot->err : remo_nil();
}

int remo__fail(int status, const char *what)
{
	static const struct {
		int status;
		const char *name;
	} names[] = {
		{REMO_ENOMEM, "MemoryError"},   {REMO_EPEERLOST, "PeerLost"},
		{REMO_ECLOSED, "ConnectionError"}, {REMO_ETIMEDOUT, "TimeoutError"},
		{REMO_ECANCELED, "CancelledError"},
		{REMO_EAUTH, "AuthenticationError"},
		{REMO_EPROTO, "ProtocolError"}, {REMO_ETYPE, "TypeError"},
		{REMO_ERANGE, "IndexError"},    {REMO_ENOTFOUND, "NotFound"},
		{REMO_EUNHASHABLE, "TypeError"}, {REMO_ELIMIT, "LimitError"},
		{REMO_EDEPTH, "RecursionError"}, {REMO_ETOOBIG, "LimitError"},
	};
	const char *name = "Error";
	if (status == REMO_ERAISED)
		return status; /* the slot already holds the error */
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].status == status)
			name = names[i].name;
	if (status >= REMO_EWIRE_TRUNCATED && status <= REMO_EWIRE_UTF8)
		name = "ProtocolError";
	remo__raisef(name, "%s%s%s", what ? what : "", what ? ": " : "",
	             remo_strerror(status));
	return status;
}

remo_value remo__take_pending(void)
{
	struct raise_slot *slot = raise_slot();
	if (slot == NULL || !slot->raised)
		return remo_nil();
	slot->raised = false;
	return remo_value_retain(slot->err);
}

void remo__clear_pending(void)
{
	struct raise_slot *slot = raise_slot();
	if (slot != NULL)
		slot->raised = slot->by_program = false;
}

remo_value remo__take_raised_by_program(void)
{
	struct raise_slot *slot = raise_slot();
	if (slot == NULL || !slot->raised || !slot->by_program)
		return remo_nil();
	slot->raised = slot->by_program = false;
	return remo_value_retain(slot->err);
}

int remo__fail_pending(int status, const char *what)
{
	/* keep the plugin's own reason, if it raised one */
	remo_value why = remo__take_pending();
	if (why.kind != REMO_NIL)
		remo__raise(why);
	else
		remo__fail(status, what);
	return status;
}
