/*
 * trace/trace.h -- the core of remote tracebacks, inside the process that
 * failed: capturing a stack, naming it, the locals a function records,
 * the locals DWARF can read, and recovery from a crash.
 *
 * The files behind it, one concept each:
 *
 *   trace.c          capture (libunwind) and naming (libdw)
 *   locals.c         REMO_LOCAL's per-thread list
 *   dwarf.c          locals of a live stack from DWARF
 *   recover.c        crash handlers, recovery, the crash service and hook
 *   dwfl.h           libdw's session, private to trace.c and dwarf.c
 *
 * The trace layer sits above types/ and below channel/; it knows values
 * but no session: the session arms recovery and reads locals through
 * the functions below, and the traceback layer (traceback/) builds
 * Traceback objects from what it captures.
 *
 * What is cheap and what is not, which is the reason for the split
 * between capture and naming: capturing is a walk of the stack by
 * libunwind's cached frame table (about 0.1 us for ten frames) and is
 * async-signal-safe, so it is done at every failure, even in a SIGSEGV
 * handler.  Naming reads DWARF with libdw (microseconds to milliseconds)
 * and is done later, only when someone looks.  doc/design.md, section
 * "Tracebacks: capture and naming", has the measurements.
 *
 * x86-64 Linux only: DWARF register numbers and the signal context are
 * that architecture's.
 */
#ifndef REMO_TRACE_H
#define REMO_TRACE_H

#include "types/types.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#include "remo/trace.h"

/* Frames one capture keeps at most (the innermost ones). */
#define REMO__TRACE_MAX 64

/* ---- capture (trace.c) ------------------------------------------------- */

/*
 * remo__trace_capture: the program counters of the calling thread's stack,
 * innermost first, into pcs (room for max), leaving out the first skip
 * frames: with skip 0, pcs[0] is in the function that called this one.
 * Every entry is a return address (the instruction after a call), so
 * name them with first_is_exact false.  Returns the count, 0 to max (max
 * is capped at REMO__TRACE_MAX).  Async-signal-safe.
 */
int remo__trace_capture(uintptr_t *pcs, int max, int skip);

/*
 * remo__trace_capture_uc: the same for the stack a signal interrupted,
 * from the handler's ucontext: pcs[0] is the exact pc that faulted (name
 * with first_is_exact true), then the return addresses of its callers.
 * Returns the count (0 if the context cannot be unwound).
 * Async-signal-safe.
 */
int remo__trace_capture_uc(void *ucontext, uintptr_t *pcs, int max);

/* ---- naming (trace.c) -------------------------------------------------- */

struct remo__frame_info {
	uintptr_t pc;
	char *function;  /* name from DWARF, else the ELF symbol; NULL if none */
	char *file;      /* source file as DWARF names it, or NULL            */
	int line;        /* 0 if unknown                                      */
	int column;      /* 0 if unknown                                      */
	char *module;    /* the ELF file's path; "?" if no module holds pc    */
	uintptr_t offset;/* pc less the module's load bias: the address that
	                    addr2line -e MODULE takes; 0 if no module         */
	bool inlined;    /* a call inlined into the next entry's function     */
};

/*
 * remo__trace_name: names n program counters.  A pc inside inlined code
 * gives several entries, the innermost inlined call first and the
 * function it was inlined into last (all but that one marked inlined),
 * so *nout >= n, and the entries for one pc share its pc, module and
 * offset.  Every pc but the first is taken as a return address and
 * looked up at pc - 1 (the call instruction), so that a call that is the
 * last instruction of a function or of a line names the right one; the
 * first too unless first_is_exact.  *out is remo__malloc'd, as are its
 * strings: free with remo__frame_info_free.  A pc no module holds still
 * gives an entry (module "?").  REMO_OK, or REMO_ENOMEM (then *out is
 * NULL and *nout 0).  Thread-safe: libdw is used under one mutex.
 */
int remo__trace_name(const uintptr_t *pcs, int n, bool first_is_exact,
                     struct remo__frame_info **out, size_t *nout);
void remo__frame_info_free(struct remo__frame_info *f, size_t n);

/*
 * remo__trace_warm: reports the process's modules to libdw and opens
 * their debug information now, so that the first naming does not pay
 * for it.  Safe to call any number of times, from any thread.
 */
void remo__trace_warm(void);

/* remo__trace_naming_held: this thread holds the lock that naming and
 * DWARF locals take (a crash inside libdw).  Async-signal-safe. */
