/*
 * bench_transport.c -- remo between two processes, over the transports
 * it ships, against the raw transport in the same run with the same
 * processes.  bench.h has the method (batches, medians, interleaving)
 * and the output line; bench_peer.c is the server side.
 *
 * Processes (all started with fork+exec before this process creates a
 * socket, each pinned with sched_setaffinity between fork and exec; this
 * process pins itself to CPU 0):
 *
 *   remo0  bench_peer remo, CPU 0: a remo_server on unix, tcp (and
 *          nn+ipc, nn+tcp when the nanomsg transport module loads)
 *   echo0  bench_peer echo, CPU 0: the raw baselines, framed through the
 *          stream transport module on unix and tcp, and raw nanomsg
 *          NN_PAIR sockets on ipc and tcp
 *   sock0  bench_peer sock, CPU 0: plain ping-pong on a socketpair
 *   remo1, echo1, sock1   the same on CPU 1, for the cross-core lines
 *   remoM, echoM          fresh servers for idle_session_memory only
 *
 * `make bench` runs this under taskset -c 0; moving a peer to CPU 1 is
 * still allowed (taskset sets a mask, not a cpuset).  The placement is
 * printed at the start (the masks) and at the end (the CPU each thread
 * of each process last ran on, from /proc/PID/task/TID/stat), and the
 * remo peers' cpu() export is checked against it.
 *
 * Lines (figures are medians; every line says client_cpu= and
 * server_cpu=):
 *
 *   transport.null_call.unix   remo_call(noop) on a session over unix://
 *                              against a raw framed round trip of the
 *                              same request and reply sizes through the
 *                              stream transport (raw_ns), and a plain
 *                              socketpair ping-pong of those sizes
 *                              (plain_ns).  ratio = remo_ns / raw_ns, a
 *                              COST: 1.25 is 25% over raw.  target 1.25.
 *   transport.null_call.tcp    the same over tcp://127.0.0.1.  target 1.25.
 *   transport.null_call.nn_ipc, .nn_tcp   over the nanomsg transport
 *                              against a raw nanomsg NN_PAIR round trip.
 *                              target 1.15.  "# skipped" without the
 *                              module, with the raw nanomsg figures.
 *   transport.bytes_1m.unix, .tcp   remo_call(size, (1 MiB bytes,))
 *                              against sending the same 1 MiB message
 *                              raw and getting the same small reply.
 *                              MB/s = 10^6 payload bytes a second.
 *                              ratio = remo_MBps / raw_MBps, a SPEED:
 *                              1 is as fast as raw.  target 0.8 (at least).
 *                              tcp: the median of BYTES_TCP_PAIRS fresh
 *                              connection pairs (line_bytes says why).
 *   transport.cross_core.unix  client on CPU 0, server on CPU 1: remo
 *                              null call, raw framed and plain socketpair
 *                              round trips, all blocking.  ratio = remo /
 *                              raw (cost).
 *   transport.spin_wait.same_core, .cross_core   the plain socketpair
 *                              round trip when BOTH ends wait by polling
 *                              without blocking for up to N us before
 *                              blocking: N = 0 (block_ns), 5, 20, 50, and
 *                              20 and 50 with sched_yield() between polls
 *                              (spin20y, spin50y).  hit_X = share of the
 *                              client's waits that the spin caught.  ratio = best / block
 *                              (cost: below 1, spinning wins).  The
 *                              evidence for whether remo's session
 *                              should spin before it blocks.
 *   transport.calls_per_sec.cN   N client threads (1, 8, 64, 1000) in this
 *                              process, each with its own session to
 *                              remo0, null calls for CPS_ROUNDS rounds of
 *                              CPS_ROUND_MS; against N raw framed echo
 *                              clients to echo0, and N raw clients that
 *                              spin (yielding) up to CPS_SPIN_US before
 *                              blocking (raw_spin20y_cps: does spinning
 *                              hurt when many share a core?).  Medians of
 *                              the rounds.  ratio = remo_cps / raw_cps, a
 *                              SPEED.
 *   transport.pipelined.same_core, .cross_core   async null calls on ONE
 *                              session to remo0 (remo1), at most
 *                              PIPE_WINDOW in flight: remo_call_async,
 *                              and remo_future_wait for the oldest when
 *                              the window is full; against raw framed
 *                              messages of the same sizes with the same
 *                              window to echo0 (echo1).  ratio =
 *                              remo_calls_per_sec / raw_msgs_per_sec, a
 *                              SPEED.  target 300,000 calls a second.
 *                              remo_msgs_out_per_call counts what remo
 *                              sends beside the requests (a future's
 *                              kept result is dropped with a message of
 *                              its own).
 *   transport.pipelined_oneway.same_core, .cross_core   remo_call_oneway
 *                              null calls and a last plain call to see
 *                              them all served, against raw one-way
 *                              messages (the echo peer answers none) with
 *                              a round trip where remo has one (every
 *                              REMO_ONEWAY_WINDOW-th, and the last).
 *                              ratio as above.
 *   transport.pipelined_batch64.same_core, .cross_core   remo_batch_call
 *                              add(1, 1) PIPE_BATCH times, remo_batch_send,
 *                              at most PIPE_WINDOW calls in flight; against
 *                              raw messages of the batch's size each
 *                              answered by PIPE_BATCH replies of the
 *                              reply's size, as remo's are.  ratio as
 *                              above, calls against replies.
 *   transport.chain10.same_core, .cross_core   10 dependent calls on
 *                              the peer's root Node (next() 9 times, then
 *                              depth()), pipelined on promises and waiting
 *                              for the last only, against 10 plain calls.
 *                              ratio = pipelined_ns / sequential_ns, a
 *                              COST: below 1 pipelining wins.
 *   transport.idle_session_memory   200 idle sessions to remoM, against
 *                              200 idle raw connections to echoM (also a
 *                              thread each): VmRSS and VmSize growth of
 *                              the server per session.  ratio = remo_kib
 *                              / raw_kib, a COST.  VmSize per connection
 *                              is mostly the thread's stack (8 MiB, the
 *                              default); what remo has beyond it is
 *                              glibc's per-thread malloc arenas (64 MiB
 *                              of address space each, at most 8 per
 *                              cpu: a fixed cost spread over the 200),
 *                              since each session thread allocates and
 *                              an idle raw echo thread does not.  Since
 *                              issue 12 a remo session holds no thread.
 *   transport.idle_10k         10,000 idle sessions to remoM: RSS per
 *                              session and the server's threads, against
 *                              the raw figure per connection above
 *                              (target: at most 8 KiB).
 *
 * `bench_transport NAME-PART` runs only the lines whose name contains
 * NAME-PART (the processes all start anyway), e.g. for perf record.
 *
 * Every result is checked (noop is nil, add and size right, cpu() where
 * it was pinned, every raw reply the size asked); a mismatch, a failed
 * call or a peer that dies of anything but our SIGTERM exits non-zero.
 */
#include "config.h"

#include <remo/remo.h>
#include <remo/transport.h>

#include <nanomsg/nn.h>
#include <nanomsg/pair.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "chain.h"
#include "counting.h"

#define CLIENT_CPU 0
#define OTHER_CPU 1
#define BYTES_LEN (1u << 20)
#define BYTES_TCP_PAIRS 3
#define SOCK_HDR 12               /* bench_peer.c's sock header */
#define SOCK_YIELD 0x80000000u
#define CPS_ROUNDS 3
#define CPS_ROUND_MS 250
#define CPS_SPIN_US 20
#define CPS_MAX_CLIENTS 1000
#define IDLE_SESSIONS 200
#define IDLE_MANY 10000 /* transport.idle_10k: the descriptor limit is
                           raised for it (main) */
#define PEER_READY_MS 10000
#define NN_TIMEOUT_MS 10000
#define TARGET_NULL_CALL 1.25
#define TARGET_NULL_CALL_NN 1.15
#define TARGET_BYTES 0.8
#define ECHO_COUNT 0x80000000u    /* bench_peer.c's counted echo     */
/*
 * PIPE_WINDOW: calls in flight, under REMO_MAX_INFLIGHT (1024) and well
 * under what a unix socket's default send buffer holds (212992 bytes of
 * kernel accounting, several hundred bytes per small frame: measured,
 * 400 small replies in flight went, 1000 did not).  Past it both ends
 * block in send, each waiting for the other to read: the raw loop, one
 * thread, would never leave it, and remo only at the 20 ms pace of the
 * server's lease thread reading for the blocked session (512 async null
 * calls in flight ran at about 400 calls a second).
 */
#define PIPE_WINDOW 256
#define PIPE_BATCH 64             /* calls in one remo_batch          */
#define PIPE_WAIT_MS 10000        /* bound on every wait of the pipelined
                                     and chain lines                  */
#define PIPE_CHECK_CALLS 4096     /* calls counted for msgs per call  */
#define TARGET_PIPELINED_CPS 300000

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
                                                     noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "bench_transport: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1); /* atexit: the peers are stopped */
}

static const char *err_text(void)
{
	const char *m = remo_error_message(remo_last_error());
	return m != NULL ? m : "?";
}

