/*
 * exec.c -- the exec transport: exec://PROGRAM ARG... runs a helper
 * program and talks to it over the helper's stdin and stdout, each
 * message framed by a 4-byte big-endian length exactly as the stream
 * transport frames it (transport/stream/stream.c).
 *
 *   exec:///usr/bin/ssh host remo-helper   ssh, which runs the helper there
 *   exec://./calc-helper --serve           a path relative to the cwd
 *   exec://calc-helper                     no '/': searched in $PATH
 *
 * The URL: the text after "exec://" is split on spaces (a run of spaces
 * counts as one); the first word is the program, the rest are its
 * arguments, passed as they are.  No shell is involved and there is no
 * quoting or escaping of any kind, so an argument cannot contain a space
 * and "$HOME" or "*" reach the program literally: a command that needs
 * more is wrapped in a script.  A program without a '/' is searched in
 * $PATH, as execvp(3) does.
 *
 * Connect-only: the other side is the helper, which makes a channel of
 * its own fds 0 and 1 (demo/custom-transport/fdchannel.c shows one);
 * there is nothing to listen on, so the listener operations are NULL.
 *
 * Choices, and what was rejected:
 *
 *  - One socketpair, not two pipes.  The child gets the same socket as
 *    stdin and stdout.  shutdown() on our end then does both things close
 *    must do in one call (wake a recv blocked in poll, and give the child
 *    EOF), and send can say MSG_NOSIGNAL.  Over a pipe a write to a dead
 *    helper raises SIGPIPE, and a library must not ignore SIGPIPE for the
 *    whole process; two pipes would also need a self-pipe to wake recv.
 *
 *  - fork and execvp, with a close-on-exec status pipe: exec closes it
 *    (success: the parent reads EOF), or the child writes exec's errno to
 *    it and exits 127 (the parent reads the number).  So a program that
 *    cannot be run fails connect with its reason, instead of giving a
 *    session that only ever sees EOF.  posix_spawnp was rejected because
 *    whether it reports a failed exec depends on the libc (glibc before
 *    2.24 returned success and a child that exited 127).
 *
 *  - The caller may have other threads, and one of them may hold a lock
 *    (malloc's, stdio's) at the moment of fork, forever, in the child.  So
 *    between fork and exec the child calls only async-signal-safe
 *    functions (dup2, sigaction, sigprocmask, execvp, write, _exit): argv
 *    is built before the fork.  (execvp is not on every edition's list of
 *    async-signal-safe functions, but glibc since 2.24 and musl search
 *    $PATH on the stack, without allocating.)
 *    Every descriptor made here is close-on-exec, so another thread's
 *    child never inherits one of ours.
 *
 *  - In the child, signal handlers the caller installed are reset to the
 *    default before they can run there, and the signal mask is emptied,
 *    so that the helper can be stopped with SIGTERM (below).  Signals the
 *    caller ignores stay ignored, as across any exec.
 *
 *  - stderr is shared: the helper logs there and the user sees it.  A
 *    helper must never write anything but messages to its stdout.
 *
 * The child's end (fini): our end of the socket is closed, which the
 * helper reads as EOF and exits.  fini waits up to EXEC_GRACE_MS for
 * that, then sends SIGTERM and waits EXEC_TERM_MS more, then SIGKILL and
 * waits for good: no zombie is left.  A helper that dies early is EOF
 * on our end: REMO_EPEERLOST.  A program that reaps children itself
 * (SIGCHLD set to SIG_IGN, or waitpid(-1) in a handler) makes waitpid
 * fail with ECHILD: fini takes the child as gone.  fini signals the pid
 * only right after waitpid said it is an unreaped child of ours, so it
 * cannot be a recycled pid (short of another thread reaping it in that
 * instant).
 *
 * Limits: EXEC_MAX_MESSAGE (64 MiB) a message; a longer length prefix
 * ends the connection (REMO_EPROTO) before anything is allocated for it.
 *
 * Neighbours: include/remo/transport.h is the contract; the core
 * (src/channel/loader.c) allocates struct exec_conn zeroed and calls in.
 */
#include "config.h"

#include <remo/transport.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXEC_MAX_MESSAGE (64u << 20)
#define EXEC_CONNECT_TIMEOUT_MS 10000 /* when the caller gives -1      */
#define EXEC_GRACE_MS 1000            /* for the helper to exit on EOF */
#define EXEC_TERM_MS 500              /* for it to obey SIGTERM        */

struct exec_conn {
	remo_frame_fd f; /* our end of the socketpair, framed (in the core) */
	pid_t pid;       /* the child; 0 once reaped                        */
};

static int64_t exec_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== the command line =================================================== */

