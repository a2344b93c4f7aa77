/*
 * errname.c -- error names, their hierarchy, errno names, error values.
 *
 * Errors cross between processes by name (DESIGN.md section 1), so the
 * receiver needs a table that says what each name is-a.  The table is
 * a fixed array with a fixed open-addressed index, both static: looking
 * up or walking the hierarchy never allocates, and the built-in part is
 * filled without any allocation that could fail.  Only a registered
 * name's string is allocated.  The fixed size is the stated limit
 * REMO_MAX_ERROR_NAMES.
 *
 * Peers never add names; they only send names that are looked up, so
 * unknown names cost nothing here and are kept intact by the value.
 */
#include "value/value.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

struct errname {
	const char *name;
	int16_t parent; /* index, or -1 for the root */
};

#define ERRNAME_SLOTS (2 * REMO_MAX_ERROR_NAMES) /* power of two */

static struct errname errname_table[REMO_MAX_ERROR_NAMES];
static int16_t errname_index[ERRNAME_SLOTS]; /* index + 1; 0 is empty */
static size_t errname_count;
static pthread_mutex_t errname_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t errname_once = PTHREAD_ONCE_INIT;

/* The built-in hierarchy, parents before children. */
static const struct {
	const char *name, *parent;
} errname_builtin[] = {
	{"Error", NULL},
	{"TypeError", "Error"},
	{"ValueError", "Error"},
	{"LookupError", "Error"},
	{"KeyError", "LookupError"},
	{"IndexError", "LookupError"},
	{"AttributeError", "Error"},
	{"ArithmeticError", "Error"},
	{"ZeroDivisionError", "ArithmeticError"},
	{"OverflowError", "ArithmeticError"},
	{"MemoryError", "Error"},
	{"TimeoutError", "Error"},
	{"CancelledError", "Error"},
	{"Crash", "Error"},
	{"ConnectionError", "Error"},
	{"PeerLost", "ConnectionError"},
	{"PermissionError", "Error"},
	{"AuthenticationError", "PermissionError"},
	{"ProtocolError", "Error"},
	{"NotFound", "Error"},
	{"OSError", "Error"},
	{"RecursionError", "Error"},
	{"LimitError", "Error"},
	{"ReferenceError", "LookupError"},
};

bool remo__errname_valid(const char *name, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* Index of name, or -1.  Caller holds the lock (or is the init). */
static int errname_find(const char *name)
{
	size_t len = strlen(name);
	size_t s = remo__siphash(name, len) & (ERRNAME_SLOTS - 1);
	for (;; s = (s + 1) & (ERRNAME_SLOTS - 1)) {
		int16_t e = errname_index[s];
		if (e == 0)
			return -1;
		if (strcmp(errname_table[e - 1].name, name) == 0)
			return e - 1;
	}
}

/* Adds a name known to be absent.  Caller holds the lock. */
static int errname_add(const char *name, int parent)
{
	if (errname_count >= REMO_MAX_ERROR_NAMES)
		return REMO_ELIMIT;
	size_t s = remo__siphash(name, strlen(name)) & (ERRNAME_SLOTS - 1);
	while (errname_index[s] != 0)
		s = (s + 1) & (ERRNAME_SLOTS - 1);
	errname_table[errname_count] = (struct errname){name, (int16_t)parent};
	errname_index[s] = (int16_t)(++errname_count);
	return REMO_OK;
}

#ifndef HAVE_STRERRORNAME_NP
/* A C library without strerrorname_np: the POSIX names at least. */
static const char *strerrorname_np(int e)
{
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG)
	E(ENOEXEC) E(EBADF) E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES)
	E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR)
	E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(EFBIG)
	E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(EDOM) E(ERANGE)
	E(EDEADLK) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY) E(ELOOP)
	E(ECONNREFUSED) E(ECONNRESET) E(ETIMEDOUT) E(EADDRINUSE)
#undef E
	default:
		return NULL;
	}
}
#endif

/* errno values are small; 4095 is the kernel's bound (MAX_ERRNO). */
#define ERRNO_MAX 4095

static void errname_init(void)
{
	for (size_t i = 0; i < sizeof errname_builtin / sizeof errname_builtin[0];
	     i++) {
		const char *p = errname_builtin[i].parent;
		errname_add(errname_builtin[i].name, p ? errname_find(p) : -1);
	}
	int oserror = errname_find("OSError");
	for (int e = 1; e <= ERRNO_MAX; e++) {
		const char *n = strerrorname_np(e);
		/* Aliases (EWOULDBLOCK is EAGAIN) give the same name twice. */
		if (n != NULL && errname_find(n) < 0)
			errname_add(n, oserror);
	}
}

static void errname_lock_ready(void)
{
	pthread_once(&errname_once, errname_init);
	pthread_mutex_lock(&errname_lock);
}

