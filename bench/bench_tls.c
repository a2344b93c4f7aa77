/*
 * bench_tls.c -- what TLS costs: the tls:// transport against plain
 * tcp:// to the same kind of server, in the same run (issue 11).
 *
 * One process: a remo_server per transport in a thread of its own on
 * 127.0.0.1, a client session to each; make bench pins the whole
 * process to CPU 0 (taskset), so client and server threads share one
 * core, as bench_transport's same-core lines do.  The certificates (a CA
 * and a server certificate for 127.0.0.1, P-256) are made by openssl(1)
 * in a temporary directory first.
 *
 * Lines (median ns per call; ratio is tls / tcp, a cost: 1.20 means TLS
 * takes 20% longer):
 *
 *   transport.tls.null_call   remo_call(noop)
 *   transport.tls.bytes_1m    remo_call(size, (1 MiB bytes,)), with the
 *                             bandwidth of each in MB/s
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <remo/remo.h>

#include "bench.h"

static void die(const char *what)
{
	fprintf(stderr, "bench_tls: %s: %s\n", what,
	        remo_error_message(remo_last_error()));
	exit(1);
}

static void noop(void) {}
static size_t size(const void *p, size_t n) { (void)p; return n; }

struct side {
	remo_server *srv;
	pthread_t th;
	remo_session *s;
	remo_value noop, size, mib;
};

static void *run(void *arg)
{
	remo_server_run(arg);
	return NULL;
}

static void side_open(struct side *d, remo_exports *ex, const char *listen,
                      const char *client_suffix)
{
	char bound[512], url[1024];
	int rc;
	if ((d->srv = remo_server_new(ex, NULL, &rc)) == NULL ||
	    remo_server_listen(d->srv, listen, bound, sizeof bound) != REMO_OK)
		die(listen);
	pthread_create(&d->th, NULL, run, d->srv);
	snprintf(url, sizeof url, "%s%s", bound, client_suffix);
	if (remo_connect(url, 5000, NULL, NULL, &d->s) != REMO_OK ||
	    remo_lookup(d->s, "noop", &d->noop) != REMO_OK ||
	    remo_lookup(d->s, "size", &d->size) != REMO_OK)
		die(url);
	char *buf = calloc(1, 1u << 20);
	d->mib = remo_tuple_of(1, remo_bytes(buf, 1u << 20));
	free(buf);
}

static void side_close(struct side *d)
{
	remo_value_release(d->noop);
	remo_value_release(d->size);
	remo_value_release(d->mib);
	remo_session_free(d->s);
	remo_server_stop(d->srv);
	pthread_join(d->th, NULL);
	remo_server_free(d->srv);
}

static void op_null(void *ctx, uint64_t iters)
{
	struct side *d = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		remo_value out;
		if (remo_call(d->noop, remo_nil(), &out) != REMO_OK)
			die("noop");
	}
}

static void op_mib(void *ctx, uint64_t iters)
{
	struct side *d = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		remo_value out;
		if (remo_call(d->size, d->mib, &out) != REMO_OK ||
		    out.as.i != 1 << 20)
			die("size");
		bench_sink += (uint64_t)out.as.i;
	}
}

int main(void)
{
	char exe[PATH_MAX], path[3 * PATH_MAX], dir[] = "/tmp/remo-tls-XXXXXX";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0 || mkdtemp(dir) == NULL)
		return 1;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	if (getenv("REMO_TRANSPORT_PATH") == NULL) {
		snprintf(path, sizeof path, "%s/../transport/stream/.libs:"
		         "%s/../transport/tls/.libs", exe, exe);
		setenv("REMO_TRANSPORT_PATH", path, 1);
	}
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "{ cd %s && K='-newkey ec -pkeyopt "
	         "ec_paramgen_curve:prime256v1 -nodes' && openssl req -x509 $K "
	         "-keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca && "
	         "openssl req $K -keyout srv.key -out srv.csr -subj /CN=bench && "
	         "echo subjectAltName=IP:127.0.0.1 >srv.ext && openssl x509 -req "
	         "-in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
	         "srv.pem -days 2 -extfile srv.ext; } >/dev/null 2>&1", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_tls: openssl could not make certificates\n");
		return 1;
	}
	remo_exports *ex = remo_exports_new();
	remo_value f = remo_function("noop", "v()", (void (*)(void))noop, NULL);
	remo_export(ex, "noop", f);
	remo_value_release(f);
	f = remo_function("size", "N(b:y)", (void (*)(void))size, NULL);
	remo_export(ex, "size", f);
	remo_value_release(f);

	struct side tcp, tls;
	char listen[1024], suffix[600];
	side_open(&tcp, ex, "tcp://127.0.0.1:0", "");
	snprintf(listen, sizeof listen,
	         "tls://127.0.0.1:0?cert=%s/srv.pem&key=%s/srv.key", dir, dir);
	snprintf(suffix, sizeof suffix, "?ca=%s/ca.pem", dir);
	side_open(&tls, ex, listen, suffix);

	struct bench_ab r = bench_ab(op_null, &tls, op_null, &tcp);
	bench_print("transport.tls.null_call", r.a_ns / r.b_ns,
	            "tls_ns=%.0f tcp_ns=%.0f cpu=0-both", r.a_ns, r.b_ns);
	r = bench_ab(op_mib, &tls, op_mib, &tcp);
	bench_print("transport.tls.bytes_1m", r.a_ns / r.b_ns,
	            "tls_ns=%.0f tcp_ns=%.0f tls_mbs=%.0f tcp_mbs=%.0f "
	            "cpu=0-both", r.a_ns, r.b_ns, 1048576.0 / r.a_ns * 1e3,
	            1048576.0 / r.b_ns * 1e3);

	side_close(&tls);
	side_close(&tcp);
	remo_exports_free(ex);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