/*
 * Splits the text after "exec://" into a NULL-terminated argv, stored in
 * buf (one allocation through remo's allocator: the pointers, then a
 * copy of the text with a NUL after each word).  REMO_OK, REMO_EINVAL
 * (no program), REMO_ENOMEM.  The caller frees buf in every case.
 */
static int exec_argv(const char *url, remo_buf *buf, char ***argv)
{
	const char *cmd = url + strlen("exec://");
	size_t words = 0, len = strlen(cmd);
	for (const char *p = cmd; *p != '\0'; p++)
		if (*p != ' ' && (p == cmd || p[-1] == ' '))
			words++;
	if (words == 0) {
		remo_raise("ValueError", "exec: no program in '%s' "
		           "(exec://PROGRAM ARG...)", url);
		return REMO_EINVAL;
	}
	size_t ptrs = (words + 1) * sizeof(char *);
	if (remo_buf_reserve(buf, ptrs + len + 1) != REMO_OK)
		return REMO_ENOMEM;
	char **v = (char **)(void *)buf->data;
	char *text = (char *)buf->data + ptrs;
	memcpy(text, cmd, len + 1);
	size_t n = 0;
	for (char *p = text; *p != '\0'; p++) {
		if (*p == ' ')
			*p = '\0';
		else if (p == text || p[-1] == '\0')
			v[n++] = p;
	}
	v[n] = NULL;
	*argv = v;
	return REMO_OK;
}

/* ==== starting the child ================================================= */

/* Raises err under its errno name (EMFILE...) with what failed. */
static int exec_raise_errno(int err, const char *what, int rc)
{
	const char *name = remo_errno_name(err);
	remo_raise(name ? name : "OSError", "exec: %s: %s", what, strerror(err));
	return rc;
}

/*
 * Returns fd moved to 3 or above (close-on-exec), or -1.  The child's fds
 * must not be 0, 1 or 2: dup2 onto 0 and 1 would overwrite the status
 * pipe, or be a no-op that leaves stdin close-on-exec.
 */
static int exec_above_stdio(int fd)
{
	if (fd > 2)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return moved;
}

/*
 * The child, between fork and exec: async-signal-safe calls only.  Never
 * returns.  sock becomes fds 0 and 1; exec's errno goes to status.
 */
static void exec_child(int sock, int status, char **argv,
                       const sigset_t *none)
{
	/* handlers copied from the caller must not run in here; SIG_IGN
	 * stays, as it would across any exec */
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_IGN &&
		    sa.sa_handler != SIG_DFL) {
			sa.sa_handler = SIG_DFL;
			sa.sa_flags = 0;
			sigaction(sig, &sa, NULL);
		}
	}
	sigprocmask(SIG_SETMASK, none, NULL);
	int err;
	/* dup2 clears close-on-exec on 0 and 1; sock itself is closed by exec */
	if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0)
		err = errno;
	else {
		execvp(argv[0], argv);
		err = errno;
	}
	ssize_t w;
	do
		w = write(status, &err, sizeof err);
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* Kills and reaps a child that failed to start or timed out. */
static void exec_kill_now(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * Waits up to timeout_ms on the status pipe.  REMO_OK when exec closed
 * it; REMO_EINVAL (*err: exec's errno) when the child wrote one;
 * REMO_ETIMEDOUT.
 */
static int exec_wait_status(int status, int timeout_ms, int *err)
{
	int64_t deadline = exec_now_ms() + timeout_ms;
	unsigned char got[sizeof(int)];
	size_t n = 0;
	for (;;) {
		int wait = (int)(deadline - exec_now_ms());
		struct pollfd p = {status, POLLIN, 0};
		int r = poll(&p, 1, wait < 0 ? 0 : wait);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return REMO_ETIMEDOUT;
		ssize_t m = read(status, got + n, sizeof got - n);
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			break; /* EOF: exec closed the pipe */
		if ((n += (size_t)m) == sizeof got)
			break;
	}
	if (n < sizeof got)
		return REMO_OK;
	memcpy(err, got, sizeof *err);
	return REMO_EINVAL;
}

static int exec_connect(void *state, const char *url, int timeout_ms)
{
	struct exec_conn *c = state;
	remo_buf argbuf = {0};
	char **argv = NULL;
	int sv[2] = {-1, -1}, st[2] = {-1, -1};
	pid_t pid = -1;
	int rc, err = 0;

	if (timeout_ms < 0)
		timeout_ms = EXEC_CONNECT_TIMEOUT_MS;
	if ((rc = exec_argv(url, &argbuf, &argv)) != REMO_OK)
		goto out;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		rc = exec_raise_errno(errno, "socketpair", REMO_ENOMEM);
		goto out;
	}
	if (pipe2(st, O_CLOEXEC) != 0) {
		rc = exec_raise_errno(errno, "pipe", REMO_ENOMEM);
		goto out;
	}
	if ((sv[1] = exec_above_stdio(sv[1])) < 0 ||
	    (st[1] = exec_above_stdio(st[1])) < 0) {
		rc = exec_raise_errno(errno, "fcntl", REMO_ENOMEM);
		goto out;
	}

	/* No signal may run a handler in the child before it resets them. */
	sigset_t all, none, old;
	sigfillset(&all);
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		exec_child(sv[1], st[1], argv, &none);
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		rc = exec_raise_errno(err, "fork", REMO_ENOMEM);
		goto out;
	}

	/* Only the child holds these now: the status pipe's EOF means exec. */
	close(sv[1]);
	close(st[1]);
	sv[1] = st[1] = -1;
	rc = exec_wait_status(st[0], timeout_ms, &err);
	if (rc != REMO_OK) {
		exec_kill_now(pid);
		if (rc == REMO_ETIMEDOUT)
			remo_raise("TimeoutError", "exec: %s: did not start in %d ms",
			           argv[0], timeout_ms);
		else if (err == ENOENT || err == ENOTDIR)
			remo_raise("NotFound", "exec: %s: %s", argv[0], strerror(err));
		else if (err == EACCES || err == EPERM)
			remo_raise("PermissionError", "exec: %s: %s", argv[0],
			           strerror(err));
		else
			exec_raise_errno(err, argv[0], rc);
		goto out;
	}
	remo_frame_fd_init(&c->f, sv[0], EXEC_MAX_MESSAGE);
	c->pid = pid;
	sv[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (st[i] >= 0)
			close(st[i]);
	}
	remo_buf_free(&argbuf);
	return rc;
}

