/*
 * recover.c -- crashes: recovering from one inside an armed call,
 * and reporting one that nothing recovers from.
 *
 * One handler for SIGSEGV, SIGBUS, SIGFPE and SIGABRT, installed once
 * for the process.  Each thread keeps a stack of armed records (the
 * innermost call with recovery on at the top).  On a crash the handler
 * captures the interrupted stack from its ucontext, calls the session's
 * hook, and then:
 *
 *   - armed: pops the record, marks the process tainted, and
 *     siglongjmps to the record's sigsetjmp;
 *   - not armed (or a signal sent from another process): runs the
 *     handler that was there before remo's, or restores the previous
 *     action and lets the signal come again, so the process dies as it
 *     would have without remo (same signal, same core dump, the core
 *     showing the faulting frame: a fault is re-raised by returning to
 *     the faulting instruction, a sent signal by raise()).
 *
 * Recovering is opt-in because it is unsafe in general: the code that
 * crashed may hold a lock or be halfway through malloc, and the next
 * call to take that lock hangs.  So a recovery taints the process
 * (remo_tainted), and the server says so.
 *
 * The handler runs on an alternate stack, so that a stack overflow can
 * be caught too and so that the hook has room: live mode parks the
 * crashed thread inside the hook, on that stack, while a debugger
 * looks at the frames below it.  A thread gets its alternate stack when
 * it first arms; one the thread has already (its own, or a sanitizer's)
 * is kept, because replacing it would free or leak its owner's memory.
 *
 * SA_NODEFER: a crash inside the handler comes back into it rather than
 * killing the process on the spot; the handler notices (a per-thread
 * flag) and, while capturing, jumps back to say "no more frames", or
 * otherwise gives up and lets the process die.
 *
 * Thread-local state is initial-exec TLS: the handler must not reach
 * __tls_get_addr, which may allocate.
 */
#include "trace/trace.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define TLS_IE __attribute__((tls_model("initial-exec")))

static const int recover_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
#define RECOVER_NSIGS (sizeof recover_sigs / sizeof recover_sigs[0])

static struct sigaction recover_old[RECOVER_NSIGS];
static pthread_once_t recover_once = PTHREAD_ONCE_INIT;
static int recover_status = REMO_EINVAL;
static remo__crash_hook *_Atomic recover_hook;
static atomic_bool recover_tainted;

static __thread struct remo__recover *recover_top TLS_IE;
static __thread bool recover_busy TLS_IE;         /* in the handler     */
static __thread sigjmp_buf *recover_capture_jb TLS_IE; /* capturing   */
static __thread bool recover_thread_ready TLS_IE; /* altstack decided   */

static pthread_key_t recover_key; /* the thread's altstack, to free  */

/* ==== per-thread alternate stack ========================================= */

/*
 * The alternate stack sits between two inaccessible gaps of 2 MiB, which
 * cost address space only.  The one below is the guard: a handler that
 * overflows faults instead of writing over whatever is mapped next.
 * Both keep every other stack at least 2 MiB away, which matters under
 * valgrind: it tells a switch of stacks from a large frame by the size
 * of the move (--max-stackframe, 2 MB), and a siglongjmp from a handler
 * to a thread stack mapped just beside its alternate stack would make it
 * take the whole thread stack for fresh, undefined memory.
 */
#define RECOVER_GAP ((size_t)2 << 20)
#define RECOVER_MAP (RECOVER_GAP + REMO__ALTSTACK_SIZE + RECOVER_GAP)

/* At thread exit: take the stack out of use, then free it. */
static void recover_thread_exit(void *mem)
{
	stack_t cur, off = {.ss_flags = SS_DISABLE};
	if (sigaltstack(NULL, &cur) == 0 &&
	    cur.ss_sp == (char *)mem + RECOVER_GAP &&
	    !(cur.ss_flags & SS_ONSTACK))
		sigaltstack(&off, NULL);
	munmap(mem, RECOVER_MAP);
}

/* Gives the thread its alternate stack, once.  A failure leaves the
 * thread without one: handlers then run on the thread's own stack, and
 * only a stack overflow cannot be caught. */