static void die_remo(const char *what, int rc)
{
	die("%s: %s (%s)", what, remo_strerror(rc), err_text());
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* ==== the peer processes ================================================= */

#define PEER_MAX_URLS 8

struct peer {
	const char *name;
	int cpu;
	pid_t pid;
	bool reaped;
	int nurls;
	char arg[PEER_MAX_URLS][256];   /* as given                      */
	char bound[PEER_MAX_URLS][256]; /* as bound; "" if it failed     */
	char why[PEER_MAX_URLS][256];   /* why it failed                 */
};

static struct peer *peers[16];
static int npeers;
static char peer_path[PATH_MAX + 32];
static char tmpdir[64];

static void pin_self(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		die("cannot pin to CPU %d: %s", cpu, strerror(errno));
}

/* Reads one line from a starting peer's stdout, a byte at a time (the
 * few lines before READY), waiting at most PEER_READY_MS for each. */
static void peer_line(int fd, const char *name, char *line, size_t n)
{
	size_t len = 0;
	struct pollfd pf = {fd, POLLIN, 0};
	for (;;) {
		char c;
		if (poll(&pf, 1, PEER_READY_MS) <= 0)
			die("peer %s did not get ready", name);
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("peer %s ended before it was ready (could it not be "
			    "pinned, or not exec?)", name);
		if (c == '\n')
			break;
		if (len + 1 < n)
			line[len++] = c;
	}
	line[len] = '\0';
}

/*
 * Starts bench_peer with args, pinned to cpu, and reads its LISTEN/FAIL
 * lines up to READY.  keep_fd (or -1) is inherited by the peer.
 */
static void peer_start(struct peer *p, const char *name, int cpu,
                       const char *const *args, int keep_fd)
{
	int out[2];
	char *argv[PEER_MAX_URLS + 3];
	int argc = 0;

	memset(p, 0, sizeof *p);
	p->name = name;
	p->cpu = cpu;
	argv[argc++] = peer_path;
	for (; *args != NULL && argc < PEER_MAX_URLS + 2; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	if (pipe2(out, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* only async-signal-safe calls until the exec */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) != 0)
			_exit(126);
		/* if this process dies without stopping it, so does the peer */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(out[1], 1);
		if (keep_fd >= 0)
			fcntl(keep_fd, F_SETFD, 0);
		execv(peer_path, argv);
		_exit(127);
	}
	close(out[1]);
	p->pid = pid;
	peers[npeers++] = p;

	char line[1024];
	for (;;) {
		peer_line(out[0], name, line, sizeof line);
		if (strcmp(line, "READY") == 0)
			break;
		char *sp1 = strchr(line, ' ');
		char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (sp2 == NULL || p->nurls == PEER_MAX_URLS)
			die("peer %s said '%s'", name, line);
		*sp1 = *sp2 = '\0';
		int i = p->nurls++;
		snprintf(p->arg[i], sizeof p->arg[i], "%s", sp1 + 1);
		if (strcmp(line, "LISTEN") == 0)
			snprintf(p->bound[i], sizeof p->bound[i], "%s", sp2 + 1);
		else
			snprintf(p->why[i], sizeof p->why[i], "%s", sp2 + 1);
	}
	close(out[0]);
}

/* The bound URL for what was asked as arg, or NULL (*why says why). */
static const char *peer_url(const struct peer *p, const char *arg,
                            const char **why)
{
	for (int i = 0; i < p->nurls; i++)
		if (strcmp(p->arg[i], arg) == 0) {
			if (why)
				*why = p->why[i];
			return p->bound[i][0] ? p->bound[i] : NULL;
		}
	if (why)
		*why = "not asked for";
	return NULL;
}

static const char *peer_url_must(const struct peer *p, const char *arg)
{
	const char *why, *u = peer_url(p, arg, &why);
	if (u == NULL)
		die("peer %s cannot listen on %s: %s", p->name, arg, why);
	return u;
}

/* Stops every peer not yet reaped: SIGTERM, up to 3 s, then SIGKILL.
 * Returns false if one ended other than by our SIGTERM or exit 0. */
static bool peers_stop(void)
{
	bool ok = true;
	for (int i = 0; i < npeers; i++)
		if (!peers[i]->reaped)
			kill(peers[i]->pid, SIGTERM);
	for (int i = 0; i < npeers; i++) {
		struct peer *p = peers[i];
		int st = 0;
		if (p->reaped)
			continue;
		for (int t = 0; t < 300; t++) {
			pid_t r = waitpid(p->pid, &st, WNOHANG);
			if (r == p->pid || (r < 0 && errno != EINTR))
				break;
			if (t == 299) {
				fprintf(stderr, "bench_transport: peer %s ignored "
				        "SIGTERM; killed\n", p->name);
				kill(p->pid, SIGKILL);
				waitpid(p->pid, &st, 0);
				ok = false;
			}
			usleep(10000);
		}
		p->reaped = true;
		if (WIFSIGNALED(st) ? WTERMSIG(st) != SIGTERM
		                    : WEXITSTATUS(st) != 0) {
			fprintf(stderr, "bench_transport: peer %s (pid %d) ended "
			        "badly: %s %d\n", p->name, (int)p->pid,
			        WIFSIGNALED(st) ? "signal" : "exit status",
			        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			ok = false;
		}
	}
	return ok;
}

/* Removes the socket files and the temporary directory. */
static void tmpdir_remove(void)
{
	if (tmpdir[0] == '\0')
		return;
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[PATH_MAX];
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

static void cleanup_at_exit(void)
{
	peers_stop();
	tmpdir_remove();
}

/* SIGINT, SIGTERM: stop the peers (kill is async-signal-safe; the
 * sockets' directory stays behind) and go. */
static void on_signal(int sig)
{
	for (int i = 0; i < npeers; i++)
		if (!peers[i]->reaped)
			kill(peers[i]->pid, SIGTERM);
	_exit(128 + sig);
}

/* ==== where processes ran ================================================ */

/* The "Cpus_allowed_list" of pid, or "?". */
static void proc_allowed(pid_t pid, char *out, size_t n)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	snprintf(out, n, "?");
	FILE *f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
			char *v = line + 18;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, n, "%s", v);
		}
	if (f != NULL)
		fclose(f);
}

/* The CPUs the threads of pid last ran on ("0", "0,1"), from field 39
 * of /proc/PID/task/TID/stat; *nthreads gets the thread count. */
static void proc_ran_on(pid_t pid, char *out, size_t n, int *nthreads)
{
	char path[300], line[1024];
	unsigned long mask = 0;
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	struct dirent *e;
	*nthreads = 0;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int)pid,
		         e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(line, sizeof line, f) != NULL) {
			char *p = strrchr(line, ')');
			/* after the ')' closing field 2: p moves to the space
			 * before field 3, 4, ... 39, "processor" */
			for (int field = 3; p != NULL && field <= 39; field++)
				p = strchr(p + 1, ' ');
			if (p != NULL) {
				int cpu = atoi(p + 1);
				if (cpu >= 0 && cpu < 64)
					mask |= 1ul << cpu;
				(*nthreads)++;
			}
		}
		fclose(f);
	}
	if (d != NULL)
		closedir(d);
	size_t len = 0;
	out[0] = '\0';
	for (int c = 0; c < 64; c++)
		if (mask & (1ul << c))
			len += (size_t)snprintf(out + len, n - len, "%s%d",
			                        len ? "," : "", c);
}

static void print_placement(const char *when)
{
	char allowed[128], ran[128];
	int nth;
	proc_allowed(getpid(), allowed, sizeof allowed);
	proc_ran_on(getpid(), ran, sizeof ran, &nth);
	printf("# %s: client pid %d pinned to cpu %s, its %d thread(s) last "
	       "ran on %s\n", when, (int)getpid(), allowed, nth, ran);
	for (int i = 0; i < npeers; i++) {
		struct peer *p = peers[i];
		if (p->reaped)
			continue;
		proc_allowed(p->pid, allowed, sizeof allowed);
		proc_ran_on(p->pid, ran, sizeof ran, &nth);
		printf("# %s: peer %-5s pid %d pinned to cpu %s, its %d "
		       "thread(s) last ran on %s\n", when, p->name, (int)p->pid,
		       allowed, nth, ran);
	}
	fflush(stdout);
}

/* ==== remo sessions ====================================================== */

struct rsess {
	remo_session *s;
	struct counting *counts;
	remo_value noop, add, size, cpu;
	remo_value bytes_args;         /* (1 MiB of bytes,), made on demand */
	remo_value add_args;           /* (1, 1), made on demand            */
};

static remo_value rsess_lookup(struct rsess *r, const char *name)
{
	remo_value v;
	int rc = remo_lookup(r->s, name, &v);
	if (rc != REMO_OK)
		die_remo(name, rc);
	return v;
}

/*
 * A session to url with the options remo_connect would give it (lease,
 * spin, the transport's message limit), on a counting channel.
 */
static void rsess_open(struct rsess *r, const char *url)
{
	remo_channel ch;
	int rc;
	memset(r, 0, sizeof *r);
	const remo_transport_ops *t = remo_transport_find(url, &rc);
	if (t == NULL)
		die_remo(url, rc);
	if ((rc = remo_channel_connect(url, 5000, &ch)) != REMO_OK)
		die_remo(url, rc);
	remo_channel cc = counting_wrap(ch, &r->counts);
	remo_session_opts o = {0};
	o.lease_ms = REMO_DEFAULT_LEASE_MS;
	o.spin_us = getenv("REMO_SPIN_US") ? atoi(getenv("REMO_SPIN_US")) : 20;
	if (o.spin_us == 0)
		o.spin_us = -1;
	if (t->max_message != 0 && t->max_message < REMO_DEFAULT_MAX_MESSAGE)
		o.max_message = t->max_message;
	if ((r->s = remo_session_new(&cc, NULL, &o, &rc)) == NULL)
		die_remo("remo_session_new", rc);
	r->noop = rsess_lookup(r, "noop");
	r->add = rsess_lookup(r, "add");
	r->size = rsess_lookup(r, "size");
	r->cpu = rsess_lookup(r, "cpu");
}

static void rsess_close(struct rsess *r)
{
	remo_value_release(r->noop);
	remo_value_release(r->add);
	remo_value_release(r->size);
	remo_value_release(r->cpu);
	remo_value_release(r->bytes_args);
	remo_value_release(r->add_args);
	remo_session_free(r->s);
}

