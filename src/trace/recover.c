/*
 * recover.c -- crashes: recovering from one inside an armed call,
 * and reporting one that nothing recovers from.
 *
 * One handler for SIGSEGV, SIGBUS, SIGFPE and SIGABRT, installed once
 * for the process.  Each thread keeps a stack of armed records (the
 * innermost call with recovery on at the top).  On a crash the handler
 * captures the interrupted stack from its ucontext, hands the crash to
 * the crash service thread if anyone wants more of it (below), waits,
 * and then:
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
 * The handler itself allocates nothing, takes no lock and serves
 * nothing: it calls libunwind's local unwinding (documented safe in a
 * signal handler), reads initial-exec thread-locals, and makes system
 * calls.  Everything else a crash needs (DWARF locals, which take
 * libdw's lock and allocate; the Crash error; the reply to the caller;
 * a live park) runs on the crash service, a thread started with the
 * handlers, in normal context.  The handler claims a record (struct
 * remo__crash, one of a static few, by compare-and-swap), fills it,
 * writes a pointer to it into the service's pipe and waits on a futex
 * in the record until the service says done, or until the record's
 * bound passes: then it marks the record abandoned (the service frees
 * it without touching the rest, whether it had taken it or not) and
 * goes on without.  The service takes records in order, so two crashes
 * at once are served one after the other, each thread bounded by its
 * own wait; no wait is for a lock.
 *
 * Rejected: a pipe per thread, or a wake descriptor made when a thread
 * arms (a descriptor per serving thread, for a wait that a futex in the
 * record does with none); the record on the crashed thread's stack (a
 * thread that gave up waiting may unmap it while the pipe still holds
 * its address); serving the crash in the handler, as before (malloc and
 * locks in a signal handler: a crash inside malloc hung it, and only an
 * alarm(3) made sure the process still died).
 *
 * The handler runs on an alternate stack, so that a stack overflow can
 * be caught too.  Live mode parks the crashed thread in the handler, on
 * that stack, waiting for the service, while a debugger looks at the
 * frames below it.  A thread gets its alternate stack when it first
 * arms; one the thread has already (its own, or a sanitizer's) is
 * kept, because replacing it would free or leak its owner's memory.
 *
 * SA_NODEFER: a crash inside the handler comes back into it rather than
 * killing the process on the spot; the handler notices (a per-thread
 * flag) and, while capturing, jumps back to say "no more frames", or
 * otherwise gives up and lets the process die.
 *
 * Thread-local state is initial-exec TLS (REMO__TLS_IE): the handler
 * must not reach __tls_get_addr, which may allocate.
 */
#include "trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define TLS_IE REMO__TLS_IE

static const int recover_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
#define RECOVER_NSIGS (sizeof recover_sigs / sizeof recover_sigs[0])

static struct sigaction recover_old[RECOVER_NSIGS];
static pthread_once_t recover_once = PTHREAD_ONCE_INIT;
static int recover_status = REMO_EINVAL;
static const struct remo__crash_hook *_Atomic recover_hook;
static atomic_bool recover_tainted;

static __thread struct remo__recover *recover_top TLS_IE;
static __thread bool recover_busy TLS_IE;         /* in the handler     */
static __thread sigjmp_buf *recover_capture_jb TLS_IE; /* capturing   */
static __thread bool recover_thread_ready TLS_IE; /* altstack decided   */
static __thread bool recover_on_service TLS_IE;   /* the crash service  */

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

/* ==== the crash service ================================================= */

/* How long a thread waits in its handler for the service, unless the
 * hook's capture says otherwise: a crash that nothing recovers from
 * then dies anyway. */
#define RECOVER_WAIT_MS 3000

/*
 * The records, in static memory, not on the crashed thread's stack: a
 * thread whose wait ran out goes on (and may exit, unmapping its
 * alternate stack) while its record's pointer is still in the pipe, and
 * the service must be able to look at the record's state then.  A
 * record's life:
 *
 *   FREE -> FILLING (a handler claims it) -> QUEUED (in the pipe)
 *        -> TAKEN (the service works) -> DONE (the handler sees it, and
 *        frees the record)
 *
 * and a handler whose wait runs out makes QUEUED or TAKEN ABANDONED;
 * the service then frees the record when it reads it from the pipe, or
 * at remo__crash_done, and does not wake anyone.  More crashes at once
 * than records: the extra ones go without the service.
 */
