/*
 * actors.h -- actors on remo, after python-actors (and Erlang): share
 * nothing, talk by messages, across nodes.
 *
 * A node is a process that runs actors and serves them to other nodes
 * (actor_node_start), named COOKIE@HOST:PORT: nodes talk only if they
 * share the cookie, proved with remo's authenticated handshake (the
 * cookie never crosses the network).  An actor is a C function run on
 * its own thread (a small stack: README.md says why threads); it gets a
 * handle to itself, from which it receives, and its arguments.  Its
 * address is a remo object: it can travel in any message to any node,
 * and sending to it works wherever it ends up.
 *
 * Functions are spawned by name (actor_register), on this node or
 * another: every node of a mesh registers the same names, as every
 * Erlang node loads the same modules.
 *
 * Errors: every function returns REMO_OK or a remo status, and puts the
 * error in remo_last_error(): REMO_ETIMEDOUT (TimeoutError) when time ran
 * out, REMO_ERAISED for the others: DeadActor (the actor has ended),
 * MailboxFull (a LimitError: the mailbox holds max_mailbox messages),
 * Killed (the actor was killed: what its receive and its waiters get),
 * NodeDown (the node of a linked actor went away, or a node that
 * cannot be reached),
 * AuthenticationError (a node with another cookie), LookupError (no
 * function of that name on the node), LimitError (max_actors).
 */
#ifndef REMO_ACTORS_H
#define REMO_ACTORS_H

#include <remo/remo.h>

typedef struct actor_node actor_node;
typedef struct actor actor;

/* An actor's function: returns its result (a new value: nil, a number,
 * a string, a tuple, a list or dict (copied out), an address...), or
 * REMO_INVALID to fail with remo_last_error(): one it raised
 * (remo_raise, with the traceback of where), or that of a call that
 * failed (a receive's Killed). */
typedef remo_value actor_fn(actor *self, remo_value args);

/* actor_register: makes fn spawnable as name in this process (before
 * the node starts).  REMO_EEXIST, REMO_EINVAL, REMO_ENOMEM. */
int actor_register(const char *name, actor_fn *fn);

#define ACTOR_DEFAULT_MAX_ACTORS 100000
#define ACTOR_DEFAULT_MAX_MAILBOX 100000
#define ACTOR_DEFAULT_STACK (256u << 10)
#define ACTOR_MIN_COOKIE REMO_MIN_SECRET

typedef struct actor_node_opts {
	unsigned max_actors;  /* actors running at once: 0: 100,000       */
	size_t max_mailbox;   /* messages waiting in one mailbox: 0: 100,000 */
	size_t stack_size;    /* bytes of each actor's stack: 0: 256 KiB   */
	const char *cookie;   /* if set, the cookie (the name is then
	                         HOST:PORT), e.g. from a file; else the
	                         name's COOKIE@ part.  16 bytes or more.  */
} actor_node_opts;

/*
 * actor_node_start: a node named COOKIE@HOST:PORT (PORT 0: any free
 * port), listening on tcp://HOST:PORT and serving other nodes of the
 * cookie.  opts may be NULL.  NULL on failure with *rc set and the
 * reason in remo_last_error(): REMO_EINVAL (a malformed name, a cookie
 * under 16 bytes), the listen failures of remo_server_listen.
 */
actor_node *actor_node_start(const char *name, const actor_node_opts *opts,
                             int *rc);
/* actor_node_name: "HOST:PORT", the port really bound. */
const char *actor_node_name(const actor_node *n);
/* actor_node_actors: actors running now. */
unsigned actor_node_actors(actor_node *n);
/* actor_node_dropped: one-way messages dropped here (a full mailbox, an
 * ended actor) because their sender did not ask (actor_send). */
uint64_t actor_node_dropped(actor_node *n);
/* actor_node_stats: *out (new) = (actors, threads, rss_kib, dropped,
 * peers) of the node where ("HOST:PORT"; NULL: n): its actors running,
 * the process's threads and resident memory, actor_node_dropped, and the
 * other nodes it has a session with now. */
int actor_node_stats(actor_node *n, const char *where, remo_value *out);
/* actor_node_stop: kills every actor here (Killed), waits for their
 * threads (an actor's function must return once its receive fails),
 * closes every session and frees n. */
void actor_node_stop(actor_node *n);

/*
 * actor_spawn: starts the function registered as fn with args (copied:
 * by value) on the node where ("HOST:PORT"; NULL: n itself), *addr (new)
 * its address.
 */
int actor_spawn(actor_node *n, const char *where, const char *fn,
                remo_value args, remo_value *addr);
/* actor_spawn_link: actor_spawn, then actor_link(self, *addr). */
int actor_spawn_link(actor *self, const char *where, const char *fn,
                     remo_value args, remo_value *addr);

/* actor_self: the actor's own address (borrowed: valid while it runs);
 * python-actors' curaddr(). */
remo_value actor_self(actor *self);
/* actor_node_of: the node self runs on. */
actor_node *actor_node_of(actor *self);
/* actor_id: "HOST:PORT#N", unique in the mesh while its node runs. */
const char *actor_id(actor *self);

/*
 * actor_adopt: an actor for the calling thread, so that a program's main
 * (or a test) can have an address and receive; actor_release ends it
 * (result nil) and frees the handle.
 */