/* A null call, checked; with opts (not NULL), remo_call_with. */
static void null_call_with(remo_value noop, const remo_call_opts *opts)
{
	remo_value out;
	int rc = opts != NULL ? remo_call_with(noop, remo_nil(), opts, &out)
	                      : remo_call(noop, remo_nil(), &out);
	if (rc != REMO_OK)
		die_remo("noop()", rc);
	if (out.kind != REMO_NIL)
		die("noop() did not return nil");
}

static void null_call(remo_value noop)
{
	null_call_with(noop, NULL);
}

static void op_null_call(void *ctx, uint64_t iters)
{
	struct rsess *r = ctx;
	for (uint64_t i = 0; i < iters; i++)
		null_call(r->noop);
	bench_sink += iters;
}

static void op_bytes(void *ctx, uint64_t iters)
{
	struct rsess *r = ctx;
	remo_value out;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_call(r->size, r->bytes_args, &out);
		if (rc != REMO_OK)
			die_remo("size(1 MiB)", rc);
		if (out.kind != REMO_INT || out.as.i != BYTES_LEN)
			die("size(1 MiB) is not 1048576");
	}
	bench_sink += iters;
}

/* The remote cpu() of r's server thread. */
static int64_t rsess_cpu(struct rsess *r)
{
	remo_value out;
	int rc = remo_call(r->cpu, remo_nil(), &out);
	if (rc != REMO_OK || out.kind != REMO_INT)
		die_remo("cpu()", rc);
	return out.as.i;
}

/* Checks add and noop, and that the server runs where it was pinned;
 * returns the sizes of one null call's request and reply. */
static void rsess_check(struct rsess *r, const struct peer *p,
                        uint64_t *req, uint64_t *reply)
{
	remo_value out, args = remo_tuple_of(2, remo_int(40), remo_int(2));
	int rc = remo_call(r->add, args, &out);
	remo_value_release(args);
	if (rc != REMO_OK)
		die_remo("add(40, 2)", rc);
	if (out.kind != REMO_INT || out.as.i != 42)
		die("add(40, 2) is not 42");
	int64_t cpu = rsess_cpu(r);
	if (cpu != p->cpu)
		die("peer %s serves on cpu %lld, pinned to %d", p->name,
		    (long long)cpu, p->cpu);
	null_call(r->noop); /* the shape is in; now count one */
	uint64_t m0 = r->counts->sent_msgs, b0 = r->counts->sent_bytes;
	uint64_t n0 = r->counts->recv_msgs, c0 = r->counts->recv_bytes;
	null_call(r->noop);
	if (r->counts->sent_msgs - m0 != 1 || r->counts->recv_msgs - n0 != 1)
		die("a null call was not one message each way");
	*req = r->counts->sent_bytes - b0;
	*reply = r->counts->recv_bytes - c0;
}

/* Makes r's 1 MiB argument and checks one call; returns its sizes. */
static void rsess_bytes(struct rsess *r, uint64_t *req, uint64_t *reply)
{
	if (r->bytes_args.kind == REMO_NIL) {
		void *blob = malloc(BYTES_LEN);
		if (blob == NULL)
			die("out of memory");
		memset(blob, 0x5a, BYTES_LEN);
		r->bytes_args = remo_tuple_of(1, remo_bytes(blob, BYTES_LEN));
		free(blob);
		if (!remo_ok(r->bytes_args))
			die("out of memory");
	}
	op_bytes(r, 1);
	uint64_t m0 = r->counts->sent_msgs, b0 = r->counts->sent_bytes;
	uint64_t n0 = r->counts->recv_msgs, c0 = r->counts->recv_bytes;
	op_bytes(r, 1);
	if (r->counts->sent_msgs - m0 != 1 || r->counts->recv_msgs - n0 != 1)
		die("a 1 MiB call was not one message each way");
	*req = r->counts->sent_bytes - b0;
	*reply = r->counts->recv_bytes - c0;
}

/* ==== raw framed round trips through a transport module ================= */

struct raw {
	const remo_transport_ops *t;
	void *conn;
	remo_buf in;
	unsigned char *msg;
	size_t req, reply;
};

static void raw_open(struct raw *r, const char *url)
{
	int rc;
	memset(r, 0, sizeof *r);
	if ((r->t = remo_transport_find(url, &rc)) == NULL)
		die_remo(url, rc);
	if ((r->conn = calloc(1, r->t->conn_size)) == NULL)
		die("out of memory");
	if ((rc = r->t->connect(r->conn, url, 5000)) != REMO_OK)
		die_remo(url, rc);
}

/* Sets the sizes of the next round trips: req bytes out (at least 4),
 * reply bytes back. */
static void raw_size(struct raw *r, size_t req, size_t reply)
{
	free(r->msg);
	if (req < 4)
		req = 4;
	if ((r->msg = calloc(1, req)) == NULL)
		die("out of memory");
	memset(r->msg + 4, 0xa5, req - 4);
	put_be32(r->msg, (uint32_t)reply);
	r->req = req;
	r->reply = reply;
}

static void raw_round_trip(struct raw *r)
{
	r->in.len = 0;
	if (r->t->send(r->conn, r->msg, r->req) != REMO_OK ||
	    r->t->recv(r->conn, &r->in, -1) != REMO_OK)
		die("a raw round trip failed");
	if (r->in.len != r->reply)
		die("a raw reply of %zu bytes, not %zu", r->in.len, r->reply);
}

/* raw_round_trip whose wait for the reply polls for up to spin_us
 * (recv with timeout 0, yielding the CPU between polls), then blocks. */
static void raw_round_trip_spin(struct raw *r, unsigned spin_us)
{
	int rc;
	r->in.len = 0;
	if (r->t->send(r->conn, r->msg, r->req) != REMO_OK)
		die("a raw round trip failed");
	uint64_t end = bench_now_ns() + (uint64_t)spin_us * 1000;
	while ((rc = r->t->recv(r->conn, &r->in, 0)) == REMO_ETIMEDOUT &&
	       bench_now_ns() < end)
		sched_yield();
	if (rc == REMO_ETIMEDOUT)
		rc = r->t->recv(r->conn, &r->in, -1);
	if (rc != REMO_OK)
		die("a raw round trip failed");
	if (r->in.len != r->reply)
		die("a raw reply of %zu bytes, not %zu", r->in.len, r->reply);
}

static void op_raw(void *ctx, uint64_t iters)
{
	struct raw *r = ctx;
	for (uint64_t i = 0; i < iters; i++)
		raw_round_trip(r);
	bench_sink += iters;
}

static void raw_close(struct raw *r)
{
	r->t->close(r->conn);
	r->t->fini(r->conn);
	free(r->conn);
	remo_buf_free(&r->in);
	free(r->msg);
}

/* ==== raw nanomsg NN_PAIR ================================================ */

struct nnraw {
	int s;
	unsigned char *msg;
	size_t req, reply;
};

static void nnraw_open(struct nnraw *r, const char *url, size_t req,
                       size_t reply)
{
	int big = -1;
	/* nanomsg tells nobody that a peer died: without a timeout, a
	 * crashed echo peer would leave us waiting for ever */
	int timeout_ms = NN_TIMEOUT_MS;
	memset(r, 0, sizeof *r);
	if ((r->s = nn_socket(AF_SP, NN_PAIR)) < 0 ||
	    nn_setsockopt(r->s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &big,
	                  sizeof big) < 0 ||
	    nn_setsockopt(r->s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms,
	                  sizeof timeout_ms) < 0 ||
	    nn_setsockopt(r->s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms,
	                  sizeof timeout_ms) < 0 ||
	    nn_connect(r->s, url) < 0)
		die("nanomsg %s: %s", url, nn_strerror(nn_errno()));
	if (req < 4)
		req = 4;
	if ((r->msg = calloc(1, req)) == NULL)
		die("out of memory");
	put_be32(r->msg, (uint32_t)reply);
	r->req = req;
	r->reply = reply;
}

static void op_nnraw(void *ctx, uint64_t iters)
{
	struct nnraw *r = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		void *in = NULL;
		if (nn_send(r->s, r->msg, r->req, 0) < 0)
			die("nn_send: %s", nn_strerror(nn_errno()));
		int n = nn_recv(r->s, &in, NN_MSG, 0);
		if (n < 0)
			die("nn_recv: %s", nn_strerror(nn_errno()));
		nn_freemsg(in);
		if ((size_t)n != r->reply)
			die("a raw nanomsg reply of %d bytes, not %zu", n, r->reply);
	}
	bench_sink += iters;
}

static void nnraw_close(struct nnraw *r)
{
	nn_close(r->s);
	free(r->msg);
}

/* ==== plain socketpair ping-pong, spin-then-block ======================== */

struct sock {
	int fd;
	uint32_t spin;           /* spin_us, | SOCK_YIELD */
	size_t req, reply;
	uint64_t waits, caught;  /* the client's waits; caught by the spin */
	unsigned char *buf;
	size_t cap;
};

static void sock_size(struct sock *s, size_t req, size_t reply)
{
	size_t cap;
	if (req < SOCK_HDR)
		req = SOCK_HDR;
	cap = req > reply ? req : reply;
	if (cap > s->cap) {
		free(s->buf);
		if ((s->buf = calloc(1, cap)) == NULL)
			die("out of memory");
		s->cap = cap;
	}
	s->req = req;
	s->reply = reply;
}

/* Waits for fd to be readable: polls without blocking for up to the
 * spin, then blocks.  True if the spin caught it. */
