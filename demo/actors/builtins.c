/*
 * builtins.c -- the actor functions every remo-node has (actors.h lists
 * them): the ring, a supervisor, and the small actors the tests and the
 * benchmark spawn on other nodes.
 */
#define _GNU_SOURCE
#include "actors.h"

#include <remo/trace.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static bool is_stop(remo_value m)
{
	const char *s = m.kind == REMO_STR ? remo_str_data(m, NULL) : NULL;
	return s != NULL && strcmp(s, "stop") == 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Passes a failed call's error (a receive's Killed, a send's DeadActor)
 * on as the actor's own: an actor that returns REMO_INVALID ends with
 * remo_last_error(), traceback and all (actors.c, actor_main). */
static remo_value failed(void)
{
	return (remo_value){.kind = REMO_INVALID};
}

static remo_value b_forward(actor *self, remo_value args)
{
	remo_value next = remo_tuple_get(args, 0);
	int64_t n = 0;
	for (;;) {
		remo_value m;
		if (actor_receive(self, -1, 0, NULL, &m, NULL) != REMO_OK)
			return failed();
		int rc = actor_send(next, m);
		bool stop = is_stop(m);
		remo_value_release(m);
		if (rc != REMO_OK)
			return failed();
		if (stop)
			return remo_int(n);
		n++;
	}
}

static remo_value b_collect(actor *self, remo_value args)
{
	remo_value all = remo_list();
	for (;;) {
		remo_value m;
		if (actor_receive(self, -1, 0, NULL, &m, NULL) != REMO_OK) {
			remo_value_release(all);
			return failed();
		}
		if (is_stop(m)) {
			remo_value_release(m);
			return all;
		}
		remo_list_append(all, m);
	}
}

static remo_value b_counter(actor *self, remo_value args)
{
	int64_t n = 0;
	for (;;) {
		remo_value m;
		if (actor_receive(self, -1, 0, NULL, &m, NULL) != REMO_OK)
			return failed();
		bool stop = is_stop(m);
		remo_value_release(m);
		if (stop)
			return remo_int(n);
		n++;
	}
}

static remo_value b_echo(actor *self, remo_value args)
{
	for (;;) {
		remo_value m, method, body;
		if (actor_receive(self, -1, 0, NULL, &m, NULL) != REMO_OK)
			return failed();
		if (is_stop(m)) {
			remo_value_release(m);
			return remo_nil();
		}
		const char *name = m.kind == REMO_DICT &&
		        remo_dict_get_str(m, "method", &method) == REMO_OK
		        ? remo_str_data(method, NULL) : NULL;
		if (name != NULL &&
		    remo_dict_get_str(m, "message", &body) == REMO_OK) {
			if (strcmp(name, "fail") == 0) {
				remo_value e = remo_error("ValueError",
				                          "echo was asked to fail");
				actor_respond_error(m, e);
				remo_value_release(e);
			} else {
				actor_respond(m, body);
			}
		}
		remo_value_release(m);
	}
}

static remo_value b_sleeper(actor *self, remo_value args)
{
	remo_value stop = remo_str("stop");
	remo_value m;
	int rc = actor_receive(self, -1, 1, &stop, &m, NULL);
	remo_value_release(stop);
	if (rc != REMO_OK)
		return failed();
	remo_value_release(m);
	return remo_str("stopped");
}

static remo_value b_fail(actor *self, remo_value args)
{
	const char *name = remo_str_data(remo_tuple_get(args, 0), NULL);
	const char *msg = remo_str_data(remo_tuple_get(args, 1), NULL);
	long k = 41;
	REMO_LOCAL(k);
	remo_raise(name ? name : "Error", "%s", msg ? msg : "");
	return (remo_value){.kind = REMO_INVALID};
}

static remo_value b_sum(actor *self, remo_value args)
{
	remo_value a = remo_tuple_get(args, 0);
	int64_t n = a.kind == REMO_INT ? a.as.i : 0, s = 0;
	for (int64_t i = 0; i < n; i++)
		s += i;
	return remo_int(s);
}

static remo_value b_relay(actor *self, remo_value args)
{
	remo_value c = remo_tuple_get(args, 0);
	int64_t n = c.kind == REMO_INT ? c.as.i : 1;
	for (int64_t i = 0; i < n; i++) {
		remo_value m, to, body;
		if (actor_receive(self, -1, 0, NULL, &m, NULL) != REMO_OK)
			return failed();
		int rc = m.kind == REMO_DICT &&
		         remo_dict_get_str(m, "to", &to) == REMO_OK &&
		         remo_dict_get_str(m, "msg", &body) == REMO_OK
		         ? actor_send(to, body) : REMO_OK;
		remo_value_release(m);
		if (rc != REMO_OK)
			return failed();
	}
	return remo_int(n);
}

/* Waits for target's exit notice: {"exit": ...} or {"exception": ...}. */
static remo_value await_notice(actor *self, remo_value target)
{
	remo_value pats[2] = {remo_dict(), remo_dict()};
	remo_dict_set_str(pats[0], "exit", actor_any());
	remo_dict_set_str(pats[0], "address", remo_value_retain(target));
	remo_dict_set_str(pats[1], "exception", actor_any());
	remo_dict_set_str(pats[1], "address", remo_value_retain(target));
	remo_value m;
	int rc = actor_receive(self, -1, 2, pats, &m, NULL);
	remo_value_release(pats[0]);
	remo_value_release(pats[1]);
	return rc == REMO_OK ? m : failed();
}

static remo_value b_monitor(actor *self, remo_value args)
{
	remo_value t = remo_tuple_get(args, 0);
	if (actor_monitor(self, t) != REMO_OK)
		return failed();
	if (remo_tuple_len(args) > 1) { /* tells args[1] it is in place */
		remo_value m = remo_str("monitoring");
		actor_send(remo_tuple_get(args, 1), m);
		remo_value_release(m);
	}
	return await_notice(self, t);
}

static remo_value b_link(actor *self, remo_value args)
{
	remo_value t = remo_tuple_get(args, 0);
	if (actor_link(self, t) != REMO_OK)
		return failed();
	return await_notice(self, t);
}

static remo_value b_flaky(actor *self, remo_value args)
{
	int64_t attempt = remo_tuple_get(args, 0).as.i;
	int64_t ok_at = remo_tuple_get(args, 1).as.i;
	if (attempt < ok_at) {
		remo_raise("ValueError", "attempt %lld of %lld fails",
		           (long long)attempt, (long long)ok_at);
		return (remo_value){.kind = REMO_INVALID};
	}
	return remo_int(attempt);
}

static remo_value b_supervisor(actor *self, remo_value args)
{
	const char *fn = remo_str_data(remo_tuple_get(args, 0), NULL);
	remo_value arg = remo_tuple_get(args, 1);
	int64_t max = remo_tuple_get(args, 2).as.i;
	for (int64_t restarts = 0;; restarts++) {
		remo_value a = remo_tuple_of(2, remo_int(restarts),
		                             remo_value_retain(arg));
		remo_value child;
		int rc = actor_spawn_link(self, NULL, fn ? fn : "", a, &child);
		remo_value_release(a);
		if (rc != REMO_OK)
			return failed();
		remo_value notice = await_notice(self, child);
		remo_value_release(child);
		if (!remo_ok(notice))
			return notice;
		remo_value x;
		if (remo_dict_get_str(notice, "exit", &x) == REMO_OK) {
			remo_value r = remo_tuple_of(2, remo_value_retain(x),
			                             remo_int(restarts));
			remo_value_release(notice);
			return r;
		}
		remo_dict_get_str(notice, "exception", &x);
		if (restarts == max) {
			remo_raise_value(remo_value_retain(x));
			remo_value_release(notice);
			return (remo_value){.kind = REMO_INVALID};
		}
		remo_value_release(notice);
	}
}

static remo_value b_ring(actor *self, remo_value args)
{
	int64_t n = remo_tuple_get(args, 0).as.i;
	remo_value wv = remo_tuple_get(args, 1);
	const char *where = wv.kind == REMO_STR ? remo_str_data(wv, NULL) : NULL;
	int64_t rounds = remo_tuple_get(args, 2).as.i;
	double t0 = now_s();
	/* actor 0 sends to us, actor i to actor i-1; we send to the last */
	remo_value next = remo_value_retain(actor_self(self));
	for (int64_t i = 0; i < n; i++) {
		remo_value a = remo_tuple_of(1, next), addr;
		int rc = actor_spawn(actor_node_of(self),
		                     where != NULL && i % 2 == 1 ? where : NULL,
		                     "forward", a, &addr);
		remo_value_release(a);
		if (rc != REMO_OK)
			return failed();
		next = addr;
	}
	double built = now_s() - t0;
	t0 = now_s();
	for (int64_t r = 0; r < rounds; r++) {
		remo_value m = remo_dict(), back;
		remo_dict_set_str(m, "text", remo_str("hello around the ring"));
		remo_dict_set_str(m, "round", remo_int(r));
		int rc = actor_send(next, m);
		remo_value_release(m);
		if (rc != REMO_OK ||
		    actor_receive(self, -1, 0, NULL, &back, NULL) != REMO_OK) {
			remo_value_release(next);
			return failed();
		}
		remo_value_release(back);
	}
	double per_round = rounds > 0 ? (now_s() - t0) / (double)rounds : 0;
	/* "stop" goes around too: every actor forwards it and returns */
	remo_value stop = remo_str("stop"), back;
	int rc = actor_send(next, stop);
	remo_value_release(stop);
	remo_value_release(next);
	if (rc != REMO_OK ||
	    actor_receive(self, -1, 0, NULL, &back, NULL) != REMO_OK)
		return failed();
	remo_value_release(back);
	return remo_tuple_of(4, remo_int(n), remo_int(rounds),
	                     remo_double(built), remo_double(per_round));
}

int actors_builtins(void)
{
	static const struct {
		const char *name;
		actor_fn *fn;
	} fns[] = {
		{"forward", b_forward}, {"collect", b_collect},
		{"counter", b_counter}, {"echo", b_echo},
		{"sleeper", b_sleeper}, {"fail", b_fail}, {"sum", b_sum},
		{"relay", b_relay}, {"monitor", b_monitor},
		{"link", b_link}, {"flaky", b_flaky},
		{"supervisor", b_supervisor}, {"ring", b_ring},
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		int rc = actor_register(fns[i].name, fns[i].fn);
		if (rc != REMO_OK && rc != REMO_EEXIST)
			return rc;
	}
	return REMO_OK;
}