int remo_errname_register(const char *name, const char *parent)
{
	if (name == NULL || parent == NULL ||
	    !remo__errname_valid(name, strlen(name)))
		return REMO_EINVAL;
	int rc;
	errname_lock_ready();
	int p = errname_find(parent);
	int have = errname_find(name);
	if (p < 0) {
		rc = REMO_ENOTFOUND;
	} else if (have >= 0) {
		rc = errname_table[have].parent == p ? REMO_OK : REMO_EEXIST;
	} else {
		size_t len = strlen(name);
		char *copy = remo__malloc(len + 1);
		if (copy == NULL) {
			rc = REMO_ENOMEM;
		} else {
			memcpy(copy, name, len + 1);
			rc = errname_add(copy, p);
			if (rc != REMO_OK)
				remo__free(copy);
		}
	}
	pthread_mutex_unlock(&errname_lock);
	return rc;
}

bool remo_errname_known(const char *name)
{
	if (name == NULL)
		return false;
	errname_lock_ready();
	bool known = errname_find(name) >= 0;
	pthread_mutex_unlock(&errname_lock);
	return known;
}

const char *remo_errname_parent(const char *name)
{
	if (name == NULL)
		return NULL;
	const char *parent = NULL;
	errname_lock_ready();
	int i = errname_find(name);
	if (i >= 0 && errname_table[i].parent >= 0)
		parent = errname_table[errname_table[i].parent].name;
	pthread_mutex_unlock(&errname_lock);
	return parent;
}

bool remo_errname_isa(const char *name, const char *ancestor)
{
	if (name == NULL || ancestor == NULL)
		return false;
	if (strcmp(name, ancestor) == 0 || strcmp(ancestor, "Error") == 0)
		return true;
	bool isa = false;
	errname_lock_ready();
	int a = errname_find(ancestor);
	/* Parents are always added before children: the walk ends. */
	for (int i = errname_find(name); a >= 0 && i >= 0;
	     i = errname_table[i].parent) {
		if (i == a) {
			isa = true;
			break;
		}
	}
	pthread_mutex_unlock(&errname_lock);
	return isa;
}

const char *remo_errno_name(int errnum)
{
	if (errnum <= 0 || errnum > ERRNO_MAX)
		return NULL;
	return strerrorname_np(errnum);
}

int remo_errno_value(const char *name)
{
	if (name == NULL || name[0] != 'E')
		return 0;
	/* The names are few and this is an error path: a scan is fine. */
	for (int e = 1; e <= ERRNO_MAX; e++) {
		const char *n = strerrorname_np(e);
		if (n != NULL && strcmp(n, name) == 0)
			return e;
	}
	return 0;
}

/* ==== error values ===================================================== */

remo_value remo_error(const char *name, const char *message)
{
	if (name == NULL || !remo__errname_valid(name, strlen(name)))
		return remo__invalid();
	struct remo__error *e = remo__malloc(sizeof *e);
	if (e == NULL)
		return remo__invalid();
	e->name = remo_str(name);
	e->message = remo_str(message);
	e->attrs = remo_dict();
	e->tb = remo_nil();
	atomic_init(&e->hdr.refs, 1);
	e->hdr.kind = REMO_ERROR;
	remo_value v = {REMO_ERROR, {0}};
	v.as.p = &e->hdr;
	if (!remo_ok(e->name) || !remo_ok(e->message) || !remo_ok(e->attrs)) {
		remo_value_release(v);
		return remo__invalid();
	}
	return v;
}

const char *remo_error_name(remo_value e)
{
	return e.kind == REMO_ERROR ? remo_str_data(REMO__ERROR(e)->name, NULL)
	                            : NULL;
}

const char *remo_error_message(remo_value e)
{
	return e.kind == REMO_ERROR
	               ? remo_str_data(REMO__ERROR(e)->message, NULL)
	               : NULL;
}

remo_value remo_error_attrs(remo_value e)
{
	return e.kind == REMO_ERROR ? REMO__ERROR(e)->attrs : remo_nil();
}

remo_value remo_error_traceback(remo_value e)
{
	return e.kind == REMO_ERROR ? REMO__ERROR(e)->tb : remo_nil();
}

bool remo_error_isa(remo_value e, const char *ancestor)
{
	const char *name = remo_error_name(e);
	return name != NULL && remo_errname_isa(name, ancestor);
}

remo_value remo__error_from_parts(remo_value name, remo_value message,
                                  remo_value attrs, remo_value tb)
{
	struct remo__error *e = remo__malloc(sizeof *e);
	if (e == NULL) {
		remo_value_release(name);
		remo_value_release(message);
		remo_value_release(attrs);
		remo_value_release(tb);
		return remo__invalid();
	}
	e->name = name;
	e->message = message;
	e->attrs = attrs;
	e->tb = tb;
	atomic_init(&e->hdr.refs, 1);
	e->hdr.kind = REMO_ERROR;
	remo_value v = {REMO_ERROR, {0}};
	v.as.p = &e->hdr;
	return v;
}