static bool sock_wait(int fd, uint32_t spin)
{
	struct pollfd p = {fd, POLLIN, 0};
	uint32_t spin_us = spin & ~SOCK_YIELD;
	if (spin_us > 0) {
		uint64_t end = bench_now_ns() + (uint64_t)spin_us * 1000;
		do {
			if (poll(&p, 1, 0) > 0)
				return true;
			if (spin & SOCK_YIELD)
				sched_yield();
		} while (bench_now_ns() < end);
	}
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	return false;
}

static void sock_round_trip(struct sock *s)
{
	put_be32(s->buf, (uint32_t)s->req);
	put_be32(s->buf + 4, (uint32_t)s->reply);
	put_be32(s->buf + 8, s->spin);
	if (send(s->fd, s->buf, s->req, MSG_NOSIGNAL) != (ssize_t)s->req)
		die("socketpair send: %s", strerror(errno));
	s->waits++;
	s->caught += sock_wait(s->fd, s->spin);
	size_t got = 0;
	while (got < s->reply) {
		ssize_t r = read(s->fd, s->buf + got, s->reply - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("socketpair read: %s", r ? strerror(errno) : "peer gone");
		got += (size_t)r;
	}
}

static void op_sock(void *ctx, uint64_t iters)
{
	struct sock *s = ctx;
	for (uint64_t i = 0; i < iters; i++)
		sock_round_trip(s);
	bench_sink += iters;
}

/* ==== the lines ========================================================== */

/* The command line's NAME-PART: only lines whose name contains it run
 * (for profiling one of them); NULL: all. */
static const char *only;

static bool want(const char *name)
{
	return only == NULL || strstr(name, only) != NULL;
}

static void line_null_call(const char *name, struct rsess *r,
                           const struct peer *p, struct raw *raw,
                           struct sock *plain, double target)
{
	uint64_t req, reply;
	if (!want(name))
		return;
	rsess_check(r, p, &req, &reply);
	raw_size(raw, req, reply);
	raw_round_trip(raw);
	bench_fn *fn[3] = {op_null_call, op_raw, op_sock};
	void *ctx[3] = {r, raw, plain};
	double ns[3];
	if (plain != NULL) {
		sock_size(plain, req, reply);
		plain->spin = 0;
		sock_round_trip(plain);
	}
	bench_abn(plain != NULL ? 3 : 2, fn, ctx, ns);
	char plain_txt[64] = "";
	if (plain != NULL)
		snprintf(plain_txt, sizeof plain_txt, "plain_ns=%.1f ", ns[2]);
	char target_txt[64] = "";
	if (target > 0)
		snprintf(target_txt, sizeof target_txt, " target=%.2f pass=%s",
		         target, ns[0] / ns[1] <= target ? "yes" : "no");
	bench_print(name, ns[0] / ns[1],
	            "remo_ns=%.1f raw_ns=%.1f %soverhead_ns=%.1f "
	            "req_bytes=%llu reply_bytes=%llu client_cpu=%d "
	            "server_cpu=%d%s",
	            ns[0], ns[1], plain_txt, ns[0] - ns[1],
	            (unsigned long long)req, (unsigned long long)reply,
	            CLIENT_CPU, p->cpu, target_txt);
}

/*
 * 1 MiB calls against raw 1 MiB round trips, on `pairs` fresh pairs of
 * connections (a remo session and a raw connection each), one bench_ab
 * per pair; medians over the pairs.  Why pairs: over TCP loopback the
 * same connections swing between about 150 and 500 us per MiB from one
 * second to the next (the kernel's buffer autotuning and softirq work
 * on a shared core), and one pair can land remo and raw in different
 * modes; ratio_min and ratio_max show how far the pairs disagreed.
 */
static void line_bytes(const char *name, const char *rurl, const char *wurl,
                       const struct peer *p, int pairs)
{
	uint64_t req = 0, reply = 0;
	double a[BENCH_SAMPLES], b[BENCH_SAMPLES], q[BENCH_SAMPLES];
	double qmin = 1e300, qmax = 0;

	if (!want(name))
		return;
	for (int i = 0; i < pairs && i < BENCH_SAMPLES; i++) {
		struct rsess r;
		struct raw raw;
		rsess_open(&r, rurl);
		raw_open(&raw, wurl);
		rsess_bytes(&r, &req, &reply);
		raw_size(&raw, req, reply);
		raw_round_trip(&raw);
		struct bench_ab ab = bench_ab(op_bytes, &r, op_raw, &raw);
		a[i] = ab.a_ns;
		b[i] = ab.b_ns;
		q[i] = ab.b_ns / ab.a_ns; /* remo_MBps / raw_MBps */
		qmin = q[i] < qmin ? q[i] : qmin;
		qmax = q[i] > qmax ? q[i] : qmax;
		rsess_close(&r);
		raw_close(&raw);
	}
	double a_ns = bench_median(a, (size_t)pairs);
	double b_ns = bench_median(b, (size_t)pairs);
	double ratio = bench_median(q, (size_t)pairs);
	double remo_mbps = BYTES_LEN / a_ns * 1e3;
	double raw_mbps = BYTES_LEN / b_ns * 1e3;
	char range[80] = "";
	if (pairs > 1)
		snprintf(range, sizeof range, " pairs=%d ratio_min=%.2f "
		         "ratio_max=%.2f", pairs, qmin, qmax);
	bench_print(name, ratio,
	            "remo_MBps=%.0f raw_MBps=%.0f remo_ns=%.0f raw_ns=%.0f "
	            "req_bytes=%llu reply_bytes=%llu client_cpu=%d "
	            "server_cpu=%d%s target=%.2f pass=%s",
	            remo_mbps, raw_mbps, a_ns, b_ns,
	            (unsigned long long)req, (unsigned long long)reply,
	            CLIENT_CPU, p->cpu, range, TARGET_BYTES,
	            ratio >= TARGET_BYTES ? "yes" : "no");
}

/* The spin variants of spin_wait, in the order printed. */
static const struct {
	const char *key;
	uint32_t spin;
} spins[] = {
	{"block", 0}, {"spin5", 5}, {"spin20", 20}, {"spin50", 50},
	{"spin20y", 20 | SOCK_YIELD}, {"spin50y", 50 | SOCK_YIELD},
};
#define NSPINS (sizeof spins / sizeof spins[0])

static void line_spin(const char *name, struct sock *proto, int server_cpu,
                      size_t req, size_t reply)
{
	struct sock v[NSPINS];
	bench_fn *fn[NSPINS];
	void *ctx[NSPINS];
	double ns[NSPINS];
	char txt[512];
	size_t len = 0, best = 0;

	if (!want(name))
		return;
	for (size_t i = 0; i < NSPINS; i++) {
		v[i] = *proto;
		v[i].spin = spins[i].spin;
		v[i].waits = v[i].caught = 0;
		fn[i] = op_sock;
		ctx[i] = &v[i];
	}
	sock_size(&v[0], req, reply);
	for (size_t i = 1; i < NSPINS; i++) {
		v[i].buf = v[0].buf;
		v[i].cap = v[0].cap;
		v[i].req = v[0].req;
		v[i].reply = v[0].reply;
	}
	/* the peer's wait follows the previous request's spin: each batch
	 * runs one side's variant on both ends, but the first wait of a
	 * batch is the previous side's; batches of hundreds of round trips
	 * make that noise */
	bench_abn(NSPINS, fn, ctx, ns);
	for (size_t i = 0; i < NSPINS; i++) {
		if (ns[i] < ns[best])
			best = i;
		len += (size_t)snprintf(txt + len, sizeof txt - len, "%s_ns=%.1f ",
		                        spins[i].key, ns[i]);
	}
	for (size_t i = 1; i < NSPINS; i++)
		len += (size_t)snprintf(txt + len, sizeof txt - len, "hit_%s=%.2f ",
		                        spins[i].key,
		                        v[i].waits ? (double)v[i].caught /
		                                     (double)v[i].waits : 0);
	bench_print(name, ns[best] / ns[0],
	            "%sbest=%s client_cpu=%d server_cpu=%d", txt,
	            spins[best].key, CLIENT_CPU, server_cpu);
	proto->buf = v[0].buf;
	proto->cap = v[0].cap;
	proto->spin = 0;
}

/* ==== pipelining: async calls, one-way calls, batches, chains ============ */

/*
 * Calls per second on ONE session when the client does not wait for each
 * reply: up to PIPE_WINDOW calls in flight (remo_call_async; the oldest
 * is waited for when the window is full), against raw framed messages
 * through the stream transport module with the same window, sizes and
 * echo peer.  A batch of the benchmark is iters calls, all started and
 * all completed (the window fills and drains once per batch, on both
 * sides alike).  Every wait is bounded by PIPE_WAIT_MS: a peer that
 * stops answering fails the run instead of hanging it.
 */

/* A ring of the futures in flight, oldest first. */
struct fring {
	remo_future *f[PIPE_WINDOW];
	size_t head, n;
};

static void fring_push(struct fring *q, remo_future *f)
{
	q->f[(q->head + q->n) % PIPE_WINDOW] = f;
	q->n++;
}

/* Waits for the oldest call (at most PIPE_WAIT_MS), checks it returned
 * want (nil, or an int), and frees it. */
static void fring_finish(struct fring *q, const remo_value *want)
{
	remo_future *f = q->f[q->head];
	remo_value out;
	int rc = remo_future_wait(f, PIPE_WAIT_MS, &out);
	if (rc != REMO_OK)
		die_remo("an async call", rc);
	if (out.kind != want->kind ||
	    (want->kind == REMO_INT && out.as.i != want->as.i))
		die("an async call returned the wrong value");
	remo_value_release(out);
	remo_future_free(f);
	q->head = (q->head + 1) % PIPE_WINDOW;
	q->n--;
}

struct pipe_remo {
	struct rsess *r;
	remo_batch *batch;      /* the batch line's, reused */
	struct fring q;
};

/* iters async null calls, at most PIPE_WINDOW in flight. */
static void op_pipe_async(void *ctx, uint64_t iters)
{
	struct pipe_remo *p = ctx;
	remo_value nil = remo_nil();
	for (uint64_t i = 0; i < iters; i++) {
		remo_future *f;
		if (p->q.n == PIPE_WINDOW)
			fring_finish(&p->q, &nil);
		int rc = remo_call_async(p->r->noop, nil, NULL, &f);
		if (rc != REMO_OK)
			die_remo("remo_call_async(noop)", rc);
		fring_push(&p->q, f);
	}
	while (p->q.n > 0)
		fring_finish(&p->q, &nil);
	bench_sink += iters;
}

/* A plain null call that waits at most PIPE_WAIT_MS. */
static void null_call_bounded(remo_value noop)
{
	remo_call_opts o = {.timeout_ms = PIPE_WAIT_MS};
	null_call_with(noop, &o);
}

/* iters one-way null calls (remo waits for the peer every
 * REMO_ONEWAY_WINDOW-th), then one plain call: when it returns, the peer
 * has served them all (a session serves in order). */
static void op_pipe_oneway(void *ctx, uint64_t iters)
{
	struct pipe_remo *p = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_call_oneway(p->r->noop, remo_nil());
		if (rc != REMO_OK)
			die_remo("remo_call_oneway(noop)", rc);
	}
	null_call_bounded(p->r->noop);
	bench_sink += iters;
}