bool remo__trace_naming_held(void);

/* ---- explicit locals (locals.c) ---------------------------------- */

/* Entries one thread's list holds at most (REMO_LOCALS_MAX in trace.h). */
#define REMO__LOCALS_MAX REMO_LOCALS_MAX

/*
 * remo__locals_mark: marks the start of a call on this thread: locals
 * recorded from now on belong to it.  Give the mark to
 * remo__locals_take or remo__locals_reset, in last-in first-out order
 * with other marks of the thread.
 */
size_t remo__locals_mark(void);

/*
 * remo__locals_take: the locals recorded since mark, as a new dict
 * {func: {name: value}} in the order they were first recorded, or nil if
 * there were none; they leave the list, which is back where it was at
 * mark.  A str that is not UTF-8 becomes bytes (a peer would refuse it
 * as a str).  REMO_INVALID if memory ran out (the locals are dropped all
 * the same).
 */
remo_value remo__locals_take(size_t mark);

/* remo__locals_reset: drops the locals recorded since mark (a call that
 * returned normally: nobody will look at them). */
void remo__locals_reset(size_t mark);

/* remo__locals_dropped: locals this thread could not record since mark,
 * because its list was full or memory ran out. */
unsigned remo__locals_dropped(size_t mark);

/*
 * remo__locals_self: this thread's list, for remo__locals_take_of on
 * another thread.  Async-signal-safe (a crash handler takes it).
 * remo__locals_take_of: remo__locals_take on l's thread's list, which
 * must not run meanwhile (the crash service, while the crashed thread
 * waits in its handler).
 */
struct remo__locals;
struct remo__locals *remo__locals_self(void);
remo_value remo__locals_take_of(struct remo__locals *l, size_t mark);

/* ---- DWARF locals (dwarf.c) -------------------------------------- */

/* Bytes of a char * a DWARF local reads at most (a longer string is cut
 * and ends with "..."). */
#define REMO__DWARF_STR_MAX 256

/*
 * remo__trace_dwarf_locals: reads the parameters and variables visible at
 * each frame's pc from DWARF.  uc NULL: the calling thread's own stack,
 * skip frames left out as in remo__trace_capture; uc a signal handler's
 * ucontext: the stack it interrupted, as remo__trace_capture_uc gives
 * it (skip leaves out frames from there).  *out gets a new list, one
 * dict {name: value} per frame in the order of the capture (an empty
 * dict for a frame with nothing readable), at most REMO__TRACE_MAX.
 * Values: integer types int, bool bool, floating double, char * a str
 * of at most REMO__DWARF_STR_MAX bytes read without trusting the pointer
 * ("<unreadable 0x...>" when it points nowhere; bytes if not UTF-8), a
 * NULL char * nil, other pointers a str "0x...", a char array a str,
 * others a str saying the type ("<struct point>").  "<optimized out>"
 * when DWARF gives no location at that pc, or one that cannot be
 * evaluated with what an unwinder knows (a caller-saved register of an
 * outer frame).  In inlined code, a frame's dict has the variables of
 * the inlined calls and of the function around them; an inner one
 * hides an outer one of the same name.
 * REMO_OK, REMO_ENOMEM, REMO_EINVAL (no stack: unwinding failed at
 * once), REMO_ELIMIT (called from inside the naming lock, i.e. from a
 * crash inside libdw: reading DWARF now would deadlock).
 */
int remo__trace_dwarf_locals(void *uc, int skip, remo_value *out);

/* ---- crash recovery (recover.c) ---------------------------------- */

/* Size of the alternate signal stack given to each thread that arms
 * recovery: the handler captures the stack on it (libunwind's cursor is
 * a few KiB) and waits there while the crash service works. */
#define REMO__ALTSTACK_SIZE (256 * 1024)

struct remo__recover {
	sigjmp_buf jb;
	bool want_dlocals;     /* set before arming: the crash service reads
	                          the DWARF locals of the crashed stack     */
	int sig;               /* the signal caught; 0 before               */
	void *addr;            /* its si_addr                               */
	uintptr_t pcs[REMO__TRACE_MAX]; /* pcs[0] exact (the faulting pc)   */
	int npcs;
	remo_value dlocals;    /* nil, or the DWARF locals (the caller owns
	                          them after a crash)                       */
	remo_value report;     /* nil, or what the crash hook left for the
	                          code after the jump (the caller owns it)  */
	struct remo__recover *prev;
};

