/*
 * lease.c -- the lease thread: one for the process, shared by every
 * session with a lease; it sends heartbeats after a quiet period and
 * ends a session whose peer has been silent for three.
 */
#include "session/session_impl.h"

/* ==== leases =========================================================== */

/*
 * One thread per process keeps every leased session's lease: it sends a
 * PING on a session that sent nothing for T, and ends a session that
 * heard nothing for 3T with REMO_EPEERLOST.  It also reads for a served
 * session whose serving threads are all busy, and starts helpers for it
 * (serve.c, "helpers").  It must be a thread of its
 * own: the threads of a session may all be busy in a long call, and the
 * peer must still hear from us (and we must still notice a peer that
 * stopped, say by SIGSTOP, while we wait).  The thread starts with the
 * first session and ticks every LEASE_TICK_MS.
 */
#define LEASE_TICK_MS 10

static pthread_mutex_t lease_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lease_done = PTHREAD_COND_INITIALIZER;
static remo_session *lease_list;
static bool lease_running;
static pthread_t lease_thread;
/* The sessions of the tick being worked (counted by the lease thread):
 * remo__lease_remove waits until its session is not among them, so that
 * a program's remo_session_free is the last release, not the lease
 * thread's after the program went on (TSan: a TLS session destroyed by
 * the lease thread while the program's exit cleaned OpenSSL up). */
static remo_session *lease_working[256];
static int lease_nworking;

static void *lease_main(void *arg)
{
	(void)arg;
	for (;;) {
		usleep(LEASE_TICK_MS * 1000);
		remo_session *due[256];
		int ndue = 0;
		int64_t now = remo__now_ms_coarse(); /* as the stamps */
		pthread_mutex_lock(&lease_lock);
		for (remo_session *s = lease_list; s && ndue < 256;
		     s = s->lease_next) {
			int64_t T = s->opts.lease_ms;
			/* Due: time for a heartbeat, or silence to judge, or
			 * nobody reading it (all its threads busy in calls, or
			 * an idle client), so that a peer that died is noticed
			 * within a tick instead of when a call returns, and a
			 * request that waits behind a busy call is read (and
			 * a helper started for it).  A session without a lease
			 * that nobody serves is left alone. */
			/* an event loop reads a polled session: only what came
			 * while its turn is busy in a call waits for us */
			bool unread = !atomic_load(&s->reading) &&
			              (!atomic_load(&s->polled) ||
			               atomic_load(&s->turns_serving) > 0 ||
			               atomic_load(&s->rx_paused));
			bool served = atomic_load(&s->served);
			if (T == 0 ? !(served && unread) &&
			             atomic_load(&s->ndeadlines) == 0
			           : now - atomic_load(&s->last_send_ms) < T &&
			             now - atomic_load(&s->last_recv_ms) < 3 * T &&
			             !unread && atomic_load(&s->ndeadlines) == 0)
				continue;
			/* a session whose count reached 0 is being destroyed
			 * (and waits for lease_lock to leave this list) */
			unsigned n = atomic_load(&s->refs);
			while (n != 0 &&
			       !atomic_compare_exchange_weak(&s->refs, &n, n + 1))
				;
			if (n != 0)
				due[ndue++] = s;
		}
		memcpy(lease_working, due, (size_t)ndue * sizeof due[0]);
		lease_nworking = ndue;
		pthread_mutex_unlock(&lease_lock);
		for (int i = 0; i < ndue; i++) {
			remo_session *s = due[i];
			int64_t T = s->opts.lease_ms;
			bool served = atomic_load(&s->served);
			/* Async calls past their deadline settle here too, so
			 * a future with only a callback times out (within a
			 * tick) even if nobody waits for it. */
			if (atomic_load(&s->ndeadlines) > 0)
				remo__futures_expire(s);
			/* Nobody may be reading (an idle client, or servers
			 * busy in calls): read what has arrived, so heartbeats
			 * count and requests get queued. */
			for (int k = 0; (T > 0 || served) && k < 16; k++) {
				pthread_mutex_lock(&s->lock);
				/* not past the queue's budget: backpressure */
				bool mine = !s->reading && s->status == REMO_OK &&
				            !remo__rx_full(s);
				if (mine)
					s->reading = true;
				pthread_mutex_unlock(&s->lock);
				if (!mine || remo__reader_turn(s, 0) != REMO_OK)
					break;
			}
			/* served: its servers may all be busy; not served but
			 * concurrent (remo_connect's client, between its own
			 * calls): nobody serves what its peer asks, unless a
			 * helper does */
			if (served || s->opts.max_concurrent > 1)
				remo__serve_maybe_help(s, !served);
			now = remo__now_ms_coarse();
			/* a session not read for backpressure hears nothing:
			 * that silence is ours, not the peer's.  One paused
			 * for the process's budget is woken when that frees
			 * up (what ends its own pause wakes it at once) */
			pthread_mutex_lock(&s->lock);
			if (remo__rx_full(s)) {
				atomic_store(&s->last_recv_ms, now);
			} else if (atomic_exchange(&s->rx_paused, false)) {
				remo__session_wake(s);
			}
			pthread_mutex_unlock(&s->lock);
			if (T == 0) {
				/* no lease to keep */
			} else if (now - atomic_load(&s->last_recv_ms) >= 3 * T &&
			           atomic_load(&s->nparked) == 0) {
				remo__session_end(s, REMO_EPEERLOST);
			} else if (remo_session_status(s) == REMO_OK &&
			           now - atomic_load(&s->last_send_ms) >= T &&
			           pthread_mutex_trylock(&s->send_lock) == 0) {
				/* busy sending means not idle: skip it then.
				 * Releases and drops due go first: an idle
				 * session still lets the peer free them. */
				remo__send_preamble(s, NULL, NULL, 0);
				s->shapebuf.len = 0;
				if (remo__wire_put_array(&s->shapebuf, 1) == REMO_OK &&
				    remo__wire_put_int(&s->shapebuf, MSG_PING) == REMO_OK)
					remo__send_raw(s, &s->shapebuf);
				pthread_mutex_unlock(&s->send_lock);
			}
			remo__session_release(s);
		}
		pthread_mutex_lock(&lease_lock);
		lease_nworking = 0;
		pthread_cond_broadcast(&lease_done);
		pthread_mutex_unlock(&lease_lock);
	}
	return NULL;
}

void remo__lease_add(remo_session *s)
{
	pthread_mutex_lock(&lease_lock);
	s->lease_next = lease_list;
	lease_list = s;
	if (!lease_running) {
		pthread_t th;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		lease_running = pthread_create(&th, &a, lease_main, NULL) == 0;
		lease_thread = th;
		pthread_attr_destroy(&a);
	}
	pthread_mutex_unlock(&lease_lock);
}

void remo__lease_remove(remo_session *s)
{
	pthread_mutex_lock(&lease_lock);
	for (remo_session **pp = &lease_list; *pp; pp = &(*pp)->lease_next)
		if (*pp == s) {
			*pp = s->lease_next;
			break;
		}
	/* not on the lease thread itself (its release can be the last) */
	bool self = lease_running && pthread_equal(pthread_self(), lease_thread);
	for (int i = 0; !self && i < lease_nworking; i++)
		if (lease_working[i] == s) {
			pthread_cond_wait(&lease_done, &lease_lock);
			i = -1; /* a new tick: look again */
		}
	pthread_mutex_unlock(&lease_lock);
}