/* iters batches of PIPE_BATCH add(i, 1) calls, each batch one message,
 * at most PIPE_WINDOW calls in flight. */
static void op_pipe_batch(void *ctx, uint64_t iters)
{
	struct pipe_remo *p = ctx;
	remo_value two = remo_int(2);
	for (uint64_t i = 0; i < iters; i++) {
		while (p->q.n + PIPE_BATCH > PIPE_WINDOW)
			fring_finish(&p->q, &two);
		for (int k = 0; k < PIPE_BATCH; k++) {
			remo_future *f;
			int rc = remo_batch_call(p->batch, p->r->add, p->r->add_args,
			                         &f);
			if (rc != REMO_OK)
				die_remo("remo_batch_call(add)", rc);
			fring_push(&p->q, f);
		}
		int rc = remo_batch_send(p->batch);
		if (rc != REMO_OK)
			die_remo("remo_batch_send", rc);
	}
	while (p->q.n > 0)
		fring_finish(&p->q, &two);
	bench_sink += iters;
}

/*
 * The raw side: framed messages through the transport module, at most
 * window in flight.  msg asks the echo peer (ECHO_COUNT) for count
 * replies of reply bytes each; count 0 is a one-way message, and then
 * every REMO_ONEWAY_WINDOW-th message is a round trip instead (r->msg),
 * as remo's one-way calls do, and a last round trip ends the batch.
 */
struct pipe_raw {
	struct raw *r;
	unsigned char *msg;
	size_t req, reply;
	uint32_t count;         /* replies per message                  */
	size_t window;          /* messages in flight, at most          */
	uint64_t oneway_since;  /* one-way messages since a round trip  */
};

static void pipe_raw_init(struct pipe_raw *p, struct raw *r, size_t req,
                          size_t reply, uint32_t count, size_t window)
{
	memset(p, 0, sizeof *p);
	if (req < 8)
		req = 8;
	if ((p->msg = calloc(1, req)) == NULL)
		die("out of memory");
	memset(p->msg + 8, 0xa5, req - 8);
	put_be32(p->msg, (uint32_t)reply | ECHO_COUNT);
	put_be32(p->msg + 4, count);
	p->r = r;
	p->req = req;
	p->reply = reply;
	p->count = count;
	p->window = window;
	/* the window's round trips: the same sizes, one reply */
	raw_size(r, req, reply);
}

/* Receives one reply of p->reply bytes, waiting at most PIPE_WAIT_MS. */
static void pipe_raw_recv(struct pipe_raw *p)
{
	p->r->in.len = 0;
	int rc = p->r->t->recv(p->r->conn, &p->r->in, PIPE_WAIT_MS);
	if (rc != REMO_OK)
		die("a pipelined raw reply: %s", remo_strerror(rc));
	if (p->r->in.len != p->reply)
		die("a raw reply of %zu bytes, not %zu", p->r->in.len, p->reply);
}

static void pipe_raw_send(struct pipe_raw *p, const unsigned char *msg)
{
	if (p->r->t->send(p->r->conn, msg, p->req) != REMO_OK)
		die("a pipelined raw send failed");
}

static void op_pipe_raw(void *ctx, uint64_t iters)
{
	struct pipe_raw *p = ctx;
	size_t n = 0;
	for (uint64_t i = 0; i < iters; i++) {
		if (n == p->window) {
			for (uint32_t k = 0; k < p->count; k++)
				pipe_raw_recv(p);
			n--;
		}
		pipe_raw_send(p, p->msg);
		n++;
	}
	for (; n > 0; n--)
		for (uint32_t k = 0; k < p->count; k++)
			pipe_raw_recv(p);
	bench_sink += iters;
}

static void op_pipe_raw_oneway(void *ctx, uint64_t iters)
{
	struct pipe_raw *p = ctx;
	for (uint64_t i = 0; i <= iters; i++) {
		bool trip = i == iters ||
		            ++p->oneway_since >= REMO_ONEWAY_WINDOW;
		if (!trip) {
			pipe_raw_send(p, p->msg);
			continue;
		}
		if (i < iters)
			p->oneway_since = 0;
		pipe_raw_send(p, p->r->msg);
		pipe_raw_recv(p);
	}
	bench_sink += iters;
}

/* What crossed r's channel while fn(ctx, iters) ran. */
struct pipe_traffic {
	uint64_t msgs_out, bytes_out, msgs_in, bytes_in;
};

static struct pipe_traffic pipe_measure(struct rsess *r, bench_fn *fn,
                                        void *ctx, uint64_t iters)
{
	struct counting *c = r->counts;
	uint64_t m0 = c->sent_msgs, b0 = c->sent_bytes;
	uint64_t n0 = c->recv_msgs, d0 = c->recv_bytes;
	fn(ctx, iters);
	return (struct pipe_traffic){c->sent_msgs - m0, c->sent_bytes - b0,
	                             c->recv_msgs - n0, c->recv_bytes - d0};
}

/*
 * The sizes of one async null call's request and reply, alone on the
 * wire: a plain call first sends what was queued (drops of kept results,
 * releases), then one async call is counted.
 */
static void pipe_sizes_async(struct pipe_remo *p, uint64_t *req,
                             uint64_t *reply)
{
	null_call_bounded(p->r->noop);
	struct pipe_traffic t = pipe_measure(p->r, op_pipe_async, p, 1);
	if (t.msgs_out != 1 || t.msgs_in != 1)
		die("an async call was not one message each way");
	*req = t.bytes_out;
	*reply = t.bytes_in;
}

/* One-way: the request alone (no reply); sent after a plain call, so
 * nothing queued goes with it, then confirmed by another. */
static uint64_t pipe_size_oneway(struct rsess *r)
{
	struct counting *c = r->counts;
	null_call_bounded(r->noop);
	uint64_t m0 = c->sent_msgs, b0 = c->sent_bytes;
	int rc = remo_call_oneway(r->noop, remo_nil());
	if (rc != REMO_OK)
		die_remo("remo_call_oneway(noop)", rc);
	if (c->sent_msgs - m0 != 1)
		die("a one-way call was not one message");
	uint64_t req = c->sent_bytes - b0;
	null_call_bounded(r->noop);
	return req;
}

/*
 * A batch of PIPE_BATCH add calls: its one message and one reply's size.
 * Counted at the send: freeing the batch's futures afterwards may send
 * their DROPs in a frame of their own (64 due), which is not the batch's.
 */
static void pipe_sizes_batch(struct pipe_remo *p, uint64_t *req,
                             uint64_t *reply)
{
	struct counting *c = p->r->counts;
	remo_value two = remo_int(2);
	null_call_bounded(p->r->noop);
	uint64_t m0 = c->sent_msgs, b0 = c->sent_bytes;
	uint64_t n0 = c->recv_msgs, d0 = c->recv_bytes;
	for (int k = 0; k < PIPE_BATCH; k++) {
		remo_future *f;
		int rc = remo_batch_call(p->batch, p->r->add, p->r->add_args, &f);
		if (rc != REMO_OK)
			die_remo("remo_batch_call(add)", rc);
		fring_push(&p->q, f);
	}
	int rc = remo_batch_send(p->batch);
	if (rc != REMO_OK)
		die_remo("remo_batch_send", rc);
	uint64_t msgs_out = c->sent_msgs - m0, bytes_out = c->sent_bytes - b0;
	while (p->q.n > 0)
		fring_finish(&p->q, &two);
	uint64_t msgs_in = c->recv_msgs - n0, bytes_in = c->recv_bytes - d0;
	if (msgs_out != 1 || msgs_in != PIPE_BATCH || bytes_in % PIPE_BATCH != 0)
		die("a batch was not one message out and %d replies of one size",
		    PIPE_BATCH);
	*req = bytes_out;
	*reply = bytes_in / PIPE_BATCH;
}

/*
 * The three pipelined lines for one remo peer and one echo peer (same
 * core or cross core): async calls, one-way calls, batches.  Each ratio
 * is remo calls/s over raw messages/s (a SPEED: 1 is as fast as raw).
 */
