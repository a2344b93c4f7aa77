/*
 * testpair.h -- the two-session fixture the protocol suites share: a
 * server session and a client session joined by channels (usually the
 * two ends of a remo_pipe, perhaps wrapped by the test), and a thread
 * serving the server until the client closes.
 *
 * A suite keeps a struct test_pair in its own fixture struct, next to
 * what it exports, opens it in setup and closes it in teardown.  Include
 * after <cmocka.h> and <pthread.h>.
 */
#ifndef REMO_TESTPAIR_H
#define REMO_TESTPAIR_H

#include <remo/remo.h>

struct test_pair {
	remo_session *server, *client;
	pthread_t thread;
	int serve_rc; /* what remo_session_serve returned, after close */
};

static void *test_pair_serve(void *arg)
{
	struct test_pair *tp = arg;
	tp->serve_rc = remo_session_serve(tp->server, -1);
	return NULL;
}

/* Opens both sessions (each takes its channel) and starts serving the
 * server.  Exports and options may be NULL.  Fails the test on error. */
static inline void test_pair_open(struct test_pair *tp, remo_channel server,
                                  remo_exports *server_exports,
                                  const remo_session_opts *server_opts,
                                  remo_channel client,
                                  remo_exports *client_exports,
                                  const remo_session_opts *client_opts)
{
	int st;
	tp->server = remo_session_new(&server, server_exports, server_opts,
	                              &st);
	assert_non_null(tp->server);
	tp->client = remo_session_new(&client, client_exports, client_opts,
	                              &st);
	assert_non_null(tp->client);
	assert_int_equal(pthread_create(&tp->thread, NULL, test_pair_serve, tp),
	                 0);
}

/* Closes the client, which ends the server's serving; frees both. */
static inline void test_pair_close(struct test_pair *tp)
{
	remo_session_close(tp->client);
	pthread_join(tp->thread, NULL);
	remo_session_free(tp->client);
	remo_session_free(tp->server);
}

#endif /* REMO_TESTPAIR_H */