/*
 * remo__recover_init: installs the process's handlers for SIGSEGV,
 * SIGBUS, SIGFPE and SIGABRT, once, keeping the actions they replace,
 * and starts the crash service thread, once per process (a child made
 * by fork starts its own at its first call: until then its crashes go
 * without the service).  On a thread that has not armed, a crash goes
 * on as it would have without remo: after the crash hook, the previous
 * handler runs, or the previous action (default: core dump) is
 * restored and the signal comes again.  Call it from normal context.
 * REMO_OK, or REMO_EINVAL if sigaction failed (nothing is installed
 * then).  The service is best effort: without it crashes are still
 * recovered, only not reported.
 */
int remo__recover_init(void);

/*
 * remo__recover_arm / remo__recover_disarm: bracket code that may crash.
 *
 *     struct remo__recover r = {0};
 *     if (sigsetjmp(r.jb, 1) == 0) {
 *             remo__recover_arm(&r);
 *             ...call...
 *             remo__recover_disarm(&r);
 *     } else {
 *             ...crashed: r.sig, r.addr, r.pcs, r.npcs, r.dlocals,
 *                r.report...
 *     }
 *
 * Arming nests (last armed, first disarmed); a crash returns to the
 * innermost armed record, which is then disarmed, and marks the process
 * tainted.  The first arm on a thread gives it an alternate signal stack
 * of REMO__ALTSTACK_SIZE (with a guard page) unless it has one that big
 * already; it is freed when the thread exits.  remo__recover_init must
 * have succeeded.
 */
void remo__recover_arm(struct remo__recover *r);
void remo__recover_disarm(struct remo__recover *r);

/*
 * A crash as the handler hands it to the crash service: one of a few
 * static records (recover.c).  Its pointers are into the crashed
 * thread's stack and alternate stack; that thread waits in its handler
 * until remo__crash_done (or until c->wait_ms pass: then it goes on, and
 * what the service still does with them is on borrowed time).
 */
struct remo__crash {
	struct remo__recover *r; /* the armed record, or the handler's own
	                            (pcs, sig, addr filled in)             */
	void *uc;                /* the handler's ucontext                  */
	bool recovering;         /* r is armed: the thread jumps back       */
	bool in_naming;          /* the thread crashed holding libdw's lock:
	                            no naming and no DWARF locals, which
	                            would wait for it forever               */
	int tid;                 /* the crashed thread                      */
	int wait_ms;             /* how long the thread waits for the
	                            service; the hook's capture sets it     */
	void *ctx[4];            /* the hook's capture: what it needs of the
	                            crashed thread (its thread-locals)     */
	/* recover.c's: */
	bool want_dlocals;       /* the service reads r->dlocals first      */
	const struct remo__crash_hook *hook; /* its serve, if capture said so */
	_Atomic int state;
};

/*
 * The crash hook, in two halves, so that nothing but the first runs in
 * the signal handler:
 *
 *   capture  in the handler, after the pcs are captured: async-signal-
 *            safe only (no malloc, no lock, no stdio, no remo value).
 *            Saves in c->ctx what the service needs of the crashed
 *            thread, sets c->wait_ms, and says whether the service is
 *            wanted at all (false: the handler goes straight on).
 *   serve    on the crash service thread, in normal context, one crash
 *            at a time, after the DWARF locals (r->want_dlocals) are
 *            read into r->dlocals.  Must call remo__crash_done(c) once,
 *            now or later from any thread (a live park hands c to a
 *            thread of its own, and the service goes on to the next).
 *
 * recovering true: r is the armed record, and siglongjmp follows the
 * wait (serve may leave a value in r->report for the code after it).
 * false: r is the handler's own record, and the process dies (or the
 * previous handler runs) after the wait: report what can be reported.
 * The crashed thread's memory may be in any state and it may hold any
 * lock: serve must not wait for one the crash may hold, and if it does,
 * the thread stops waiting after c->wait_ms and goes on without it.
 */
struct remo__crash_hook {
	bool (*capture)(struct remo__crash *c);
	void (*serve)(struct remo__crash *c);
};
/* remo__set_crash_hook: sets the hook (NULL: none); h is not copied. */
void remo__set_crash_hook(const struct remo__crash_hook *h);
/* remo__crash_done: the service is done with c; its thread goes on.  A
 * thread that stopped waiting already is not touched. */
void remo__crash_done(struct remo__crash *c);

#endif /* REMO_TRACE_H */