static void lines_pipelined(const char *where, const struct peer *remo,
                            const char *rurl, const char *eurl)
{
	char name[3][64];
	snprintf(name[0], sizeof name[0], "transport.pipelined.%s", where);
	snprintf(name[1], sizeof name[1], "transport.pipelined_oneway.%s",
	         where);
	snprintf(name[2], sizeof name[2], "transport.pipelined_batch%d.%s",
	         PIPE_BATCH, where);
	if (!want(name[0]) && !want(name[1]) && !want(name[2]))
		return;

	struct rsess r;
	struct raw raw;
	static struct pipe_remo p; /* the ring is 2 KiB: not on the stack */
	struct pipe_raw w;
	uint64_t req, reply;
	rsess_open(&r, rurl);
	raw_open(&raw, eurl);
	memset(&p, 0, sizeof p);
	p.r = &r;
	if ((p.batch = remo_batch_new()) == NULL)
		die("out of memory");
	r.add_args = remo_tuple_of(2, remo_int(1), remo_int(1));
	if (!remo_ok(r.add_args))
		die("out of memory");
	rsess_check(&r, remo, &req, &reply);

	if (want(name[0])) {
		pipe_sizes_async(&p, &req, &reply);
		pipe_raw_init(&w, &raw, req, reply, 1, PIPE_WINDOW);
		op_pipe_raw(&w, PIPE_WINDOW);
		struct pipe_traffic t = pipe_measure(&r, op_pipe_async, &p,
		                                     PIPE_CHECK_CALLS);
		struct bench_ab ab = bench_ab(op_pipe_async, &p, op_pipe_raw, &w);
		double rc = 1e9 / ab.a_ns, wc = 1e9 / ab.b_ns;
		bench_print(name[0], rc / wc,
		            "transport=unix window=%d remo_calls_per_sec=%.0f "
		            "raw_msgs_per_sec=%.0f remo_ns_per_call=%.1f "
		            "raw_ns_per_msg=%.1f req_bytes=%llu reply_bytes=%llu "
		            "remo_msgs_out_per_call=%.2f remo_msgs_in_per_call=%.2f "
		            "remo_bytes_per_call=%.1f client_cpu=%d server_cpu=%d "
		            "target_calls_per_sec=%d pass=%s",
		            PIPE_WINDOW, rc, wc, ab.a_ns, ab.b_ns,
		            (unsigned long long)req, (unsigned long long)reply,
		            (double)t.msgs_out / PIPE_CHECK_CALLS,
		            (double)t.msgs_in / PIPE_CHECK_CALLS,
		            (double)(t.bytes_out + t.bytes_in) / PIPE_CHECK_CALLS,
		            CLIENT_CPU, remo->cpu, TARGET_PIPELINED_CPS,
		            rc >= TARGET_PIPELINED_CPS ? "yes" : "no");
		free(w.msg);
	}
	if (want(name[1])) {
		req = pipe_size_oneway(&r);
		pipe_raw_init(&w, &raw, req, reply, 0, 0);
		op_pipe_raw_oneway(&w, REMO_ONEWAY_WINDOW);
		struct pipe_traffic t = pipe_measure(&r, op_pipe_oneway, &p,
		                                     PIPE_CHECK_CALLS);
		struct bench_ab ab = bench_ab(op_pipe_oneway, &p,
		                              op_pipe_raw_oneway, &w);
		double rc = 1e9 / ab.a_ns, wc = 1e9 / ab.b_ns;
		bench_print(name[1], rc / wc,
		            "transport=unix remo_calls_per_sec=%.0f "
		            "raw_msgs_per_sec=%.0f remo_ns_per_call=%.1f "
		            "raw_ns_per_msg=%.1f req_bytes=%llu "
		            "remo_msgs_out_per_call=%.3f remo_msgs_in_per_call=%.3f "
		            "client_cpu=%d server_cpu=%d",
		            rc, wc, ab.a_ns, ab.b_ns, (unsigned long long)req,
		            (double)t.msgs_out / PIPE_CHECK_CALLS,
		            (double)t.msgs_in / PIPE_CHECK_CALLS, CLIENT_CPU,
		            remo->cpu);
		free(w.msg);
	}
	if (want(name[2])) {
		uint64_t breq, breply;
		pipe_sizes_batch(&p, &breq, &breply);
		pipe_raw_init(&w, &raw, breq, breply, PIPE_BATCH,
		              PIPE_WINDOW / PIPE_BATCH);
		op_pipe_raw(&w, PIPE_WINDOW / PIPE_BATCH);
		struct bench_ab ab = bench_ab(op_pipe_batch, &p, op_pipe_raw, &w);
		/* an operation is a batch: PIPE_BATCH calls */
		double rc = 1e9 * PIPE_BATCH / ab.a_ns;
		double wc = 1e9 * PIPE_BATCH / ab.b_ns;
		bench_print(name[2], rc / wc,
		            "transport=unix batch=%d window=%d "
		            "remo_calls_per_sec=%.0f raw_replies_per_sec=%.0f "
		            "remo_ns_per_batch=%.1f raw_ns_per_batch=%.1f "
		            "batch_bytes=%llu reply_bytes=%llu client_cpu=%d "
		            "server_cpu=%d",
		            PIPE_BATCH, PIPE_WINDOW, rc, wc, ab.a_ns, ab.b_ns,
		            (unsigned long long)breq, (unsigned long long)breply,
		            CLIENT_CPU, remo->cpu);
		free(w.msg);
	}
	remo_batch_free(p.batch);
	rsess_close(&r);
	raw_close(&raw);
}

/*
 * A chain of CHAIN_LEN dependent calls on the peer's root Node
 * (bench/chain.h), pipelined against sequential.  ratio = pipelined /
 * sequential (a COST: below 1, pipelining wins).
 */
static void line_chain(const char *name, const struct peer *remo,
                       const char *rurl)
{
	if (!want(name))
		return;
	struct rsess r;
	struct chain c = {.opts = {.timeout_ms = PIPE_WAIT_MS}};
	rsess_open(&r, rurl);
	c.root = rsess_lookup(&r, "root");
	op_chain_pipelined(&c, 1);
	op_chain_sequential(&c, 1);
	struct pipe_traffic tp = pipe_measure(&r, op_chain_pipelined, &c, 1);
	struct pipe_traffic ts = pipe_measure(&r, op_chain_sequential, &c, 1);
	struct bench_ab ab = bench_ab(op_chain_pipelined, &c,
	                              op_chain_sequential, &c);
	bench_print(name, ab.a_ns / ab.b_ns,
	            "transport=unix calls=%d pipelined_ns=%.1f "
	            "sequential_ns=%.1f pipelined_msgs_out=%llu "
	            "pipelined_msgs_in=%llu sequential_msgs_out=%llu "
	            "sequential_msgs_in=%llu client_cpu=%d server_cpu=%d",
	            CHAIN_LEN, ab.a_ns, ab.b_ns,
	            (unsigned long long)tp.msgs_out,
	            (unsigned long long)tp.msgs_in,
	            (unsigned long long)ts.msgs_out,
	            (unsigned long long)ts.msgs_in, CLIENT_CPU, remo->cpu);
	remo_value_release(c.root);
	rsess_close(&r);
}

/* ---- calls per second ---------------------------------------------------- */

/* What a calls_per_sec client does. */
enum cps_mode {
	CPS_REMO,      /* remo null calls                                   */
	CPS_RAW,       /* raw framed round trips, blocking recv             */
	CPS_RAW_SPIN,  /* the same, but the wait for the reply first polls
	                  (recv with timeout 0, sched_yield between) for up
	                  to CPS_SPIN_US: spin-then-block at the client only,
	                  to see what spinning does with many clients on a
	                  core                                              */
};

struct cps_client {
	pthread_t th;
	remo_session *s;
	remo_value noop;
	struct raw raw;
	enum cps_mode mode;
	atomic_uint_fast64_t count;
	struct cps_round *round;
};

struct cps_round {
	pthread_barrier_t start;
	atomic_bool stop;
};

static void *cps_main(void *arg)
{
	struct cps_client *c = arg;
	pthread_barrier_wait(&c->round->start);
	while (!atomic_load_explicit(&c->round->stop, memory_order_relaxed)) {
		if (c->mode == CPS_RAW)
			raw_round_trip(&c->raw);
		else if (c->mode == CPS_RAW_SPIN)
			raw_round_trip_spin(&c->raw, CPS_SPIN_US);
		else
			null_call(c->noop);
		atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
	}
	return NULL;
}

