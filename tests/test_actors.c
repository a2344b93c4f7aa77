/*
 * test_actors.c -- demo/actors across real nodes: this process is one
 * node, remo-node processes are the others.  The cookie check both
 * ways; spawn here and there; selective receive for every pattern kind,
 * leaving the rest in place; receive timeouts; wait with results and
 * with errors whose traceback is walked; monitors and links on exit,
 * error, kill and a SIGKILLed node; an address passed through a third
 * node; messages to a dead actor; order and copies; calls; mailbox
 * limits; the supervisor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../demo/actors/actors.h"
#include "procs.h"

#define COOKIE "test-cookie-0123456789"

struct fx {
	actor_node *n;     /* this process's node */
	actor *me;         /* this thread, as an actor */
	pid_t pid[2];      /* remo-node processes */
	char peer[2][300]; /* their HOST:PORT */
	char dir[64];
};

static const char *node_path(void)
{
	static char path[4096];
	const char *b = getenv("top_builddir");
	snprintf(path, sizeof path, "%s/demo/actors/remo-node", b ? b : ".");
	return path;
}

/* Starts remo-node i with name COOKIE@127.0.0.1:0 and more arguments. */
static void peer_start(struct fx *f, int i, const char *cookie,
                       const char *opt, const char *val)
{
	char name[128], err[128];
	snprintf(name, sizeof name, "%s@127.0.0.1:0", cookie);
	snprintf(err, sizeof err, "%s/err%d", f->dir, i);
	char *argv[] = {(char *)node_path(), name, (char *)opt, (char *)val,
	                NULL};
	f->pid[i] = proc_start(argv, err, f->peer[i], sizeof f->peer[i]);
	if (f->pid[i] < 0)
		fail_msg("remo-node did not start: '%s'", f->peer[i]);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/remo-actors-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(actors_builtins(), REMO_OK);
	int rc;
	f->n = actor_node_start(COOKIE "@127.0.0.1:0", NULL, &rc);
	assert_non_null(f->n);
	assert_int_equal(actor_adopt(f->n, &f->me), REMO_OK);
	peer_start(f, 0, COOKIE, NULL, NULL);
	f->pid[1] = -1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	actor_release(f->me);
	actor_node_stop(f->n);
	int st[2] = {0, 0};
	for (int i = 0; i < 2; i++)
		if (f->pid[i] > 0)
			st[i] = proc_stop(f->pid[i], SIGTERM);
	for (int i = 0; i < 2; i++) { /* why one did not stop cleanly */
		char path[160];
		snprintf(path, sizeof path, "%s/err%d", f->dir, i);
		if (!(WIFEXITED(st[i]) && WEXITSTATUS(st[i]) == 0))
			proc_show_err("remo-node", st[i], path);
	}
	proc_rmdir(f->dir);
	free(f);
	for (int i = 0; i < 2; i++) /* they stopped cleanly */
		assert_true(WIFEXITED(st[i]) && WEXITSTATUS(st[i]) == 0);
	return 0;
}

static const char *cstr(remo_value v)
{
	const char *s = remo_str_data(v, NULL);
	return s ? s : "(not a str)";
}

static const char *err_name(void)
{
	return remo_error_name(remo_last_error());
}

static remo_value args1(remo_value a)
{
	return remo_tuple_of(1, a);
}

/* Spawns fn(args) (args stolen) on where; its address. */
static remo_value spawn(struct fx *f, const char *where, const char *fn,
                        remo_value args)
{
	remo_value addr;
	int rc = actor_spawn(f->n, where, fn, args, &addr);
	remo_value_release(args);
	if (rc != REMO_OK)
		fail_msg("spawn %s: %s: %s", fn, err_name(),
		         remo_error_message(remo_last_error()));
	return addr;
}

static void send_str(remo_value to, const char *s)
{
	remo_value m = remo_str(s);
	assert_int_equal(actor_send(to, m), REMO_OK);
	remo_value_release(m);
}

/* ---- nodes and spawning ------------------------------------------------ */