#define RECOVER_RECORDS 16
enum { CRASH_FREE, CRASH_FILLING, CRASH_QUEUED, CRASH_TAKEN, CRASH_DONE,
       CRASH_ABANDONED };
static struct remo__crash recover_records[RECOVER_RECORDS];

/* The service's pipe, and the process it runs in: after fork the child
 * has the pipe but not the thread, which its first remo__recover_init
 * starts again (with a pipe of its own: the old one is its parent's
 * too).  The handler uses the pipe only if the pid is its own. */
static pthread_mutex_t recover_svc_lock = PTHREAD_MUTEX_INITIALIZER;
static int recover_svc_rd = -1, recover_svc_wr = -1;
static _Atomic pid_t recover_svc_pid;

static long recover_futex(_Atomic int *addr, int op, int val,
                          const struct timespec *timeout)
{
	return syscall(SYS_futex, addr, op, val, timeout, NULL, 0);
}

void remo__crash_done(struct remo__crash *c)
{
	int st = CRASH_TAKEN;
	if (atomic_compare_exchange_strong(&c->state, &st, CRASH_DONE))
		recover_futex(&c->state, FUTEX_WAKE_PRIVATE, 1, NULL);
	else /* abandoned: its thread went on without it */
		atomic_store(&c->state, CRASH_FREE);
}

static void *recover_service(void *arg)
{
	int fd = (int)(intptr_t)arg;
	recover_on_service = true;
	for (;;) {
		struct remo__crash *c;
		ssize_t n = read(fd, &c, sizeof c);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof c)
			break; /* the pipe is gone (a program closed it) */
		int st = CRASH_QUEUED;
		if (!atomic_compare_exchange_strong(&c->state, &st,
		                                    CRASH_TAKEN)) {
			/* abandoned: its thread stopped waiting */
			atomic_store(&c->state, CRASH_FREE);
			continue;
		}
		if (c->want_dlocals &&
		    remo__trace_dwarf_locals(c->uc, 0, &c->r->dlocals) != REMO_OK)
			c->r->dlocals = remo_nil();
		if (c->hook != NULL)
			c->hook->serve(c); /* says done, now or later */
		else
			remo__crash_done(c);
	}
	return NULL;
}

/*
 * Starts the service for this process, if it does not run yet.  Its
 * thread blocks every signal but the crash ones (a program's own
 * handlers for the others are not for it to run) and is detached: it
 * lives as long as the process.  A failure leaves crashes without the
 * service: recovered, not reported.
 */
static void recover_service_start(void)
{
	pid_t me = getpid();
	if (atomic_load(&recover_svc_pid) == me)
		return;
	pthread_mutex_lock(&recover_svc_lock);
	if (atomic_load(&recover_svc_pid) != me) {
		if (recover_svc_rd >= 0) { /* a child of fork: its parent's */
			close(recover_svc_rd);
			close(recover_svc_wr);
			recover_svc_rd = recover_svc_wr = -1;
		}
		int fds[2];
		sigset_t all, old;
		pthread_t th;
		pthread_attr_t a;
		if (pipe2(fds, O_CLOEXEC) == 0) {
			/* the handler never waits to queue: a full pipe is a
			 * crash without the service */
			fcntl(fds[1], F_SETFL, O_NONBLOCK);
			sigfillset(&all);
			for (size_t i = 0; i < RECOVER_NSIGS; i++)
				sigdelset(&all, recover_sigs[i]);
			sigdelset(&all, SIGILL);
			sigdelset(&all, SIGTRAP);
			pthread_attr_init(&a);
			pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			int rc = pthread_create(&th, &a, recover_service,
			                        (void *)(intptr_t)fds[0]);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			pthread_attr_destroy(&a);
			if (rc == 0) {
				recover_svc_rd = fds[0];
				recover_svc_wr = fds[1];
				atomic_store(&recover_svc_pid, me);
			} else {
				close(fds[0]);
				close(fds[1]);
			}
		}
	}
	pthread_mutex_unlock(&recover_svc_lock);
}