/* One round: n clients in mode for CPS_ROUND_MS; calls a second. */
static double cps_round(struct cps_client *cl, int n, enum cps_mode mode)
{
	struct cps_round round;
	pthread_barrier_init(&round.start, NULL, (unsigned)n + 1);
	atomic_store(&round.stop, false);
	for (int i = 0; i < n; i++) {
		cl[i].mode = mode;
		cl[i].round = &round;
		atomic_store(&cl[i].count, 0);
		if (pthread_create(&cl[i].th, NULL, cps_main, &cl[i]) != 0)
			die("cannot start a client thread");
	}
	pthread_barrier_wait(&round.start);
	uint64_t t0 = bench_now_ns();
	usleep(CPS_ROUND_MS * 1000);
	uint64_t total = 0;
	for (int i = 0; i < n; i++)
		total += atomic_load(&cl[i].count);
	uint64_t t1 = bench_now_ns();
	atomic_store(&round.stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(cl[i].th, NULL);
	pthread_barrier_destroy(&round.start);
	return (double)total / ((double)(t1 - t0) / 1e9);
}

static void lines_cps(const struct peer *remo, const char *rurl,
                      const char *eurl, size_t req, size_t reply)
{
	static struct cps_client cl[CPS_MAX_CLIENTS];
	static const int counts[] = {1, 8, 64, CPS_MAX_CLIENTS};
	const size_t ncounts = sizeof counts / sizeof counts[0];
	char name[sizeof counts / sizeof counts[0]][64];
	bool any = false;
	int rc;

	for (size_t k = 0; k < ncounts; k++) {
		snprintf(name[k], sizeof name[k], "transport.calls_per_sec.c%d",
		         counts[k]);
		any |= want(name[k]);
	}
	if (!any)
		return;
	for (int i = 0; i < CPS_MAX_CLIENTS; i++) {
		if ((rc = remo_connect(rurl, 5000, NULL, NULL, &cl[i].s)) !=
		    REMO_OK)
			die_remo(rurl, rc);
		if ((rc = remo_lookup(cl[i].s, "noop", &cl[i].noop)) != REMO_OK)
			die_remo("noop", rc);
		raw_open(&cl[i].raw, eurl);
		raw_size(&cl[i].raw, req, reply);
	}
	for (size_t k = 0; k < ncounts; k++) {
		int n = counts[k];
		double r[CPS_ROUNDS], w[CPS_ROUNDS], sw[CPS_ROUNDS];
		if (!want(name[k]))
			continue;
		for (int i = 0; i < CPS_ROUNDS; i++) {
			r[i] = cps_round(cl, n, CPS_REMO);
			w[i] = cps_round(cl, n, CPS_RAW);
			sw[i] = cps_round(cl, n, CPS_RAW_SPIN);
		}
		double rm = bench_median(r, CPS_ROUNDS);
		double wm = bench_median(w, CPS_ROUNDS);
		double sm = bench_median(sw, CPS_ROUNDS);
		bench_print(name[k], rm / wm,
		            "clients=%d remo_cps=%.0f raw_cps=%.0f "
		            "raw_spin%dy_cps=%.0f remo_us_per_call=%.2f "
		            "raw_us_per_call=%.2f client_cpu=%d server_cpu=%d", n,
		            rm, wm, CPS_SPIN_US, sm, 1e6 / rm, 1e6 / wm,
		            CLIENT_CPU, remo->cpu);
	}
	for (int i = 0; i < CPS_MAX_CLIENTS; i++) {
		remo_value_release(cl[i].noop);
		remo_session_free(cl[i].s);
		raw_close(&cl[i].raw);
	}
}

/* ---- idle session memory -------------------------------------------------- */

struct proc_mem {
	long rss_kib, size_kib;
	int threads;
};

static struct proc_mem proc_mem(pid_t pid)
{
	char path[64], line[256];
	struct proc_mem m = {-1, -1, -1};
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		die("cannot read %s", path);
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			m.rss_kib = atol(line + 6);
		else if (strncmp(line, "VmSize:", 7) == 0)
			m.size_kib = atol(line + 7);
		else if (strncmp(line, "Threads:", 8) == 0)
			m.threads = atoi(line + 8);
	}
	fclose(f);
	return m;
}

/* Waits until pid has at least threads threads (each connection gets
 * one), then a little longer for them to settle in their first wait.
 * With threads 0 (a baseline), waits until the count stops changing:
 * the threads of connections an earlier line closed may still be
 * exiting, and counting them would make the target unreachable. */
static struct proc_mem proc_mem_settled(const struct peer *p, int threads)
{
	if (threads == 0) {
		int last = -1, stable = 0;
		for (int t = 0; t < 400 && stable < 4; t++) {
			int now = proc_mem(p->pid).threads;
			stable = now == last ? stable + 1 : 0;
			last = now;
			usleep(50000);
		}
	}
	for (int t = 0; t < 1000; t++) {
		if (proc_mem(p->pid).threads >= threads)
			break;
		if (t == 999)
			die("peer %s never reached %d threads", p->name, threads);
		usleep(10000);
	}
	usleep(100000);
	return proc_mem(p->pid);
}

