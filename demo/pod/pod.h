/*
 * pod.h -- the client of remo-pod: a persistent ordered dict shared by
 * many processes, and a progress tracker on it (tastypy's SharedPOD and
 * SharedProgressTracker).  README.md beside it has the whole story.
 *
 * The pod is a remo dict served by remo-pod: pod_dict gives its proxy,
 * on which remo's operations work as on any remote dict (remo_getitem,
 * remo_setitem, remo_delitem, remo_len, remo_contains, remo_force, the
 * container methods).  A list or dict read out of it is a proxy too, so
 * a change made through it, at any depth, changes the pod and is saved:
 * no .set, no explicit mark.  Values put in travel by value (pod_set
 * does it): a client's own list stored by reference could not be saved.
 */
#ifndef REMO_POD_H
#define REMO_POD_H

#include <remo/remo.h>

typedef struct pod pod;

/* pod_connect: a session with the pod at url; NULL (status in *rc, the
 * reason in remo_last_error) on failure.  opts may be NULL. */
pod *pod_connect(const char *url, const remo_session_opts *opts, int *rc);
void pod_close(pod *p);

/* pod_dict: the pod itself (borrowed from p). */
remo_value pod_dict(pod *p);
/* pod_set: pod[key] = v (both borrowed), v's lists and dicts by value. */
int pod_set(pod *p, remo_value key, remo_value v);
/* pod_get: pod[key] into *out (new): a list or dict as a proxy, through
 * which changes persist; REMO_ENOTFOUND (KeyError) if absent. */
int pod_get(pod *p, remo_value key, remo_value *out);
/*
 * pod_call: calls the server's function fn with args (borrowed; nil for
 * none) into *out (new; NULL to drop it): "sync", "sync_key", "mark_dirty",
 * "dirty", "hold", "unhold", "revert", and the tracker's "add",
 * "add_if_absent", "add_many", "add_many_if_absent", "mark_done",
 * "mark_not_done", "abort", "unabort", "increment_tries",
 * "decrement_tries", "reset_tries", "tries", "done", "should_do",
 * "should_try", "num_done", "num_tried", "num_aborted", "fraction_done",
 * "todo_keys".
 */
int pod_call(pod *p, const char *fn, remo_value args, remo_value *out);
/* pod_call1: the same with one argument (borrowed). */
int pod_call1(pod *p, const char *fn, remo_value arg, remo_value *out);
/*
 * pod_try_key: the tracker's next key to try (not done, not aborted,
 * tried fewer than max_tries times, not held by another worker), with its
 * try counted: *key and *task (both new).  The key is this worker's
 * until it releases *task (after mark_done, or giving up) or its session
 * ends: a worker that dies gives its key back to the others.
 * REMO_ENOTFOUND when there is none.
 */
int pod_try_key(pod *p, remo_value *key, remo_value *task);

#endif