static void test_a_node_of_another_cookie_is_refused_both_ways(void **state)
{
	struct fx *f = *state;
	peer_start(f, 1, "another-cookie-9876543210", NULL, NULL);
	/* from here to there */
	remo_value addr, three = args1(remo_int(3));
	assert_int_equal(actor_spawn(f->n, f->peer[1], "sum", three, &addr),
	                 REMO_ERAISED);
	remo_value_release(three);
	assert_string_equal(err_name(), "AuthenticationError");
	/* from there to here: that node's ring fails by the same name */
	char name[128], err[128];
	snprintf(name, sizeof name, "another-cookie-9876543210@127.0.0.1:0");
	snprintf(err, sizeof err, "%s/ring-err", f->dir);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		dup2(fd, 1);
		execl(node_path(), node_path(), name, "--ring", "2", "--with",
		      actor_node_name(f->n), (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	char text[2048] = "";
	FILE *fp = fopen(err, "r");
	assert_non_null(fp);
	text[fread(text, 1, sizeof text - 1, fp)] = '\0';
	fclose(fp);
	assert_non_null(strstr(text, "AuthenticationError"));
	/* and a cookie too short to be one is refused before anything */
	int rc;
	assert_null(actor_node_start("short@127.0.0.1:0", NULL, &rc));
	assert_int_equal(rc, REMO_EINVAL);
	assert_string_equal(err_name(), "ValueError");
}

static void test_spawn_here_and_there_and_wait_for_results(void **state)
{
	struct fx *f = *state;
	remo_value here = spawn(f, NULL, "sum", args1(remo_int(10)));
	remo_value there = spawn(f, f->peer[0], "sum", args1(remo_int(100)));
	assert_false(remo_is_proxy(here));
	assert_true(remo_is_proxy(there));
	remo_value r;
	assert_int_equal(actor_wait(here, 5000, &r), REMO_OK);
	assert_int_equal(r.as.i, 45);
	assert_int_equal(actor_wait(there, 5000, &r), REMO_OK);
	assert_int_equal(r.as.i, 4950);
	/* a name no node registered */
	remo_value x;
	assert_int_equal(actor_spawn(f->n, f->peer[0], "no-such-fn",
	                             remo_nil(), &x), REMO_ERAISED);
	assert_string_equal(err_name(), "LookupError");
	remo_value_release(here);
	remo_value_release(there);
}

/* ---- selective receive --------------------------------------------------- */

static remo_value dict1(const char *k, remo_value v)
{
	remo_value d = remo_dict();
	remo_dict_set_str(d, k, v);
	return d;
}

static void test_selective_receive_every_pattern_kind(void **state)
{
	struct fx *f = *state;
	remo_value me = actor_self(f->me);
	/* the mailbox, in order */
	remo_value strs = remo_list(), mixed = remo_list();
	remo_list_append(strs, remo_str("a"));
	remo_list_append(strs, remo_str("b"));
	remo_list_append(mixed, remo_int(1));
	remo_list_append(mixed, remo_str("b"));
	remo_value msgs[] = {
		remo_str("first"),                                  /* 0 */
		dict1("name", remo_str("data")),                    /* 1 */
		mixed,                                              /* 2 */
		remo_tuple_of(2, remo_str("data"), remo_int(7)),    /* 3 */
		remo_tuple_of(2, remo_str("data"), remo_str("x")),  /* 4 */
		dict1("name", remo_int(5)),                         /* 5 */
		strs,                                               /* 6 */
		remo_int(42),                                       /* 7 */
		remo_tuple_of(2, remo_str("nest"),
		              dict1("k", remo_tuple_of(1, remo_int(3)))), /* 8 */
	};
	size_t nm = sizeof msgs / sizeof msgs[0];
	for (size_t i = 0; i < nm; i++)
		assert_int_equal(actor_send(me, msgs[i]), REMO_OK);

	remo_value got;
	int which;
	/* a type matches values of that kind: the int, not the str before */
	remo_value p_int = actor_type(REMO_INT);
	assert_int_equal(actor_receive(f->me, 0, 1, &p_int, &got, &which),
	                 REMO_OK);
	assert_int_equal(got.as.i, 42);
	assert_int_equal(which, 0);
	/* a dict pattern {"name": int}: skips {"name": "data"} */
	remo_value p_dict = dict1("name", actor_type(REMO_INT));
	assert_int_equal(actor_receive(f->me, 0, 1, &p_dict, &got, NULL),
	                 REMO_OK);
	assert_true(remo_equal(got, msgs[5]));
	remo_value_release(got);
	/* a tuple pattern ("data", str), column by column, same length */
	remo_value p_tup = remo_tuple_of(2, remo_str("data"),
	                                 actor_type(REMO_STR));
	assert_int_equal(actor_receive(f->me, 0, 1, &p_tup, &got, NULL),
	                 REMO_OK);
	assert_true(remo_equal(got, msgs[4]));
	remo_value_release(got);
	/* a list pattern [str]: every element a str; [1, "b"] stays */
	remo_value p_list = remo_list();
	remo_list_append(p_list, actor_type(REMO_STR));
	assert_int_equal(actor_receive(f->me, 0, 1, &p_list, &got, NULL),
	                 REMO_OK);
	assert_int_equal(remo_list_len(got), 2);
	assert_string_equal(cstr(remo_list_get(got, 0)), "a");
	remo_value_release(got);
	/* nested: ("nest", {"k": (int,)}) */
	remo_value p_nest = remo_tuple_of(2, remo_str("nest"),
	        dict1("k", remo_tuple_of(1, actor_type(REMO_INT))));
	assert_int_equal(actor_receive(f->me, 0, 1, &p_nest, &got, NULL),
	                 REMO_OK);
	assert_true(remo_equal(got, msgs[8]));
	remo_value_release(got);
	/* an exact value, among several patterns: the index of the one that
	 * matched the first matching message in mailbox order */
	remo_value two[2] = {remo_tuple_of(2, remo_str("data"), remo_int(7)),
	                     remo_str("first")};
	assert_int_equal(actor_receive(f->me, 0, 2, two, &got, &which),
	                 REMO_OK);
	assert_string_equal(cstr(got), "first");
	assert_int_equal(which, 1);
	remo_value_release(got);
	/* what is left, in order, by "any" (object) and by no pattern */
	remo_value any = actor_any();
	assert_int_equal(actor_receive(f->me, 0, 1, &any, &got, NULL),
	                 REMO_OK);
	assert_true(remo_equal(got, msgs[1]));
	remo_value_release(got);
	assert_int_equal(actor_receive(f->me, 0, 0, NULL, &got, NULL),
	                 REMO_OK);
	assert_true(remo_equal(got, msgs[2]));
	remo_value_release(got);
	assert_int_equal(actor_receive(f->me, 0, 0, NULL, &got, NULL),
	                 REMO_OK);
	assert_true(remo_equal(got, msgs[3]));
	remo_value_release(got);
	/* empty now: timeout 0 polls */
	assert_int_equal(actor_receive(f->me, 0, 0, NULL, &got, NULL),
	                 REMO_ETIMEDOUT);
	assert_string_equal(err_name(), "TimeoutError");
	remo_value pats[] = {p_int, p_dict, p_tup, p_list, p_nest, two[0],
	                     two[1], any};
	for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
		remo_value_release(pats[i]);
	for (size_t i = 0; i < nm; i++)
		remo_value_release(msgs[i]);
}

static void test_receive_times_out_and_wakes_for_a_late_message(void **state)
{
	struct fx *f = *state;
	remo_value got, five = remo_int(5);
	/* a message that does not match does not end the wait */
	send_str(actor_self(f->me), "not five");
	assert_int_equal(actor_receive(f->me, 100, 1, &five, &got, NULL),
	                 REMO_ETIMEDOUT);
	assert_string_equal(err_name(), "TimeoutError");
	/* a relay on the other node sends 5 to us while we wait */
	remo_value relay = spawn(f, f->peer[0], "relay", args1(remo_int(1)));
	remo_value m = remo_dict();
	remo_dict_set_str(m, "to", remo_value_retain(actor_self(f->me)));
	remo_dict_set_str(m, "msg", remo_int(5));
	assert_int_equal(actor_send(relay, m), REMO_OK);
	assert_int_equal(actor_receive(f->me, 10000, 1, &five, &got, NULL),
	                 REMO_OK);
	assert_int_equal(got.as.i, 5);
	/* the one that did not match is still there */
	assert_int_equal(actor_receive(f->me, 0, 0, NULL, &got, NULL),
	                 REMO_OK);
	assert_string_equal(cstr(got), "not five");
	remo_value_release(got);
	remo_value_release(m);
	remo_value_release(relay);
}

/* ---- wait, errors, tracebacks ------------------------------------------- */

/* Walks e's traceback for the frame of function fn: its file contains
 * file and its local "k" is 41. */
static void assert_frame(remo_value e, const char *fn, const char *file)
{
	remo_value tb = remo_error_traceback(e), fr_list, frames;
	assert_true(tb.kind == REMO_TRACEBACK || remo_is_proxy(tb));
	assert_int_equal(remo_call_method(tb, "frames", remo_nil(), &fr_list),
	                 REMO_OK);
	assert_int_equal(remo_force(fr_list, &frames), REMO_OK);
	remo_value_release(fr_list);
	bool found = false;
	for (size_t i = 0; i < remo_list_len(frames) && !found; i++) {
		remo_value fr = remo_list_get(frames, i), name, where, locals;
		assert_int_equal(remo_getattr(fr, "function", &name), REMO_OK);
		if (strcmp(cstr(name), fn) == 0) {
			found = true;
			assert_int_equal(remo_getattr(fr, "file", &where),
			                 REMO_OK);
			assert_non_null(strstr(cstr(where), file));
			remo_value_release(where);
			assert_int_equal(remo_getattr(fr, "locals", &locals),
			                 REMO_OK);
			remo_value k = remo_str("k"), kv;
			assert_int_equal(remo_getitem(locals, k, &kv), REMO_OK);
			assert_int_equal(kv.as.i, 41);
			remo_value_release(k);
			remo_value_release(locals);
		}
		remo_value_release(name);
	}
	remo_value_release(frames);
	assert_true(found);
}

static void test_wait_raises_an_actors_error_with_its_traceback(void **state)
{
	struct fx *f = *state;
	const char *where[] = {NULL, f->peer[0]};
	for (int i = 0; i < 2; i++) {
		remo_value a = spawn(f, where[i], "fail",
		                     remo_tuple_of(2, remo_str("ZeroDivisionError"),
		                                   remo_str("boom")));
		remo_value r;
		assert_int_equal(actor_wait(a, 5000, &r), REMO_ERAISED);
		remo_value e = remo_value_retain(remo_last_error());
		assert_string_equal(remo_error_name(e), "ZeroDivisionError");
		assert_string_equal(remo_error_message(e), "boom");
		assert_true(remo_is_proxy(remo_error_traceback(e)) == (i == 1));
		assert_frame(e, "b_fail", "builtins.c");
		remo_value_release(e);
		/* a second wait says the same */
		assert_int_equal(actor_wait(a, 5000, &r), REMO_ERAISED);
		assert_string_equal(err_name(), "ZeroDivisionError");
		remo_value_release(a);
	}
	/* a wait that times out leaves the actor running; 0 only looks,
	 * there as here */
	remo_value s = spawn(f, f->peer[0], "sleeper", remo_tuple(0)), r;
	assert_int_equal(actor_wait(s, 0, &r), REMO_ETIMEDOUT);
	assert_int_equal(actor_wait(s, 100, &r), REMO_ETIMEDOUT);
	assert_string_equal(err_name(), "TimeoutError");
	send_str(s, "stop");
	assert_int_equal(actor_wait(s, 5000, &r), REMO_OK);
	assert_string_equal(cstr(r), "stopped");
	remo_value_release(r);
	remo_value_release(s);
}

/* ---- monitors, links, kill, node death --------------------------------- */

/* Receives the next exit notice about target within 10 s. */
#define notice(f, target) notice_at(f, target, __LINE__)
static remo_value notice_at(struct fx *f, remo_value target, int line)
{
	remo_value pat = remo_dict(), got;
	remo_dict_set_str(pat, "address", remo_value_retain(target));
	int rc = actor_receive(f->me, 10000, 1, &pat, &got, NULL);
	remo_value_release(pat);
	if (rc != REMO_OK)
		fail_msg("no notice at line %d: %s", line, err_name());
	return got;
}

static const char *exception_name(remo_value notice)
{
	remo_value e;
	if (remo_dict_get_str(notice, "exception", &e) != REMO_OK)
		return "(an exit)";
	return remo_error_name(e);
}

static void test_monitors_see_exit_error_and_kill(void **state)
{
	struct fx *f = *state;
	/* normal exit, remote */
	remo_value s = spawn(f, f->peer[0], "sleeper", remo_tuple(0));
	assert_int_equal(actor_monitor(f->me, s), REMO_OK);
	send_str(s, "stop");
	remo_value n = notice(f, s), x;
	assert_int_equal(remo_dict_get_str(n, "exit", &x), REMO_OK);
	assert_string_equal(cstr(x), "stopped");
	remo_value_release(n);
	remo_value_release(s);
	/* an error, remote: the error by name; monitored after it ended,
	 * the notice comes at once */
	s = spawn(f, f->peer[0], "fail", remo_tuple_of(2, remo_str("KeyError"),
	                                               remo_str("k")));
	remo_value r;
	assert_int_equal(actor_wait(s, 5000, &r), REMO_ERAISED);
	assert_int_equal(actor_monitor(f->me, s), REMO_OK);
	n = notice(f, s);
	assert_string_equal(exception_name(n), "KeyError");
	remo_value_release(n);
	remo_value_release(s);
	/* kill, here and there: Killed for monitors, waiters, and sends */
	const char *where[] = {NULL, f->peer[0]};
	for (int i = 0; i < 2; i++) {
		s = spawn(f, where[i], "sleeper", remo_tuple(0));
		assert_int_equal(actor_monitor(f->me, s), REMO_OK);
		assert_int_equal(actor_kill(s), REMO_OK);
		n = notice(f, s);
		assert_string_equal(exception_name(n), "Killed");
		remo_value_release(n);
		assert_int_equal(actor_wait(s, 5000, &r), REMO_ERAISED);
		assert_string_equal(err_name(), "Killed");
		remo_value m = remo_str("hello?");
		assert_int_equal(actor_send_checked(s, m), REMO_ERAISED);
		assert_string_equal(err_name(), "DeadActor");
		remo_value_release(m);
		remo_value_release(s);
	}
}

static void test_links_go_both_ways(void **state)
{
	struct fx *f = *state;
	/* a remote actor links to a second actor of ours, which ends: the
	 * remote one gets the exit notice (and returns it) */
	actor *other;
	assert_int_equal(actor_adopt(f->n, &other), REMO_OK);
	remo_value l = spawn(f, f->peer[0], "link",
	                     args1(remo_value_retain(actor_self(other))));
	/* and we get its notice when it ends: linked both ways */
	remo_value n;
	assert_int_equal(actor_link(f->me, l), REMO_OK);
	actor_release(other);
	remo_value r, x;
	assert_int_equal(actor_wait(l, 10000, &r), REMO_OK);
	assert_int_equal(remo_dict_get_str(r, "exit", &x), REMO_OK);
	assert_int_equal(x.kind, REMO_NIL);
	remo_value_release(r);
	n = notice(f, l);
	assert_int_equal(remo_dict_get_str(n, "exit", &x), REMO_OK);
	remo_value_release(n);
	remo_value_release(l);
}

static void test_a_killed_node_ends_its_actors_for_their_monitors(void **state)
{
	struct fx *f = *state;
	peer_start(f, 1, COOKIE, NULL, NULL);
	remo_value s1 = spawn(f, f->peer[1], "sleeper", remo_tuple(0));
	remo_value s2 = spawn(f, f->peer[1], "sleeper", remo_tuple(0));
	assert_int_equal(actor_monitor(f->me, s1), REMO_OK);
	assert_int_equal(actor_link(f->me, s2), REMO_OK);
	/* and an actor of a third node monitors one of them too */
	remo_value m = spawn(f, f->peer[0], "monitor",
	                     remo_tuple_of(2, remo_value_retain(s1),
	                        remo_value_retain(actor_self(f->me))));
	remo_value ack, want = remo_str("monitoring");
	assert_int_equal(actor_receive(f->me, 10000, 1, &want, &ack, NULL),
	                 REMO_OK);
	remo_value_release(ack);
	remo_value_release(want);
	int status = proc_stop(f->pid[1], SIGKILL);
	f->pid[1] = -1;
	assert_true(WIFSIGNALED(status));
	remo_value n1 = notice(f, s1), n2 = notice(f, s2);
	assert_string_equal(exception_name(n1), "NodeDown");
	assert_string_equal(exception_name(n2), "NodeDown");
	remo_value r;
	assert_int_equal(actor_wait(m, 10000, &r), REMO_OK);
	assert_string_equal(exception_name(r), "NodeDown");
	remo_value_release(r);
	/* what else a program does with the dead node's actors fails by
	 * name, at once: a checked send, a wait, a kill, a spawn there */
	remo_value m2 = remo_str("anyone?"), x;
	assert_int_equal(actor_send_checked(s1, m2), REMO_EPEERLOST);
	assert_string_equal(err_name(), "PeerLost");
	assert_int_equal(actor_wait(s1, 5000, &x), REMO_EPEERLOST);
	assert_int_equal(actor_kill(s1), REMO_EPEERLOST);
	remo_value none = remo_tuple(0);
	assert_int_equal(actor_spawn(f->n, f->peer[1], "sum", none, &x),
	                 REMO_ERAISED);
	remo_value_release(none);
	assert_string_equal(err_name(), "NodeDown");
	assert_non_null(strstr(remo_error_message(remo_last_error()),
	                       f->peer[1]));
	remo_value_release(m2);
	remo_value_release(n1);
	remo_value_release(n2);
	remo_value_release(m);
	remo_value_release(s1);
	remo_value_release(s2);
}

/* ---- addresses travel; dead actors; order; calls ------------------------- */

static void test_an_address_passed_through_a_third_node_works(void **state)
{
	struct fx *f = *state;
	peer_start(f, 1, COOKIE, NULL, NULL);
	/* our address goes to a relay on node 0, which hands it to a relay
	 * on node 1, which sends to it */
	remo_value r0 = spawn(f, f->peer[0], "relay", args1(remo_int(1)));
	remo_value r1 = spawn(f, f->peer[1], "relay", args1(remo_int(1)));
	remo_value inner = remo_dict(), outer = remo_dict();
	remo_dict_set_str(inner, "to", remo_value_retain(actor_self(f->me)));
	remo_dict_set_str(inner, "msg", remo_str("around"));
	remo_dict_set_str(outer, "to", remo_value_retain(r1));
	remo_dict_set_str(outer, "msg", inner);
	assert_int_equal(actor_send(r0, outer), REMO_OK);
	remo_value got;
	assert_int_equal(actor_receive(f->me, 10000, 0, NULL, &got, NULL),
	                 REMO_OK);
	assert_string_equal(cstr(got), "around");
	remo_value_release(got);
	remo_value_release(outer);
	remo_value_release(r0);
	remo_value_release(r1);
}

static void test_messages_to_a_dead_actor(void **state)
{
	struct fx *f = *state;
	const char *where[] = {NULL, f->peer[0]};
	for (int i = 0; i < 2; i++) {
		remo_value a = spawn(f, where[i], "sum", args1(remo_int(3))), r;
		assert_int_equal(actor_wait(a, 5000, &r), REMO_OK);
		remo_value m = remo_str("late");
		/* the sender who asks is told by name */
		assert_int_equal(actor_send_checked(a, m), REMO_ERAISED);
		assert_string_equal(err_name(), "DeadActor");
		/* a one-way send: here the sender still knows; there it is
		 * dropped, and counted */
		if (i == 0) {
			assert_int_equal(actor_send(a, m), REMO_ERAISED);
			assert_string_equal(err_name(), "DeadActor");
		} else {
			remo_value st;
			assert_int_equal(actor_node_stats(f->n, f->peer[0], &st),
			                 REMO_OK);
			int64_t before = remo_tuple_get(st, 3).as.i;
			remo_value_release(st);
			assert_int_equal(actor_send(a, m), REMO_OK);
			int64_t after = before;
			for (int k = 0; k < 500 && after == before; k++) {
				usleep(10000);
				assert_int_equal(actor_node_stats(f->n, f->peer[0],
				                                  &st), REMO_OK);
				after = remo_tuple_get(st, 3).as.i;
				remo_value_release(st);
			}
			assert_int_equal(after, before + 1);
		}
		remo_value_release(m);
		remo_value_release(a);
	}
}

static void test_messages_arrive_in_order_and_as_copies(void **state)
{
	struct fx *f = *state;
	const char *where[] = {NULL, f->peer[0]};
	for (int i = 0; i < 2; i++) {
		remo_value c = spawn(f, where[i], "collect", remo_tuple(0));
		remo_value l = remo_list();
		for (int k = 0; k < 2000; k++) {
			remo_value m = remo_int(k);
			assert_int_equal(actor_send(c, m), REMO_OK);
		}
		remo_list_append(l, remo_str("before"));
		assert_int_equal(actor_send(c, l), REMO_OK);
		/* changed after sending: the actor has its own copy */
		remo_list_set(l, 0, remo_str("after"));
		send_str(c, "stop");
		remo_value r;
		assert_int_equal(actor_wait(c, 10000, &r), REMO_OK);
		assert_int_equal(remo_list_len(r), 2001);
		for (int k = 0; k < 2000; k++)
			assert_int_equal(remo_list_get(r, (size_t)k).as.i, k);
		remo_value last = remo_list_get(r, 2000);
		assert_false(remo_is_proxy(last));
		assert_string_equal(cstr(remo_list_get(last, 0)), "before");
		remo_value_release(r);
		remo_value_release(l);
		remo_value_release(c);
	}
}

static void test_calls_between_actors(void **state)
{
	struct fx *f = *state;
	remo_value e = spawn(f, f->peer[0], "echo", remo_tuple(0));
	remo_value hi = remo_str("hi"), r;
	assert_int_equal(actor_call(f->me, e, "echo", hi, 5000, &r), REMO_OK);
	assert_string_equal(cstr(r), "hi");
	remo_value_release(r);
	/* the callee's error, by name, as the caller's */
	assert_int_equal(actor_call(f->me, e, "fail", hi, 5000, &r),
	                 REMO_ERAISED);
	assert_string_equal(err_name(), "ValueError");
	/* no response in time: TimeoutError naming the method */
	remo_value s = spawn(f, f->peer[0], "sleeper", remo_tuple(0));
	assert_int_equal(actor_call(f->me, s, "echo", hi, 100, &r),
	                 REMO_ETIMEDOUT);
	assert_string_equal(err_name(), "TimeoutError");
	assert_non_null(strstr(remo_error_message(remo_last_error()), "echo"));
	/* a call to an actor that has ended: DeadActor at once */
	send_str(e, "stop");
	assert_int_equal(actor_wait(e, 5000, &r), REMO_OK);
	assert_int_equal(actor_call(f->me, e, "echo", hi, 5000, &r),
	                 REMO_ERAISED);
	assert_string_equal(err_name(), "DeadActor");
	assert_int_equal(actor_kill(s), REMO_OK);
	remo_value_release(hi);
	remo_value_release(s);
	remo_value_release(e);
}

static void test_a_full_mailbox_is_a_named_error(void **state)
{
	struct fx *f = *state;
	peer_start(f, 1, COOKIE, "--max-mailbox", "10");
	remo_value s = spawn(f, f->peer[1], "sleeper", remo_tuple(0));
	remo_value m = remo_int(1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(actor_send_checked(s, m), REMO_OK);
	assert_int_equal(actor_send_checked(s, m), REMO_ERAISED);
	assert_string_equal(err_name(), "MailboxFull");
	assert_true(remo_error_isa(remo_last_error(), "LimitError"));
	assert_int_equal(actor_kill(s), REMO_OK);
	remo_value_release(s);
	/* an exit notice still reaches a full mailbox: a monitor there,
	 * its mailbox filled, hears of our second actor's end */
	actor *other;
	assert_int_equal(actor_adopt(f->n, &other), REMO_OK);
	remo_value mon = spawn(f, f->peer[1], "monitor",
	                       remo_tuple_of(2,
	                           remo_value_retain(actor_self(other)),
	                           remo_value_retain(actor_self(f->me))));
	remo_value ack, want = remo_str("monitoring"), r, x;
	assert_int_equal(actor_receive(f->me, 10000, 1, &want, &ack, NULL),
	                 REMO_OK);
	int sent = 0;
	while (actor_send_checked(mon, m) == REMO_OK && sent < 20)
		sent++;
	assert_int_equal(sent, 10);
	assert_string_equal(err_name(), "MailboxFull");
	actor_release(other);
	assert_int_equal(actor_wait(mon, 10000, &r), REMO_OK);
	assert_int_equal(remo_dict_get_str(r, "exit", &x), REMO_OK);
	remo_value_release(r);
	remo_value_release(ack);
	remo_value_release(want);
	remo_value_release(mon);
}

static void test_the_supervisor_restarts_a_failing_child(void **state)
{
	struct fx *f = *state;
	/* flaky fails on attempts 0 and 1 and returns 2 on the third */
	remo_value sup = spawn(f, f->peer[0], "supervisor",
	                       remo_tuple_of(3, remo_str("flaky"), remo_int(2),
	                                     remo_int(5)));
	remo_value r;
	assert_int_equal(actor_wait(sup, 10000, &r), REMO_OK);
	assert_int_equal(remo_tuple_get(r, 0).as.i, 2);
	assert_int_equal(remo_tuple_get(r, 1).as.i, 2);
	remo_value_release(r);
	remo_value_release(sup);
	/* with one restart allowed it gives up with the child's error */
	sup = spawn(f, NULL, "supervisor",
	            remo_tuple_of(3, remo_str("flaky"), remo_int(2),
	                          remo_int(1)));
	assert_int_equal(actor_wait(sup, 10000, &r), REMO_ERAISED);
	assert_string_equal(err_name(), "ValueError");
	remo_value_release(sup);
}

/* A node stopped while one of its actors monitors an actor of another
 * node of this process: that actor's end later touches nothing of the
 * stopped node (ASan found the stopped node's memory read). */
static void test_a_stopped_nodes_watchers_are_left_alone(void **state)
{
	struct fx *f = *state;
	int rc;
	actor_node *n1 = actor_node_start(COOKIE "@127.0.0.1:0", NULL, &rc);
	actor_node *n2 = actor_node_start(COOKIE "@127.0.0.1:0", NULL, &rc);
	assert_non_null(n1);
	assert_non_null(n2);
	remo_value none = remo_tuple(0), y, x;
	assert_int_equal(actor_spawn(n2, NULL, "sleeper", none, &y), REMO_OK);
	remo_value args = remo_tuple_of(2, remo_value_retain(y),
	                                remo_value_retain(actor_self(f->me)));
	assert_int_equal(actor_spawn(n1, NULL, "monitor", args, &x), REMO_OK);
	remo_value ack, want = remo_str("monitoring");
	assert_int_equal(actor_receive(f->me, 10000, 1, &want, &ack, NULL),
	                 REMO_OK);
	actor_node_stop(n1); /* x is killed, n1 freed */
	send_str(y, "stop");
	remo_value r;
	assert_int_equal(actor_wait(y, 5000, &r), REMO_OK);
	assert_string_equal(cstr(r), "stopped");
	remo_value_release(r);
	actor_node_stop(n2);
	remo_value_release(ack);
	remo_value_release(want);
	remo_value_release(args);
	remo_value_release(none);
	remo_value_release(x);
	remo_value_release(y);
}

/* One session introduces one node: a node saying hello under many names
 * on one session does not fill the other's table of nodes, and a node
 * whose session ended is no longer counted. */
static void test_one_hello_per_session(void **state)
{
	struct fx *f = *state;
	char url[320];
	snprintf(url, sizeof url, "tcp://%s", f->peer[0]);
	remo_session_opts o = {.secret = COOKIE, .secret_len = strlen(COOKIE)};
	remo_session *s;
	/* a "node" of ours for the other to look up, as a node has */
	remo_exports *ex = remo_exports_new();
	assert_int_equal(remo_export(ex, "node", remo_int(1)), REMO_OK);
	assert_int_equal(remo_connect(url, 5000, ex, &o, &s), REMO_OK);
	remo_value node, out, st;
	assert_int_equal(remo_lookup(s, "node", &node), REMO_OK);
	int64_t before, during = -1, after = -1;
	assert_int_equal(actor_node_stats(f->n, f->peer[0], &st), REMO_OK);
	before = remo_tuple_get(st, 4).as.i;
	remo_value_release(st);
	for (int i = 0; i < 20; i++) {
		char name[64];
		snprintf(name, sizeof name, "127.0.0.1:%d", 1000 + i);
		remo_value a = remo_tuple_of(1, remo_str(name));
		remo_future *fut;
		/* hello is answered only when the session ends */
		assert_int_equal(remo_call_method_async(node, "hello", a, NULL,
		                                        &fut), REMO_OK);
		remo_future_free(fut);
		remo_value_release(a);
	}
	/* a round trip after them: they have been served */
	assert_int_equal(remo_call_method(node, "name", remo_nil(), &out),
	                 REMO_OK);
	remo_value_release(out);
	assert_int_equal(actor_node_stats(f->n, f->peer[0], &st), REMO_OK);
	during = remo_tuple_get(st, 4).as.i;
	remo_value_release(st);
	assert_int_equal(during, before + 1);
	remo_value_release(node);
	remo_session_free(s);
	for (int k = 0; k < 500; k++) {
		assert_int_equal(actor_node_stats(f->n, f->peer[0], &st), REMO_OK);
		after = remo_tuple_get(st, 4).as.i;
		remo_value_release(st);
		if (after == before)
			break;
		usleep(10000);
	}
	assert_int_equal(after, before);
	remo_exports_free(ex);
}

static void test_the_ring_goes_around_two_nodes(void **state)
{
	struct fx *f = *state;
	remo_value ring = spawn(f, NULL, "ring",
	                        remo_tuple_of(3, remo_int(200),
	                                      remo_str(f->peer[0]),
	                                      remo_int(3)));
	remo_value r;
	assert_int_equal(actor_wait(ring, 30000, &r), REMO_OK);
	assert_int_equal(remo_tuple_get(r, 0).as.i, 200);
	assert_int_equal(remo_tuple_get(r, 1).as.i, 3);
	remo_value_release(r);
	remo_value_release(ring);
	/* every ring actor returned ("stop" went around) on both nodes */
	remo_value st;
	int64_t left = -1;
	for (int k = 0; k < 500 && left != 0; k++) {
		assert_int_equal(actor_node_stats(f->n, f->peer[0], &st), REMO_OK);
		left = remo_tuple_get(st, 0).as.i;
		remo_value_release(st);
		if (left != 0)
			usleep(10000);
	}
	assert_int_equal(left, 0);
	assert_int_equal(actor_node_actors(f->n), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_a_node_of_another_cookie_is_refused_both_ways),
		T(test_spawn_here_and_there_and_wait_for_results),
		T(test_selective_receive_every_pattern_kind),
		T(test_receive_times_out_and_wakes_for_a_late_message),
		T(test_wait_raises_an_actors_error_with_its_traceback),
		T(test_monitors_see_exit_error_and_kill),
		T(test_links_go_both_ways),
		T(test_a_killed_node_ends_its_actors_for_their_monitors),
		T(test_an_address_passed_through_a_third_node_works),
		T(test_messages_to_a_dead_actor),
		T(test_messages_arrive_in_order_and_as_copies),
		T(test_calls_between_actors),
		T(test_a_full_mailbox_is_a_named_error),
		T(test_the_supervisor_restarts_a_failing_child),
		T(test_a_stopped_nodes_watchers_are_left_alone),
		T(test_one_hello_per_session),
		T(test_the_ring_goes_around_two_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