/* Waits, in the handler, until the service is done with c or c's bound
 * passes; then c is abandoned, unless it became done meanwhile. */
static void recover_wait(struct remo__crash *c)
{
	struct timespec now, end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += c->wait_ms / 1000;
	end.tv_nsec += (long)(c->wait_ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		int st = atomic_load(&c->state);
		if (st == CRASH_DONE) {
			atomic_store(&c->state, CRASH_FREE);
			return;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		struct timespec left = {end.tv_sec - now.tv_sec,
		                        end.tv_nsec - now.tv_nsec};
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0) {
			if (atomic_compare_exchange_strong(&c->state, &st,
			                                   CRASH_ABANDONED))
				return;
			continue; /* it changed: done, perhaps */
		}
		/* EINTR, EAGAIN (st changed), ETIMEDOUT: look again */
		recover_futex(&c->state, FUTEX_WAIT_PRIVATE, st, &left);
	}
}

/* A free record, now the caller's to fill; NULL if all are in use. */
static struct remo__crash *recover_claim(void)
{
	for (size_t i = 0; i < RECOVER_RECORDS; i++) {
		int st = CRASH_FREE;
		if (atomic_compare_exchange_strong(&recover_records[i].state,
		                                   &st, CRASH_FILLING))
			return &recover_records[i];
	}
	return NULL;
}

/*
 * In the handler: gives the crash to the service when the hook's
 * capture or the record (DWARF locals) asks for it, and waits.  Not on
 * the service itself (a crash of the service has nobody to wait for),
 * nor in a child of fork that has not started its own.
 */
static void recover_serve(struct remo__recover *r, void *uc, bool recovering,
                          bool whole)
{
	if (recover_on_service || atomic_load(&recover_svc_pid) != getpid())
		return;
	struct remo__crash *c = recover_claim();
	if (c == NULL)
		return;
	c->r = r;
	c->uc = uc;
	c->recovering = recovering;
	c->in_naming = remo__trace_naming_held();
	c->tid = (int)gettid();
	c->wait_ms = RECOVER_WAIT_MS;
	memset(c->ctx, 0, sizeof c->ctx);
	/* DWARF locals only from a stack libunwind could walk: a fault
	 * while the service reads them would leave libdw's lock held */
	c->want_dlocals = recovering && r->want_dlocals && whole &&
	                  !c->in_naming;
	const struct remo__crash_hook *hook = atomic_load(&recover_hook);
	c->hook = hook != NULL && hook->capture(c) ? hook : NULL;
	if (c->hook == NULL && !c->want_dlocals) {
		atomic_store(&c->state, CRASH_FREE);
		return;
	}
	atomic_store(&c->state, CRASH_QUEUED);
	/* a pipe write of at most PIPE_BUF bytes is atomic: records of two
	 * threads never mix */
	if (write(recover_svc_wr, &c, sizeof c) != (ssize_t)sizeof c) {
		atomic_store(&c->state, CRASH_FREE); /* never queued */
		return;
	}
	recover_wait(c);
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
	r->report = remo_nil();
	bool whole = recover_capture(r, uc);
	if (recovering) {
		/* Disarmed and tainted before the service runs: a live park
		 * serves calls on another thread, and a crash there must not
		 * come back to this record. */
		recover_top = r->prev;
		atomic_store(&recover_tainted, true);
	}
	recover_serve(r, uc, recovering, whole);
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
	if (recover_status == REMO_OK)
		recover_service_start();
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
	r->report = remo_nil();
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

void remo__set_crash_hook(const struct remo__crash_hook *h)
{
	atomic_store(&recover_hook, h);
}

bool remo_tainted(void)
{
	return atomic_load(&recover_tainted);
}
