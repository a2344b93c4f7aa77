/*
 * helper_server.c -- the server process the transport tests start with
 * fork+exec (they never fork after creating sockets themselves).
 *
 *   helper_server URL [--max-message N] [--lease MS] [--raw-echo]
 *                     [--secret-file PATH] [--frame-budget BYTES]
 *
 * Prints "READY <bound url>" on stdout once listening, then serves until
 * SIGTERM.  Exports: add(a:q b:q) -> q; echo(v:r) -> r; slow(ms:i);
 * call_back(fn:r x:q) -> q, which returns fn(x) + 1, calling the client
 * back; size(b:y) -> N; sessions() -> I, the sessions being served;
 * whoami() -> r, "auth=A PEER" as remo_caller tells it.
 * With --raw-echo it uses the transport directly,
 * no session: every message received is sent back, for ordering tests.
 */
#include <remo/remo.h>
#include <remo/transport.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t h_add(int64_t a, int64_t b) { return a + b; }
static remo_value h_echo(remo_value v) { return remo_value_retain(v); }
static void h_slow(int ms) { usleep((useconds_t)ms * 1000); }
static size_t h_size(const void *p, size_t n) { (void)p; return n; }

static int64_t h_call_back(remo_value fn, int64_t x)
{
	remo_value args = remo_tuple_of(1, remo_int(x)), res;
	int rc = remo_call(fn, args, &res);
	remo_value_release(args);
	if (rc != REMO_OK) {
		remo_raise_value(remo_value_retain(remo_last_error()));
		return 0;
	}
	int64_t r = res.kind == REMO_INT ? res.as.i + 1 : -1;
	remo_value_release(res);
	return r;
}

static remo_value h_whoami(void)
{
	remo_caller_info ci;
	char text[600];
	if (remo_caller(&ci) != REMO_OK)
		return remo_str("nobody");
	snprintf(text, sizeof text, "auth=%d %s", ci.authenticated, ci.peer);
	return remo_str(text);
}

static remo_server *server;
static volatile sig_atomic_t stop_raw;

static unsigned h_sessions(void)
{
	return remo_server_sessions(server);
}

static void on_term(int sig)
{
	(void)sig;
	stop_raw = 1;
	if (server != NULL)
		remo_server_stop(server);
}

static void export_fn(remo_exports *ex, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	remo_export(ex, name, f);
	remo_value_release(f);
}

struct raw_conn {
	const remo_transport_ops *t;
	void *conn;
};

static void *raw_echo_conn(void *arg)
{
	struct raw_conn *rc = arg;
	remo_buf b = {0};
	while (!stop_raw) {
		b.len = 0;
		int st = rc->t->recv(rc->conn, &b, 200);
		if (st == REMO_ETIMEDOUT)
			continue;
		if (st != REMO_OK || rc->t->send(rc->conn, b.data, b.len) != REMO_OK)
			break;
	}
	remo_buf_free(&b);
	rc->t->fini(rc->conn);
	free(rc->conn);
	free(rc);
	return NULL;
}

/* Raw mode: listen with the transport itself and echo. */
static int raw_echo(const char *url)
{
	int rc;
	const remo_transport_ops *t = remo_transport_find(url, &rc);
	if (t == NULL)
		return 1;
	void *lst = calloc(1, t->listener_size);
	char bound[256];
	if (t->listen(lst, url, bound, sizeof bound) != REMO_OK)
		return 1;
	printf("READY %s\n", bound);
	fflush(stdout);
	while (!stop_raw) {
		void *conn = calloc(1, t->conn_size);
		if (t->accept(lst, conn, 200) != REMO_OK) {
			free(conn);
			continue;
		}
		struct raw_conn *rconn = malloc(sizeof *rconn);
		*rconn = (struct raw_conn){t, conn};
		pthread_t th;
		pthread_create(&th, NULL, raw_echo_conn, rconn);
		pthread_detach(th);
	}
	t->close_listener(lst);
	t->fini_listener(lst);
	free(lst);
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	bool raw = false;
	remo_server_opts opts = {0};
	static char secret[REMO_MAX_SECRET];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--raw-echo") == 0)
			raw = true;
		else if (strcmp(argv[i], "--max-message") == 0 && i + 1 < argc)
			opts.session.max_message = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--frame-budget") == 0 && i + 1 < argc)
			remo_frame_set_budget(strtoul(argv[++i], NULL, 10));
		else if (strcmp(argv[i], "--lease") == 0 && i + 1 < argc)
			opts.session.lease_ms = atoi(argv[++i]);
		else if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc) {
			if (remo_secret_load(argv[++i], secret, sizeof secret,
			                     &opts.session.secret_len) != REMO_OK) {
				fprintf(stderr, "helper_server: %s\n",
				        remo_error_message(remo_last_error()));
				return 1;
			}
			opts.session.secret = secret;
		} else
			url = argv[i];
	}
	if (url == NULL) {
		fprintf(stderr, "usage: helper_server URL [--max-message N] "
		                "[--raw-echo]\n");
		return 2;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (raw)
		return raw_echo(url);

	remo_exports *ex = remo_exports_new();
	export_fn(ex, "add", "q(a:q b:q)", (void (*)(void))h_add);
	export_fn(ex, "echo", "r(v:r)", (void (*)(void))h_echo);
	export_fn(ex, "slow", "v(ms:i)", (void (*)(void))h_slow);
	export_fn(ex, "size", "N(b:y)", (void (*)(void))h_size);
	export_fn(ex, "call_back", "q(fn:r x:q)", (void (*)(void))h_call_back);
	export_fn(ex, "sessions", "I()", (void (*)(void))h_sessions);
	export_fn(ex, "whoami", "r()", (void (*)(void))h_whoami);
	int rc;
	server = remo_server_new(ex, &opts, &rc);
	char bound[256];
	if (server == NULL ||
	    remo_server_listen(server, url, bound, sizeof bound) != REMO_OK) {
		fprintf(stderr, "helper_server: %s: %s\n", url,
		        remo_error_message(remo_last_error()));
		return 1;
	}
	printf("READY %s\n", bound);
	fflush(stdout);
	remo_server_run(server);
	remo_server_free(server);
	remo_exports_free(ex);
	return 0;
}