static void recover_thread_setup(void)
{
	stack_t old;
	if (recover_thread_ready)
		return;
	recover_thread_ready = true;
	if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
		return; /* the thread's own: keep it */
	char *mem = mmap(NULL, RECOVER_MAP, PROT_NONE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return;
	stack_t ss = {.ss_sp = mem + RECOVER_GAP,
	              .ss_size = REMO__ALTSTACK_SIZE};
	if (mprotect(ss.ss_sp, ss.ss_size, PROT_READ | PROT_WRITE) != 0 ||
	    sigaltstack(&ss, NULL) != 0 ||
	    pthread_setspecific(recover_key, mem) != 0) {
		stack_t off = {.ss_flags = SS_DISABLE};
		sigaltstack(&off, NULL);
		munmap(mem, RECOVER_MAP);
	}
}

/* ==== the handler ======================================================== */

static size_t recover_index(int sig)
{
	for (size_t i = 0; i < RECOVER_NSIGS; i++)
		if (recover_sigs[i] == sig)
			return i;
	return 0; /* not reached: the handler is only installed for these */
}

/*
 * recover_die: the crash is not remo's to recover: hand it to the
 * handler that was there before, or let the previous action happen.
 */
static void recover_die(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *old = &recover_old[recover_index(sig)];
	if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction != NULL) {
		old->sa_sigaction(sig, si, uc);
		return;
	}
	if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL &&
	    old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	sigaction(sig, old, NULL);
	/* A fault comes back by itself when the handler returns to the
	 * faulting instruction (and the core then shows that frame); a
	 * signal that was sent must be sent again. */
	if (si->si_code <= 0)
		raise(sig);
}

/* recover_capture: r's pcs from uc; a fault while unwinding (a smashed
 * stack) ends the list there, or at the faulting pc alone. */
static bool recover_capture(struct remo__recover *r, void *uc)
{
	sigjmp_buf jb;
	bool whole = false;
	r->npcs = 0;
	if (sigsetjmp(jb, 1) == 0) {
		recover_capture_jb = &jb;
		r->npcs = remo__trace_capture_uc(uc, r->pcs, REMO__TRACE_MAX);
		whole = true;
	}
	recover_capture_jb = NULL;
	if (r->npcs == 0) {
		r->pcs[0] = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
		r->npcs = 1;
	}
	return whole;
}

/* The crash came from this process's own code (a fault, abort(), a
 * pthread_kill), not from kill(1) aimed at the process. */
static bool recover_own(const siginfo_t *si)
{
	return si->si_code > 0 || si->si_pid == getpid();
}

static void recover_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	if (recover_busy) {
		/* a crash inside the handler itself */
		if (recover_capture_jb != NULL)
			siglongjmp(*recover_capture_jb, 1);
		recover_die(sig, si, uc);
		return;
	}
	recover_busy = true;

	struct remo__recover mine;
	struct remo__recover *r = recover_top;
	bool recovering = r != NULL && recover_own(si);
	if (!recovering) {
		memset(&mine, 0, sizeof mine);
		r = &mine;
	}
	r->sig = sig;
	r->addr = si->si_addr;
	r->dlocals = remo_nil();
	/* DWARF locals only from a stack libunwind could walk: reading
	 * them takes libdw's lock, and a fault then would leave it held */
	if (recover_capture(r, uc) && r->want_dlocals &&
	    remo__trace_dwarf_locals(uc, 0, &r->dlocals) != REMO_OK)
		r->dlocals = remo_nil();
	remo__crash_hook *hook = atomic_load(&recover_hook);
	if (recovering) {
		/* Disarmed and tainted before the hook, which may run calls
		 * (live mode parks here, serving): a crash in one of them is
		 * a crash of its own, recovered by its own record. */
		recover_top = r->prev;
		atomic_store(&recover_tainted, true);
		recover_busy = false;
	}
	if (hook != NULL)
		hook(r, uc, recovering);
	recover_busy = false;
	if (recovering)
		siglongjmp(r->jb, 1);
	recover_die(sig, si, uc);
	errno = saved_errno;
}

/* ==== installing, arming ================================================= */

static void recover_install(void)
{
	struct sigaction sa;
	size_t i;

	if (pthread_key_create(&recover_key, recover_thread_exit) != 0)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = recover_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < RECOVER_NSIGS; i++)
		if (sigaction(recover_sigs[i], &sa, &recover_old[i]) != 0)
			break;
	if (i < RECOVER_NSIGS) {
		while (i-- > 0)
			sigaction(recover_sigs[i], &recover_old[i], NULL);
		return;
	}
	recover_status = REMO_OK;
}

int remo__recover_init(void)
{
	pthread_once(&recover_once, recover_install);
	return recover_status;
}

void remo__recover_arm(struct remo__recover *r)
{
	REMO__ASSERT(recover_status == REMO_OK);
	recover_thread_setup();
	r->sig = 0;
	r->addr = NULL;
	r->npcs = 0;
	r->dlocals = remo_nil();
	r->prev = recover_top;
	/* the record must be complete before the handler can see it */
	atomic_signal_fence(memory_order_seq_cst);
	recover_top = r;
	atomic_signal_fence(memory_order_seq_cst);
}

void remo__recover_disarm(struct remo__recover *r)
{
	REMO__ASSERT(recover_top == r);
	recover_top = r->prev;
	atomic_signal_fence(memory_order_seq_cst);
}

void remo__set_crash_hook(remo__crash_hook *fn)
{
	atomic_store(&recover_hook, fn);
}

bool remo_tainted(void)
{
	return atomic_load(&recover_tainted);
}