int actor_adopt(actor_node *n, actor **out);
void actor_release(actor *self);

/*
 * actor_send: sends msg (a copy: lists and dicts copied, addresses and
 * other objects kept as references) to addr, asynchronously; messages
 * from one sender to one actor arrive in the order sent.  To an actor
 * of this node the failure is the caller's (DeadActor, MailboxFull);
 * to another node's the send is one-way and such a message is dropped
 * there (counted: actor_node_dropped).  actor_send_checked asks instead
 * (a round trip): DeadActor or MailboxFull whichever node it is on.
 */
int actor_send(remo_value addr, remo_value msg);
int actor_send_checked(remo_value addr, remo_value msg);

/*
 * Patterns, for actor_receive.  A pattern is a value: actor_any()
 * matches anything (python-actors' object); actor_type(kind) matches
 * values of that kind (REMO_INT, REMO_STR, REMO_DICT...; REMO_OBJECT
 * also matches callables and addresses); a dict matches dicts that have
 * each of its keys with a value matching the key's pattern (other keys
 * allowed); a tuple matches tuples of the same length column by column;
 * a list of one pattern matches lists whose every element matches it
 * (python-actors' [str]), any other list lists of its length element
 * by element; any other value matches values equal to it.  Patterns
 * nest.  Both return new values (REMO_INVALID without memory).
 */
remo_value actor_any(void);
remo_value actor_type(remo_kind kind);
/* actor_match: whether v matches pattern p. */
bool actor_match(remo_value p, remo_value v);

/*
 * actor_receive: the first message in mailbox order that matches any of
 * the npat patterns (npat 0: the next message), taken out into *msg
 * (new), the index of the pattern it matched in *which (may be NULL);
 * the other messages stay.  Waits up to timeout_ms (-1: for ever; 0:
 * only looks): REMO_ETIMEDOUT past it.  Killed once the actor was killed.
 */
int actor_receive(actor *self, int timeout_ms, size_t npat,
                  const remo_value *pats, remo_value *msg, int *which);

/*
 * actor_wait: waits up to timeout_ms (-1: for ever) for the actor at addr
 * to end: its result into *result (new), or its error (REMO_ERAISED,
 * with the actor's traceback, which stays on its node) in
 * remo_last_error(); Killed if it was killed; PeerLost if its node went
 * away first.
 */
int actor_wait(remo_value addr, int timeout_ms, remo_value *result);

/*
 * actor_monitor: when the actor at addr ends, self gets the message
 * {"exit": result, "address": addr} or {"exception": error, "address":
 * addr} (at once if it has ended; exactly one of them); if its node
 * goes away first (killed, or the connection to it is cut), the
 * exception is NodeDown.  actor_link: monitors both ways.  These
 * messages pass a full mailbox (up to twice max_mailbox).
 */
int actor_monitor(actor *self, remo_value addr);
int actor_link(actor *self, remo_value addr);

/* actor_kill: ends the actor at addr with Killed, for everyone: its
 * monitors are told, its waiters get Killed, messages to it fail with
 * DeadActor; its own next (or current) receive fails with Killed. */
int actor_kill(remo_value addr);

/*
 * Calls between actors, python-actors' convention.  actor_call sends
 * addr {"call": ID, "method": method, "address": self, "message": msg}
 * and waits up to timeout_ms for {"response": ID, "message": result}
 * (*out, new) or {"response": ID, "exception": error} (REMO_ERAISED,
 * that error: the callee's, by name, with its traceback).  Other
 * messages stay in the mailbox.  TimeoutError past timeout_ms.
 * actor_respond / actor_respond_error answer such a call message.
 */
int actor_call(actor *self, remo_value addr, const char *method,
               remo_value msg, int timeout_ms, remo_value *out);
int actor_respond(remo_value call, remo_value result);
int actor_respond_error(remo_value call, remo_value error);

/*
 * The functions remo-node registers (builtins.c), so that any node of a
 * mesh can spawn them on any other: actors_builtins() registers them.
 *   forward (next)        sends every message on to next; on "stop",
 *                         forwards it and returns how many it forwarded
 *   collect ()            returns the list of messages before "stop"
 *   counter ()            returns how many messages came before "stop"
 *   echo ()               answers calls: method "echo" with the message,
 *                         "fail" with a ValueError; returns on "stop"
 *   sleeper ()            returns "stopped" on "stop" (Killed if killed)
 *   fail (name, message)  raises that error (REMO_LOCAL k = 41)
 *   sum (n)               returns 0 + 1 + ... + n-1
 *   relay (count)         count times: {"to": a, "msg": m} sends m to a
 *   monitor (target[, to]) returns the exit notice of target (sends
 *                         "monitoring" to to once it monitors)
 *   link (target)         the same through actor_link
 *   flaky (attempt, ok_at) fails (ValueError) while attempt < ok_at,
 *                         then returns attempt
 *   supervisor (fn, arg, max_restarts)  runs fn (attempt, arg), linked,
 *                         restarting it when it fails, up to max_restarts
 *                         times; returns (its result, restarts)
 *   ring (n, where, rounds)  builds a ring of n forward actors (every
 *                         other one on node where, unless nil), sends a
 *                         message around rounds times; returns (n,
 *                         rounds, build seconds, seconds per round)
 */
int actors_builtins(void);

#endif