/* ==== sending and receiving ============================================== */

static int exec_send(void *state, const void *msg, size_t n)
{
	return remo_frame_fd_send(&((struct exec_conn *)state)->f, msg, n);
}

static int exec_sendv(void *state, const remo_iov *iov, int n)
{
	return remo_frame_fd_sendv(&((struct exec_conn *)state)->f, iov, n);
}

static int exec_recv(void *state, remo_buf *out, int timeout_ms)
{
	return remo_frame_fd_recv(&((struct exec_conn *)state)->f, out,
	                          timeout_ms);
}

/* ==== ending ============================================================= */

static void exec_limit(void *state, size_t n)
{
	remo_frame_fd_set_limit(&((struct exec_conn *)state)->f, n);
}

/* wakes a poll in recv at once, and gives the helper EOF */
static void exec_close(void *state)
{
	remo_frame_fd_close(&((struct exec_conn *)state)->f);
}

/*
 * True once pid is reaped (or reaped by someone else: ECHILD), waiting up
 * to wait_ms.  Polls with a growing sleep: a helper that exits on EOF is
 * usually gone within the first millisecond or two.
 */
static bool exec_reaped(pid_t pid, int wait_ms)
{
	int64_t deadline = exec_now_ms() + wait_ms;
	long nap_us = 200;
	for (;;) {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (r < 0 && errno == EINTR)
			continue;
		if (exec_now_ms() >= deadline)
			return false;
		struct timespec ts = {0, nap_us * 1000};
		nanosleep(&ts, NULL);
		if (nap_us < 20000)
			nap_us *= 2;
	}
}

static void exec_fini(void *state)
{
	struct exec_conn *c = state;
	/* the helper reads EOF, if close had not told it */
	remo_frame_fd_fini(&c->f);
	if (c->pid > 0 && !exec_reaped(c->pid, EXEC_GRACE_MS)) {
		kill(c->pid, SIGTERM);
		if (!exec_reaped(c->pid, EXEC_TERM_MS))
			exec_kill_now(c->pid);
	}
	c->pid = 0;
}

/* ==== the entry ========================================================== */

static const char *const exec_schemes[] = {"exec", NULL};

static const remo_transport_ops exec_ops = {
	.abi = REMO_TRANSPORT_ABI,
	.name = "exec",
	.schemes = exec_schemes,
	.conn_size = sizeof(struct exec_conn),
	.listener_size = 0,
	.max_message = EXEC_MAX_MESSAGE,
	.connect = exec_connect,
	.send = exec_send,
	.sendv = exec_sendv,
	.recv = exec_recv,
	.close = exec_close,
	.fini = exec_fini,
	.limit = exec_limit,
	/* connect-only: no listen, accept, close_listener, fini_listener */
};

REMO_API const remo_transport_ops *remo_transport_exec(void);

const remo_transport_ops *remo_transport_exec(void)
{
	return &exec_ops;
}
