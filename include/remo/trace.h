/*
 * remo/trace.h -- what a registered C function may add to the traceback
 * of its own failure, and what a server may ask about crashes.
 *
 * A traceback's frames come from the stack (function, file, line) and
 * their locals from two places: values the function records itself with
 * REMO_LOCAL, which work at any optimisation level, and DWARF, which
 * works while the failing thread is parked and only where the compiler
 * kept the variable.  doc/design.md, "Tracebacks", says how.
 */
#ifndef REMO_TRACE_PUBLIC_H
#define REMO_TRACE_PUBLIC_H

#include <remo/remo.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Locals one thread keeps at most, over all the calls it has running; a
 * record past it is dropped (and counted). */
#define REMO_LOCALS_MAX 256

/*
 * remo_local: records value v (stolen) of the local called name in the
 * function func, for the traceback of a failure of the call running on
 * this thread.  Recording the same func and name again in that call
 * replaces the value.  func and name are not copied: they must stay
 * valid until the call returns (REMO_LOCAL passes __func__ and a string
 * literal).  Records made outside any call served by remo are kept
 * until the list is full.  Cost: a few nanoseconds, plus the copy of a
 * string.
 */
REMO_API void remo_local(const char *func, const char *name, remo_value v);

/* Helpers of REMO_LOCAL, one per kind of C value. */
static inline remo_value remo_local_sint_(long long x)
{
	return remo_int((int64_t)x);
}

static inline remo_value remo_local_uint_(unsigned long long x)
{
	return remo_int((int64_t)x); /* above INT64_MAX: wraps */
}

static inline remo_value remo_local_bool_(bool x)
{
	return remo_bool(x);
}

static inline remo_value remo_local_double_(long double x)
{
	return remo_double((double)x);
}

static inline remo_value remo_local_cstr_(const char *s)
{
	return s ? remo_str(s) : remo_nil();
}

static inline remo_value remo_local_ptr_(const volatile void *p)
{
	return remo_int((int64_t)(intptr_t)p);
}

/*
 * REMO_LOCAL(x): records the current value of the local (or parameter,
 * or any expression) x under the name "x" for the current function.
 * By type: integers and enums are ints, bool a bool, float and double
 * doubles, char * and const char * a copy of the string (NULL: nil),
 * a remo_value itself (retained), other pointers an int (the address).
 * A struct does not compile: record its fields.
 */
#ifdef __cplusplus
} /* extern "C" */
/* C++ has no _Generic: the same conversions by overloading. */
static inline remo_value remo_local_of_(bool x) { return remo_bool(x); }
static inline remo_value remo_local_of_(char x) { return remo_int(x); }
static inline remo_value remo_local_of_(signed char x) { return remo_int(x); }
static inline remo_value remo_local_of_(short x) { return remo_int(x); }
static inline remo_value remo_local_of_(int x) { return remo_int(x); }
static inline remo_value remo_local_of_(long x) { return remo_int(x); }
static inline remo_value remo_local_of_(long long x) { return remo_int(x); }
static inline remo_value remo_local_of_(unsigned char x)
{ return remo_int((int64_t)x); }
static inline remo_value remo_local_of_(unsigned short x)
{ return remo_int((int64_t)x); }
static inline remo_value remo_local_of_(unsigned int x)
{ return remo_int((int64_t)x); }
static inline remo_value remo_local_of_(unsigned long x)
{ return remo_int((int64_t)x); }
static inline remo_value remo_local_of_(unsigned long long x)
{ return remo_int((int64_t)x); }
static inline remo_value remo_local_of_(float x) { return remo_double(x); }
static inline remo_value remo_local_of_(double x) { return remo_double(x); }
static inline remo_value remo_local_of_(long double x)
{ return remo_double((double)x); }
static inline remo_value remo_local_of_(char *s) { return remo_local_cstr_(s); }
static inline remo_value remo_local_of_(const char *s)
{ return remo_local_cstr_(s); }
static inline remo_value remo_local_of_(remo_value v)
{ return remo_value_retain(v); }
static inline remo_value remo_local_of_(const volatile void *p)
{ return remo_local_ptr_(p); }
#define REMO_LOCAL(x) remo_local(__func__, #x, remo_local_of_(x))
extern "C" {
#else
#define REMO_LOCAL(x) \
	remo_local(__func__, #x, _Generic((x), \
		bool: remo_local_bool_, \
		char: remo_local_sint_, \
		signed char: remo_local_sint_, \
		short: remo_local_sint_, \
		int: remo_local_sint_, \
		long: remo_local_sint_, \
		long long: remo_local_sint_, \
		unsigned char: remo_local_uint_, \
		unsigned short: remo_local_uint_, \
		unsigned int: remo_local_uint_, \
		unsigned long: remo_local_uint_, \
		unsigned long long: remo_local_uint_, \
		float: remo_local_double_, \
		double: remo_local_double_, \
		long double: remo_local_double_, \
		char *: remo_local_cstr_, \
		const char *: remo_local_cstr_, \
		remo_value: remo_value_retain, \
		default: remo_local_ptr_)(x))
#endif

/*
 * remo_trace_thread: while on, an error raised on the calling thread
 * outside any call remo serves (remo_raise, remo_raise_value,
 * remo_raise_errno) gets a traceback too, as one raised in a served
 * call does: a snapshot with full detail (process, frames, files, the
 * REMO_LOCAL records), never live.  For threads whose failures a peer
 * looks at later: an actor's, a worker's.  Such an error shows that
 * detail to whoever it is given to.  Off by default; returns the
 * previous setting.
 */
REMO_API bool remo_trace_thread(bool on);

/*
 * remo_tainted: true once the process has recovered from a crash (a
 * SIGSEGV, SIGBUS, SIGFPE or SIGABRT inside a call that had recovery on).
 * The code that crashed may have left a lock held or the heap half
 * updated: a tainted server should be restarted when convenient.
 */
REMO_API bool remo_tainted(void);

#ifdef __cplusplus
}
#endif

#endif /* REMO_TRACE_PUBLIC_H */