/* Opens n sessions to url, each served (a noop answered). */
static void idle_open(remo_session **s, int n, const char *url)
{
	int rc;
	for (int i = 0; i < n; i++)
		if ((rc = remo_connect(url, 5000, NULL, NULL, &s[i])) != REMO_OK) {
			int st = 0;
			pid_t dead = waitpid(-1, &st, WNOHANG);
			fprintf(stderr, "bench_transport: session %d of %d (a "
			        "peer %d: %s %d)\n", i, n, (int)dead,
			        WIFSIGNALED(st) ? "signal" : "exit",
			        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			die_remo(url, rc);
		}
	for (int i = 0; i < n; i++) {
		remo_value noop, out;
		if ((rc = remo_lookup(s[i], "noop", &noop)) != REMO_OK)
			die_remo("noop", rc);
		if ((rc = remo_call(noop, remo_nil(), &out)) != REMO_OK)
			die_remo("noop()", rc);
		remo_value_release(noop);
	}
}

static void line_idle_memory(const struct peer *remo, const char *rurl,
                             const struct peer *echo, const char *eurl)
{
	static remo_session *s[IDLE_MANY];
	static struct raw raw[IDLE_SESSIONS];
	int rc;

	/* the first session starts the server's lease thread and its pool:
	 * open one, and measure from there */
	remo_session *first;
	if ((rc = remo_connect(rurl, 5000, NULL, NULL, &first)) != REMO_OK)
		die_remo(rurl, rc);
	struct raw rfirst;
	raw_open(&rfirst, eurl);
	struct proc_mem r0 = proc_mem_settled(remo, 0);
	struct proc_mem e0 = proc_mem_settled(echo, 0);
	idle_open(s, IDLE_SESSIONS, rurl);
	for (int i = 0; i < IDLE_SESSIONS; i++)
		raw_open(&raw[i], eurl);
	/* remo's sessions hold no thread each: settled when the count
	 * stops changing (the pool shrinking back); the echo server's do */
	struct proc_mem r1 = proc_mem_settled(remo, 0);
	struct proc_mem e1 = proc_mem_settled(echo, e0.threads + IDLE_SESSIONS);

	double rk = (double)(r1.rss_kib - r0.rss_kib) / IDLE_SESSIONS;
	double ek = (double)(e1.rss_kib - e0.rss_kib) / IDLE_SESSIONS;
	double rv = (double)(r1.size_kib - r0.size_kib) / IDLE_SESSIONS;
	double ev = (double)(e1.size_kib - e0.size_kib) / IDLE_SESSIONS;
	bench_print("transport.idle_session_memory", ek > 0 ? rk / ek : 0,
	            "sessions=%d remo_rss_kib_per_session=%.1f "
	            "raw_rss_kib_per_conn=%.1f remo_vmsize_kib_per_session=%.0f "
	            "raw_vmsize_kib_per_conn=%.0f remo_rss_kib=%ld->%ld "
	            "raw_rss_kib=%ld->%ld remo_threads=%d->%d server_cpu=%d",
	            IDLE_SESSIONS, rk, ek, rv, ev, r0.rss_kib, r1.rss_kib,
	            e0.rss_kib, e1.rss_kib, r0.threads, r1.threads, remo->cpu);
	for (int i = 0; i < IDLE_SESSIONS; i++)
		raw_close(&raw[i]);

	/* ten thousand: the same server, the same measure, the same raw
	 * figure per connection as the baseline (ten thousand echo threads
	 * would measure the machine, not a connection) */
	idle_open(s + IDLE_SESSIONS, IDLE_MANY - IDLE_SESSIONS, rurl);
	struct proc_mem r2 = proc_mem_settled(remo, 0);
	double mk = (double)(r2.rss_kib - r0.rss_kib) / IDLE_MANY;
	bench_print("transport.idle_10k", ek > 0 ? mk / ek : 0,
	            "sessions=%d remo_rss_kib_per_session=%.1f "
	            "raw_rss_kib_per_conn=%.1f remo_threads=%d->%d "
	            "target_kib=8 pass=%s", IDLE_MANY, mk, ek, r0.threads,
	            r2.threads, mk <= 8 ? "yes" : "no");
	for (int i = 0; i < IDLE_MANY; i++)
		remo_session_free(s[i]);
	remo_session_free(first);
	raw_close(&rfirst);
}

/* ==== main =============================================================== */

/* A TCP port free now on 127.0.0.1 (nanomsg cannot bind port 0). */
static int free_port(void)
{
	struct sockaddr_in a = {0};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		die("cannot find a free port: %s", strerror(errno));
	close(fd);
	return ntohs(a.sin_port);
}

/* Sets REMO_TRANSPORT_PATH, if unset, to the build tree's module
 * directories beside this program, and finds bench_peer there. */
static void find_paths(void)
{
	char exe[PATH_MAX], path[3 * PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		die("cannot read /proc/self/exe");
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(peer_path, sizeof peer_path, "%s/bench_peer", exe);
	if (access(peer_path, X_OK) != 0)
		die("%s: %s (make bench builds it)", peer_path, strerror(errno));
	if (getenv("REMO_TRANSPORT_PATH") == NULL) {
		snprintf(path, sizeof path, "%s/../transport/stream/.libs:"
		         "%s/../transport/nanomsg/.libs", exe, exe);
		setenv("REMO_TRANSPORT_PATH", path, 1);
	}
}

#define URL(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

int main(int argc, char **argv)
{
	static struct peer remo0, echo0, sock0, remo1, echo1, sock1, remoM,
		echoM;
	char u[16][256];
	int sp0[2], sp1[2];
	cpu_set_t set;

	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: bench_transport [NAME-PART]\n");
		return 2;
	}
	only = argc == 2 ? argv[1] : NULL;
	/* transport.idle_10k holds 10,000 descriptors here and as many in
	 * remoM, which inherits the limit: the soft limit up to the hard */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
	    nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	find_paths();
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		die("sched_getaffinity: %s", strerror(errno));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	bool cross = ncpu > OTHER_CPU;
	pin_self(CLIENT_CPU);

	snprintf(tmpdir, sizeof tmpdir, "/tmp/remo-bench-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	atexit(cleanup_at_exit);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Is the nanomsg transport there?  Loading a module starts no
	 * thread and opens no socket, so forking after it is safe. */
	int st;
	const char *nn_why = NULL;
	if (remo_transport_find("nn+ipc://probe", &st) == NULL)
		nn_why = err_text();
	bool nn = nn_why == NULL;
	char nn_skip[512] = "";
	if (!nn)
		snprintf(nn_skip, sizeof nn_skip, "%s", nn_why);

	/* Every process first, before any socket here. */
	{
		const char *a[] = {"remo", URL(u[0], "unix://%s/remo0", tmpdir),
		                   "tcp://127.0.0.1:0",
		                   URL(u[1], "unix://%s/remo0-cps", tmpdir),
		                   nn ? URL(u[2], "nn+ipc://%s/remo0-nn", tmpdir)
		                      : NULL,
		                   URL(u[3], "nn+tcp://127.0.0.1:%d", free_port()),
		                   NULL};
		peer_start(&remo0, "remo0", CLIENT_CPU, a, -1);
	}
	{
		const char *a[] = {"echo", URL(u[4], "unix://%s/echo0", tmpdir),
		                   "tcp://127.0.0.1:0",
		                   URL(u[5], "unix://%s/echo0-cps", tmpdir),
		                   URL(u[6], "nn:ipc://%s/echo0-nn", tmpdir),
		                   URL(u[7], "nn:tcp://127.0.0.1:%d", free_port()),
		                   NULL};
		peer_start(&echo0, "echo0", CLIENT_CPU, a, -1);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp0) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp1) != 0)
		die("socketpair: %s", strerror(errno));
	{
		char fd[16];
		const char *a[] = {"sock", URL(fd, "%d", sp0[1]), NULL};
		peer_start(&sock0, "sock0", CLIENT_CPU, a, sp0[1]);
		close(sp0[1]);
	}
	if (cross) {
		char fd[16];
		const char *a[] = {"remo", URL(u[8], "unix://%s/remo1", tmpdir),
		                   NULL};
		peer_start(&remo1, "remo1", OTHER_CPU, a, -1);
		const char *b[] = {"echo", URL(u[9], "unix://%s/echo1", tmpdir),
		                   NULL};
		peer_start(&echo1, "echo1", OTHER_CPU, b, -1);
		const char *c[] = {"sock", URL(fd, "%d", sp1[1]), NULL};
		peer_start(&sock1, "sock1", OTHER_CPU, c, sp1[1]);
	}
	close(sp1[1]);
	{
		const char *a[] = {"remo", URL(u[10], "unix://%s/remoM", tmpdir),
		                   NULL};
		peer_start(&remoM, "remoM", CLIENT_CPU, a, -1);
		const char *b[] = {"echo", URL(u[11], "unix://%s/echoM", tmpdir),
		                   NULL};
		peer_start(&echoM, "echoM", CLIENT_CPU, b, -1);
	}
	char load[64] = "?";
	FILE *lf = fopen("/proc/loadavg", "r");
	if (lf != NULL) {
		if (fgets(load, sizeof load, lf) != NULL)
			load[strcspn(load, "\n")] = '\0';
		fclose(lf);
	}
	printf("# bench_transport: %ld cpu(s) online; client on cpu %d; "
	       "servers pinned per process%s; /proc/loadavg: %s (other load "
	       "on these cpus shows in every line)\n", ncpu, CLIENT_CPU,
	       cross ? "" : " (one cpu: no cross-core lines)", load);
	print_placement("start");

	/* ---- 1, 2: null calls, same core -------------------------------- */
	struct rsess ru, rt;
	struct raw wu, wt;
	struct sock plain0 = {.fd = sp0[0]};
	uint64_t req, reply;

	rsess_open(&ru, peer_url_must(&remo0, u[0]));
	raw_open(&wu, peer_url_must(&echo0, u[4]));
	line_null_call("transport.null_call.unix", &ru, &remo0, &wu, &plain0,
	               TARGET_NULL_CALL);
	rsess_open(&rt, peer_url_must(&remo0, "tcp://127.0.0.1:0"));
	raw_open(&wt, peer_url_must(&echo0, "tcp://127.0.0.1:0"));
	line_null_call("transport.null_call.tcp", &rt, &remo0, &wt, NULL,
	               TARGET_NULL_CALL);
	rsess_check(&ru, &remo0, &req, &reply);

	/* ---- 3: nanomsg --------------------------------------------------- */
	{
		struct nnraw ni, nt;
		double ns[2];
		const char *why;
		nnraw_open(&ni, peer_url_must(&echo0, u[6]), req, reply);
		nnraw_open(&nt, peer_url_must(&echo0, u[7]), req, reply);
		const char *nurl[2] = {u[2], u[3]};
		const char *nname[2] = {"transport.null_call.nn_ipc",
		                        "transport.null_call.nn_tcp"};
		struct nnraw *nraw[2] = {&ni, &nt};
		for (int k = 0; k < 2; k++) {
			if (!want(nname[k]))
				continue;
			const char *url = nn ? peer_url(&remo0, nurl[k], &why) : NULL;
			if (url == NULL) {
				bench_fn *fn[1] = {op_nnraw};
				void *ctx[1] = {nraw[k]};
				bench_abn(1, fn, ctx, ns);
				printf("# skipped: %s: %s; raw nanomsg NN_PAIR round trip "
				       "alone: raw_ns=%.1f (req_bytes=%llu reply_bytes=%llu"
				       ", both processes on cpu %d)\n", nname[k],
				       nn ? why : nn_skip, ns[0],
				       (unsigned long long)req, (unsigned long long)reply,
				       CLIENT_CPU);
				fflush(stdout);
				continue;
			}
			struct rsess rn;
			uint64_t nreq, nreply;
			rsess_open(&rn, url);
			rsess_check(&rn, &remo0, &nreq, &nreply);
			nnraw_close(nraw[k]);
			nnraw_open(nraw[k], peer_url_must(&echo0, k ? u[7] : u[6]),
			           nreq, nreply);
			struct bench_ab ab = bench_ab(op_null_call, &rn, op_nnraw,
			                              nraw[k]);
			bench_print(nname[k], ab.a_ns / ab.b_ns,
			            "remo_ns=%.1f raw_ns=%.1f overhead_ns=%.1f "
			            "req_bytes=%llu reply_bytes=%llu client_cpu=%d "
			            "server_cpu=%d target=%.2f pass=%s",
			            ab.a_ns, ab.b_ns, ab.a_ns - ab.b_ns,
			            (unsigned long long)nreq,
			            (unsigned long long)nreply, CLIENT_CPU, remo0.cpu,
			            TARGET_NULL_CALL_NN,
			            ab.a_ns / ab.b_ns <= TARGET_NULL_CALL_NN ? "yes"
			                                                     : "no");
			rsess_close(&rn);
		}
		nnraw_close(&ni);
		nnraw_close(&nt);
	}

	/* ---- 4: 1 MiB ------------------------------------------------------ */
	line_bytes("transport.bytes_1m.unix", peer_url_must(&remo0, u[0]),
	           peer_url_must(&echo0, u[4]), &remo0, 1);
	line_bytes("transport.bytes_1m.tcp",
	           peer_url_must(&remo0, "tcp://127.0.0.1:0"),
	           peer_url_must(&echo0, "tcp://127.0.0.1:0"), &remo0,
	           BYTES_TCP_PAIRS);

	/* ---- 5: cross core, and spinning ------------------------------------ */
	if (cross) {
		struct rsess rx;
		struct raw wx;
		struct sock plain1 = {.fd = sp1[0]};
		rsess_open(&rx, peer_url_must(&remo1, u[8]));
		raw_open(&wx, peer_url_must(&echo1, u[9]));
		line_null_call("transport.cross_core.unix", &rx, &remo1, &wx,
		               &plain1, 0);
		line_spin("transport.spin_wait.same_core", &plain0, CLIENT_CPU,
		          req, reply);
		line_spin("transport.spin_wait.cross_core", &plain1, OTHER_CPU,
		          req, reply);
		rsess_close(&rx);
		raw_close(&wx);
		free(plain1.buf);
	} else {
		printf("# skipped: transport.cross_core.unix, "
		       "transport.spin_wait.*: one cpu online\n");
	}

	/* ---- 6: pipelining on one session ---------------------------------- */
	lines_pipelined("same_core", &remo0, peer_url_must(&remo0, u[0]),
	                peer_url_must(&echo0, u[4]));
	line_chain("transport.chain10.same_core", &remo0,
	           peer_url_must(&remo0, u[0]));
	if (cross) {
		lines_pipelined("cross_core", &remo1, peer_url_must(&remo1, u[8]),
		                peer_url_must(&echo1, u[9]));
		line_chain("transport.chain10.cross_core", &remo1,
		           peer_url_must(&remo1, u[8]));
	} else {
		printf("# skipped: transport.pipelined*.cross_core, "
		       "transport.chain10.cross_core: one cpu online\n");
	}

	/* ---- 7: calls per second -------------------------------------------- */
	lines_cps(&remo0, peer_url_must(&remo0, u[1]),
	          peer_url_must(&echo0, u[5]), req, reply);

	/* ---- 8: idle session memory ------------------------------------------ */
	if (want("transport.idle_session_memory"))
		line_idle_memory(&remoM, peer_url_must(&remoM, u[10]), &echoM,
		                 peer_url_must(&echoM, u[11]));

	print_placement("end");
	rsess_close(&ru);
	rsess_close(&rt);
	raw_close(&wu);
	raw_close(&wt);
	free(plain0.buf);
	close(sp0[0]);
	close(sp1[0]);
	bool ok = peers_stop();
	tmpdir_remove();
	return ok ? 0 : 1;
}
