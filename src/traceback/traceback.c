/*
 * traceback.c -- remote tracebacks: the Traceback and Frame objects that
 * a failed call's error carries back to its caller, and the three ways a
 * failure is kept (remo_session_opts.traceback, .recover):
 *
 *   snapshot  remo_raise captures the stack's program counters (trace.c,
 *             about 0.1 us) and the locals the function recorded; the
 *             error goes back with a reference to a Traceback holding
 *             them.  Frames are named only when the caller asks.
 *   live      the same, and the failing thread sends the error itself
 *             and then stays where it failed, serving its session, until
 *             the caller releases the traceback (or live_ms pass).  Its
 *             frames still exist, so their DWARF locals are read, and a
 *             debugger can attach to it (Traceback.debugger()).
 *   recovery  a crash inside a served call (SIGSEGV, SIGBUS, SIGFPE,
 *             SIGABRT) jumps back to the serving code, and the call fails
 *             with Crash and a traceback that starts at the faulting
 *             instruction.  In live mode the crashed thread parks inside
 *             the signal handler, on its alternate stack, so a debugger
 *             sees the crashing frames, while the crash service sends the
 *             error and serves the park for it.  Without recovery the
 *             caller still gets Crash with the frames by value (attrs
 *             "frames") where the crash service can send it, and then
 *             the process dies as it would have.  Nothing but a capture
 *             runs in the signal handler (trace/recover.c).
 *
 * Neighbours: trace.h below (capture, naming, locals, recovery), the
 * session above (remo__serving_*: who we serve, an early reply, parking).
 * A Traceback is an object of a registered type like any other, with the
 * kind REMO_TRACEBACK so that it fits the error's traceback slot on the
 * wire; it crosses by reference, and the session's table keeps it alive
 * while the caller holds it.
 *
 * Several processes: when a call into A fails and B, which called A,
 * fails because of it (remo_raise_value with the error A sent), B's
 * traceback gets A's as its cause.  frames() then lists A's frames (the
 * inner ones) and then B's, each saying its process; A's are fetched
 * with one call (summary()) when the frames are first asked for.
 */
#include "traceback/traceback.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== the objects ======================================================= */

struct tb {
	/* fields, read through the Traceback type: keep in step with
	 * tb_types_init */
	const char *process; /* "name[pid]" */
	int64_t pid, tid;
	int32_t signal;      /* the crash's signal, or 0 */
	bool live;           /* the failing thread was parked */
	bool names_only;     /* for a peer not trusted with more (remo.h,
	                        traceback_detail): functions and lines */
	bool tainted;        /* the process recovered from a crash */
	remo_value cause;    /* the traceback this failure came from */

	char procbuf[96];
	uintptr_t pcs[REMO__TRACE_MAX];
	int npcs;
	bool first_exact;    /* pcs[0] is the faulting pc, not a return */
	remo_value locals;   /* REMO_LOCAL's: {func: {name: value}}, or nil */
	remo_value dlocals;  /* DWARF's: one dict per pc, or nil */
	pthread_mutex_t lock;
	remo_value frames;   /* built on first use (under lock) */
	atomic_bool released;
	atomic_bool parked;
};

struct frame {
	const char *function, *file, *module, *process;
	int64_t line, column, offset;
	bool inlined;
	bool captured;       /* named here from this process's own capture;
	                        false for a cause's, which a peer supplied */
	remo_value locals;   /* dict */
};

static remo_type *tb_type, *frame_type;
static pthread_once_t types_once = PTHREAD_ONCE_INIT;
static int types_status = REMO_ENOMEM;

static void tb_free(void *p)
{
	struct tb *t = p;
	remo_value_release(t->cause);
	remo_value_release(t->locals);
	remo_value_release(t->dlocals);
	remo_value_release(t->frames);
	pthread_mutex_destroy(&t->lock);
	remo__free(t);
}

static void frame_free(void *p)
{
	struct frame *f = p;
	remo__free((char *)f->function);
	remo__free((char *)f->file);
	remo__free((char *)f->module);
	remo__free((char *)f->process);
	remo_value_release(f->locals);
	remo__free(f);
}

/* A str from a remo value, or NULL: for frames read from a summary. */
static char *tb_strdup_value(remo_value v)
{
	return v.kind == REMO_STR ? remo__strdup(remo_str_data(v, NULL)) : NULL;
}

static remo_value ref_value(remo_kind kind, const remo_type *t, void *p,
                            void (*dtor)(void *))
{
	remo_value v = remo__ref_alloc(kind);
	if (!remo_ok(v)) {
		dtor(p);
		return v;
	}
	REMO__REF(v)->type = t;
	REMO__REF(v)->ptr = p;
	REMO__REF(v)->dtor = dtor;
	return v;
}

static remo_value frame_new(const char *function, const char *file,
                            int64_t line, int64_t column, const char *module,
                            int64_t offset, bool inlined, const char *process,
                            remo_value locals, bool captured)
{
	struct frame *f = remo__malloc(sizeof *f);
	if (f == NULL) {
		remo_value_release(locals);
		return remo__invalid();
	}
	memset(f, 0, sizeof *f);
	f->function = remo__strdup(function);
	f->file = remo__strdup(file);
	f->module = remo__strdup(module);
	f->process = remo__strdup(process);
	f->line = line;
	f->column = column;
	f->offset = offset;
	f->inlined = inlined;
	f->captured = captured;
	f->locals = locals.kind == REMO_DICT ? locals : remo_dict();
	if (locals.kind != REMO_DICT)
		remo_value_release(locals);
	return ref_value(REMO_FRAME, frame_type, f, frame_free);
}

/* ==== building the frames =============================================== */

/* Copies the entries of dict src into dst (which wins: explicit locals
 * are added last and replace DWARF's of the same name). */
static void dict_merge(remo_value dst, remo_value src)
{
	size_t pos = 0;
	remo_value k, v;
	while (remo_dict_next(src, &pos, &k, &v))
		remo_dict_set(dst, remo_value_retain(k), remo_value_retain(v));
}

static bool module_is(const char *module, const char *prefix)
{
	const char *base = module ? strrchr(module, '/') : NULL;
	base = base ? base + 1 : module;
	return base != NULL && strncmp(base, prefix, strlen(prefix)) == 0;
}

static bool module_is_libffi(const char *module)
{
	return module_is(module, "libffi");
}

static bool module_is_libc(const char *module)
{
	return module_is(module, "libc.so") || module_is(module, "libc-");
}

/* The frames of the hop this traceback's cause describes: one call. */
static void append_cause_frames(remo_value list, remo_value cause)
{
	remo_value sum;
	if (remo_call_method(cause, "summary", remo_nil(), &sum) != REMO_OK) {
		const char *why = remo_error_message(remo_last_error());
		char what[256];
		snprintf(what, sizeof what, "<the frames of the failure this "
		         "one came from are unavailable: %s>", why ? why : "?");
		remo_list_append(list, frame_new(what, NULL, 0, 0, "?", 0, false,
		                                 "?", remo_nil(), false));
		return;
	}
	for (size_t i = 0; sum.kind == REMO_TUPLE && i < remo_tuple_len(sum);
	     i++) {
		remo_value e = remo_tuple_get(sum, i);
		if (e.kind != REMO_TUPLE || remo_tuple_len(e) != 9)
			continue;
		remo_value locals = remo_dict(), pairs = remo_tuple_get(e, 8);
		for (size_t k = 0; pairs.kind == REMO_TUPLE &&
		                   k + 1 < remo_tuple_len(pairs); k += 2)
			remo_dict_set(locals,
			              remo_value_retain(remo_tuple_get(pairs, k)),
			              remo_value_retain(remo_tuple_get(pairs, k + 1)));
		char *fn = tb_strdup_value(remo_tuple_get(e, 0));
		char *file = tb_strdup_value(remo_tuple_get(e, 1));
		char *mod = tb_strdup_value(remo_tuple_get(e, 4));
		char *proc = tb_strdup_value(remo_tuple_get(e, 7));
		remo_value ln = remo_tuple_get(e, 2), col = remo_tuple_get(e, 3);
		remo_value off = remo_tuple_get(e, 5), inl = remo_tuple_get(e, 6);
		remo_list_append(list, frame_new(
			fn, file, ln.kind == REMO_INT ? ln.as.i : 0,
			col.kind == REMO_INT ? col.as.i : 0, mod ? mod : "?",
			off.kind == REMO_INT ? off.as.i : 0,
			inl.kind == REMO_BOOL && inl.as.b, proc ? proc : "?",
			locals, false));
		remo__free(fn);
		remo__free(file);
		remo__free(mod);
		remo__free(proc);
	}
	remo_value_release(sum);
}

/*
 * The frames, innermost first: those of the cause (an inner hop in
 * another process), then ours, named now.  Ours stop where libffi called
 * the function that failed: below that is remo serving the request,
 * which says nothing about the failure.
 */
static int tb_build_frames(struct tb *t, remo_value *out)
{
	remo_value list = remo_list();
	if (!remo_ok(list))
		return REMO_ENOMEM;
	if (t->cause.kind != REMO_NIL)
		append_cause_frames(list, t->cause);

	struct remo__frame_info *fi;
	size_t n;
	if (remo__trace_name(t->pcs, t->npcs, t->first_exact, &fi, &n) !=
	    REMO_OK) {
		remo_value_release(list);
		return REMO_ENOMEM;
	}
	size_t pc = 0; /* the capture's index: entries of one pc share it */
	size_t first = 0;
	/* abort() and raise() say nothing: start at their caller */
	while (t->signal == SIGABRT && first + 1 < n &&
	       module_is_libc(fi[first].module)) {
		if (!fi[first].inlined)
			pc++;
		first++;
	}
	for (size_t i = first; i < n; i++) {
		if (i > first && module_is_libffi(fi[i].module))
			break;
		remo_value locals = remo_dict();
		if (t->dlocals.kind == REMO_LIST &&
		    pc < remo_list_len(t->dlocals) && !fi[i].inlined)
			dict_merge(locals, remo_list_get(t->dlocals, pc));
		remo_value mine;
		if (fi[i].function != NULL && t->locals.kind == REMO_DICT &&
		    remo_dict_get_str(t->locals, fi[i].function, &mine) ==
		    REMO_OK && mine.kind == REMO_DICT)
			dict_merge(locals, mine);
		if (t->names_only) { /* no paths, modules, offsets, locals */
			remo_value_release(locals);
			remo_list_append(list, frame_new(
				fi[i].function, NULL, fi[i].line, 0, "?", 0,
				fi[i].inlined, "?", remo_dict(), true));
		} else {
			remo_list_append(list, frame_new(
				fi[i].function, fi[i].file, fi[i].line,
				fi[i].column, fi[i].module, (int64_t)fi[i].offset,
				fi[i].inlined, t->process, locals, true));
		}
		if (!fi[i].inlined)
			pc++;
	}
	remo__frame_info_free(fi, n);
	*out = list;
	return REMO_OK;
}

/* ==== the Traceback's methods =========================================== */

static remo_value tb_frames(struct tb *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->frames.kind == REMO_NIL) {
		remo_value l;
		int rc = tb_build_frames(t, &l);
		if (rc != REMO_OK) {
			pthread_mutex_unlock(&t->lock);
			remo__fail(rc, "naming the frames");
			remo__raised_by_program();
			return remo_nil();
		}
		t->frames = l;
	}
	remo_value v = remo_value_retain(t->frames);
	pthread_mutex_unlock(&t->lock);
	return v;
}

/* The frames by value, for the traceback of a later hop:
 * ((function, file, line, column, module, offset, inlined, process,
 *   (name, value, name, value...)), ...). */
static remo_value tb_summary(struct tb *t)
{
	remo_value frames = tb_frames(t);
	if (frames.kind != REMO_LIST)
		return remo_nil();
	size_t n = remo_list_len(frames);
	remo_value out = remo_tuple(n);
	for (size_t i = 0; remo_ok(out) && i < n; i++) {
		const struct frame *f = REMO__REF(remo_list_get(frames, i))->ptr;
		remo_value pairs = remo_tuple(2 * remo_dict_len(f->locals));
		size_t pos = 0, k = 0;
		remo_value key, val;
		while (remo_ok(pairs) &&
		       remo_dict_next(f->locals, &pos, &key, &val)) {
			remo_tuple_set(pairs, k++, remo_value_retain(key));
			remo_tuple_set(pairs, k++, remo_value_retain(val));
		}
#define S(x) ((x) ? remo_str(x) : remo_nil())
		remo_tuple_set(out, i, remo_tuple_of(
			9, S(f->function), S(f->file), remo_int(f->line),
			remo_int(f->column), S(f->module), remo_int(f->offset),
			remo_bool(f->inlined), S(f->process), pairs));
#undef S
	}
	remo_value_release(frames);
	return out;
}

static void tb_release(struct tb *t)
{
	atomic_store(&t->released, true);
}

/*
 * Source lines around line of file, numbered, with "->" at line: for a
 * debugger on a machine without the sources.  Only files that this
 * traceback's own frames name can be read, the frames this process
 * captured and named itself: a caller must not be able to read any file
 * of the server.  A cause's frames never count, whatever process they
 * claim: they come from the cause's summary(), and a peer can make a
 * cause of its own (a callback failing with an error whose traceback is
 * the peer's object) that names any file as a frame of this process.
 * The source of a cause's frame is the cause's own source() to give.
 */
static remo_value tb_source(struct tb *t, const char *file, int line,
                            int context)
{
	remo_value frames = tb_frames(t);
	bool allowed = false;
	for (size_t i = 0; frames.kind == REMO_LIST &&
	                   i < remo_list_len(frames) && !allowed; i++) {
		const struct frame *f = REMO__REF(remo_list_get(frames, i))->ptr;
		/* a frame this process captured (not a cause's) names it */
		allowed = f->captured && f->file != NULL &&
		          strcmp(f->file, file) == 0;
	}
	remo_value_release(frames);
	if (!allowed) {
		/* remo__raisef, not remo_raise: an error of the traceback's
		 * own methods has no traceback (in live mode it would park
		 * the thread again, one level deeper) */
		remo__raisef("PermissionError", "'%s' is not a file of this "
		             "traceback's frames", file);
		remo__raised_by_program();
		return remo_nil();
	}
	FILE *fp = fopen(file, "r");
	if (fp == NULL) {
		remo__raisef("FileNotFoundError", "%s: %s", file,
		             strerror(errno));
		remo__raised_by_program();
		return remo_nil();
	}
	if (context < 0)
		context = 0;
	if (context > 100)
		context = 100;
	char text[16384], buf[1024];
	size_t used = 0;
	int no = 0;
	text[0] = '\0';
	while (fgets(buf, sizeof buf, fp) != NULL) {
		size_t len = strlen(buf);
		if (len > 0 && buf[len - 1] != '\n' && !feof(fp))
			continue; /* an overlong line: its rest follows */
		no++;
		if (no < line - context || no > line + context)
			continue;
		int k = snprintf(text + used, sizeof text - used, "%s%5d  %s",
		                 no == line ? "->" : "  ", no, buf);
		if (k < 0 || (size_t)k >= sizeof text - used)
			break;
		used += (size_t)k;
	}
	fclose(fp);
	return remo_str(text);
}

static remo_value tb_debugger(struct tb *t)
{
	if (!atomic_load(&t->parked)) {
		remo__raisef("ValueError", "the failing thread is not parked: "
		             "only a live traceback can be debugged (see "
		             "remo_session_opts.traceback)");
		remo__raised_by_program();
		return remo_nil();
	}
	return remo_tuple_of(2, remo_int(t->pid), remo_int(t->tid));
}

static void tb_types_init(void)
{
	int st;
	tb_type = remo_type_new("Traceback", NULL,
	                        "the stack of a failed call, frame by frame",
	                        &st);
	frame_type = remo_type_new("Frame", NULL, "one frame of a traceback",
	                           &st);
	if (tb_type == NULL || frame_type == NULL) {
		types_status = st;
		return;
	}
	int rc = REMO_OK;
#define F(t, s, name, code) \
	if (rc == REMO_OK) \
		rc = remo_type_field(t, #name, code, offsetof(s, name), \
		                     REMO_READONLY)
	F(tb_type, struct tb, process, "s");
	F(tb_type, struct tb, pid, "q");
	F(tb_type, struct tb, tid, "q");
	F(tb_type, struct tb, signal, "i");
	F(tb_type, struct tb, live, "?");
	F(tb_type, struct tb, tainted, "?");
	F(tb_type, struct tb, cause, "r");
	F(frame_type, struct frame, function, "s");
	F(frame_type, struct frame, file, "s");
	F(frame_type, struct frame, line, "q");
	F(frame_type, struct frame, column, "q");
	F(frame_type, struct frame, module, "s");
	F(frame_type, struct frame, offset, "q");
	F(frame_type, struct frame, inlined, "?");
	F(frame_type, struct frame, process, "s");
	F(frame_type, struct frame, locals, "r");
#undef F
#define M(name, sig, fn, doc) \
	if (rc == REMO_OK) \
		rc = remo_type_method(tb_type, name, sig, (void (*)(void))fn, doc)
	M("frames", "r()", tb_frames, "the frames, innermost first");
	M("summary", "r()", tb_summary, "the frames by value");
	M("release", "v()", tb_release, "lets a parked thread go on");
	M("source", "r(file:s line:i context:i)", tb_source,
	  "numbered source lines around line");
	M("debugger", "r()", tb_debugger,
	  "(pid, tid) of the parked thread, for gdb -p");
#undef M
	types_status = rc;
}

/* ==== making tracebacks ================================================= */

static struct tb *tb_new(void)
{
	if (pthread_once(&types_once, tb_types_init) != 0 ||
	    types_status != REMO_OK)
		return NULL;
	struct tb *t = remo__malloc(sizeof *t);
	if (t == NULL)
		return NULL;
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->lock, NULL);
	t->pid = getpid();
	t->tid = gettid();
	snprintf(t->procbuf, sizeof t->procbuf, "%s[%lld]",
	         program_invocation_short_name, (long long)t->pid);
	t->process = t->procbuf;
	t->tainted = remo_tainted();
	return t;
}

/* A traceback for a peer not trusted with more than names: no process,
 * thread or locals, never live (tb_build_frames leaves out the rest). */
static void tb_names_only(struct tb *t)
{
	t->names_only = true;
	t->pid = t->tid = 0;
	t->process = "?";
	remo_value_release(t->locals);
	t->locals = remo_nil();
}

/* err (stolen) again with traceback tb (stolen). */
static remo_value error_with_tb(remo_value err, remo_value tb)
{
	struct remo__error *e = REMO__ERROR(err);
	remo_value out = remo__error_from_parts(
		remo_value_retain(e->name), remo_value_retain(e->message),
		remo_value_retain(e->attrs), tb);
	if (!remo_ok(out))
		return err; /* without the traceback, but not lost */
	if (remo_tainted())
		remo_dict_set_str(remo_error_attrs(out), "tainted",
		                  remo_bool(true));
	remo_value_release(err);
	return out;
}

static bool tb_done(void *arg)
{
	remo_value *tbv = arg;
	const struct tb *t = REMO__REF(*tbv)->ptr;
	/* released, or nobody but the error this thread holds has it: the
	 * caller dropped its proxy (or the reply never went) */
	return atomic_load(&t->released) ||
	       atomic_load(&REMO__REF(*tbv)->hdr.refs) <= 1;
}

/* Whether a failure served now is kept live: the session asks for it,
 * and a park is free (remo__serving_park_begin: not inside a park, and
 * under the session's bound).  True reserves the park: tb_park uses it. */
static bool tb_may_park(remo_session *s)
{
	return remo__session_opts(s)->traceback == REMO_TB_LIVE &&
	       remo__serving_park_begin();
}

/* Live mode: send the error now, then serve until the caller is done
 * with the traceback.  Uses the reservation tb_may_park made. */
static void tb_park(remo_session *s, remo_value err, remo_value tbv)
{
	struct tb *t = REMO__REF(tbv)->ptr;
	if (remo__serving_reply_error(err, false) != REMO_OK) {
		remo__serving_park_cancel();
		return;
	}
	atomic_store(&t->parked, true);
	remo__serving_park(tb_done, &tbv,
	                   remo__now_ms() + remo__session_opts(s)->live_ms);
	atomic_store(&t->parked, false);
}

/* The traceback value for t, with the error's old one (if any) as its
 * cause. */
static remo_value tb_value(struct tb *t, remo_value err)
{
	remo_value old = REMO__ERROR(err)->tb;
	t->cause = remo_value_retain(old);
	return ref_value(REMO_TRACEBACK, tb_type, t, tb_free);
}

/*
 * err with t as its traceback (the old one its cause); t is the error's
 * or freed.  A live t reserved a park (tb_may_park): it is used now, or
 * given back if the error could not take t (out of memory).
 */
static remo_value tb_attach_and_park(remo_session *s, remo_value err,
                                     struct tb *t)
{
	bool live = t->live;
	remo_value tbv = tb_value(t, err); /* frees t on failure */
	remo_value out = remo_ok(tbv) ? error_with_tb(err, tbv) : err;
	bool attached = out.as.p != err.as.p; /* else tbv was released */
	if (live && attached)
		tb_park(s, out, REMO__ERROR(out)->tb);
	else if (live)
		remo__serving_park_cancel();
	return out;
}

/* remo_trace_thread's setting for this thread. */
static _Thread_local bool tb_thread_on;

bool remo_trace_thread(bool on)
{
	bool was = tb_thread_on;
	tb_thread_on = on;
	return was;
}

static remo_value tb_attach(remo_value err, int skip)
{
	/* in a served call, by the session's policy; outside one, only on
	 * a thread that asked (remo_trace_thread): full detail, never live */
	remo_session *s = remo__serving();
	if (err.kind != REMO_ERROR || (s == NULL && !tb_thread_on) ||
	    (s != NULL && remo__session_opts(s)->traceback == REMO_TB_NONE))
		return err;
	struct tb *t = tb_new();
	if (t == NULL)
		return err;
	/* +1: this function's own frame */
	t->npcs = remo__trace_capture(t->pcs, REMO__TRACE_MAX, skip + 1);
	t->locals = remo__locals_take(remo__serving_locals_mark()); /* 0: all */
	bool full = s == NULL || remo__session_tb_full(s);
	if (!full)
		tb_names_only(t);
	t->live = s != NULL && full && tb_may_park(s);
	if (t->live && remo__trace_dwarf_locals(NULL, skip + 1, &t->dlocals) !=
	    REMO_OK)
		t->dlocals = remo_nil();
	return tb_attach_and_park(s, err, t);
}

static const char *sig_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGABRT: return "SIGABRT";
	default: return "signal";
	}
}

static remo_value crash_error_new(const struct remo__recover *r)
{
	char msg[160];
	snprintf(msg, sizeof msg, "%s (%s) at address %p", sig_name(r->sig),
	         strsignal(r->sig), r->addr);
	remo_value e = remo_error("Crash", msg);
	if (remo_ok(e)) {
		remo_value a = remo_error_attrs(e);
		remo_dict_set_str(a, "signal", remo_str(sig_name(r->sig)));
		remo_dict_set_str(a, "address",
		                  remo_int((int64_t)(intptr_t)r->addr));
	}
	return e;
}

/*
 * The Crash error of r with its traceback; live, and parked in, only if
 * park and a park is free (tb_attach_and_park).  The crashed thread is
 * tid, and lt its REMO_LOCAL list: the crash service builds the error of
 * a thread that waits in its handler.  r's DWARF locals move in.
 */
static remo_value crash_with_tb(struct remo__recover *r,
                                struct remo__locals *lt, int tid, bool park)
{
	remo_value e = crash_error_new(r);
	remo_session *s = remo__serving();
	struct tb *t = s && remo__session_opts(s)->traceback != REMO_TB_NONE
	               ? tb_new() : NULL;
	if (t == NULL || !remo_ok(e)) {
		if (t != NULL)
			tb_free(t);
		return e;
	}
	memcpy(t->pcs, r->pcs, sizeof t->pcs);
	t->npcs = r->npcs;
	t->first_exact = true;
	t->signal = r->sig;
	t->tid = tid; /* for debugger(): the crashed thread, not this one */
	bool full = remo__session_tb_full(s);
	t->live = full && park && tb_may_park(s);
	t->locals = remo__locals_take_of(lt, remo__serving_locals_mark());
	t->dlocals = r->dlocals;
	r->dlocals = remo_nil();
	if (!full) {
		tb_names_only(t);
		remo_value_release(t->dlocals);
		t->dlocals = remo_nil();
	}
	return tb_attach_and_park(s, e, t);
}

/* After the jump, on the crashed thread: the error a live park sent
 * already (r->report), or a snapshot's made now. */
static int tb_crashed(struct remo__recover *r)
{
	remo_value e = r->report;
	r->report = remo_nil();
	if (e.kind == REMO_NIL)
		e = crash_with_tb(r, remo__locals_self(), (int)gettid(), false);
	remo_value_release(r->dlocals);
	r->dlocals = remo_nil();
	return remo__raise(e);
}

/* ==== the crash hook ===================================================== */

/*
 * A crash is handled in two halves (trace.h, struct remo__crash_hook):
 * the signal handler only captures, with tb_crash_capture, what the
 * crashed thread serves; the crash service then does the rest with
 * tb_crash_serve, acting for that request (remo__serving_act_for) while
 * the crashed thread waits in its handler, on its alternate stack, with
 * its frames intact beneath for a debugger.
 */
enum { CTX_SERVING, CTX_PARKED, CTX_LOCALS }; /* struct remo__crash.ctx */

/* Time beyond live_ms that a live crash's thread waits for the service:
 * building and sending the error, and the park's last slice. */
#define TB_CRASH_MARGIN_MS 5000

static struct remo__serving_ref tb_crash_ref(const struct remo__crash *c)
{
	return (struct remo__serving_ref){
		.ctx = c->ctx[CTX_SERVING],
		.parked = c->ctx[CTX_PARKED] != NULL,
	};
}

/* In the signal handler: async-signal-safe only.  Recovering in
 * snapshot mode all is done after the jump, on the thread itself. */
static bool tb_crash_capture(struct remo__crash *c)
{
	struct remo__serving_ref ref = remo__serving_ref();
	remo_session *s = remo__serving();
	if (s == NULL)
		return false;
	const remo_session_opts *o = remo__session_opts(s);
	if (c->recovering) {
		if (o->traceback != REMO_TB_LIVE)
			return false;
		c->wait_ms = o->live_ms < INT_MAX - TB_CRASH_MARGIN_MS
		             ? o->live_ms + TB_CRASH_MARGIN_MS : INT_MAX;
	}
	c->ctx[CTX_SERVING] = ref.ctx;
	c->ctx[CTX_PARKED] = ref.parked ? (void *)1 : NULL;
	c->ctx[CTX_LOCALS] = remo__locals_self();
	return true;
}

/* A live crash, on a thread of its own: the Crash error, sent now, and
 * the park, serving the session for the crashed thread, until the
 * caller lets go; then the crashed thread jumps back. */
static void *tb_crash_park(void *arg)
{
	struct remo__crash *c = arg;
	struct remo__serving_ref saved = remo__serving_act_for(tb_crash_ref(c));
	c->r->report = crash_with_tb(c->r, c->ctx[CTX_LOCALS], c->tid, true);
	remo__serving_act_end(saved);
	remo__crash_done(c);
	return NULL;
}

/* No recovery: the process dies next.  Tell the caller what happened,
 * by value (frames as text: a reference would point into a process
 * about to die), and only if the send lock is free: the crash may hold
 * it. */
static void tb_crash_report(struct remo__crash *c)
{
	struct remo__serving_ref saved = remo__serving_act_for(tb_crash_ref(c));
	struct remo__recover *r = c->r;
	remo_value e = crash_error_new(r);
	struct remo__frame_info *fi;
	size_t n;
	/* naming takes libdw's lock: not if the crashed thread holds it */
	if (remo_ok(e) && !c->in_naming &&
	    remo__trace_name(r->pcs, r->npcs, true, &fi, &n) == REMO_OK) {
		size_t k = 0;
		while (k < n && !module_is_libffi(fi[k].module))
			k++;
		remo_value frames = remo_tuple(k);
		for (size_t i = 0; i < k && remo_ok(frames); i++) {
			char line[512];
			snprintf(line, sizeof line, "%s (%s:%d) in %s",
			         fi[i].function ? fi[i].function : "??",
			         fi[i].file ? fi[i].file : "?", fi[i].line,
			         fi[i].module);
			remo_tuple_set(frames, i, remo_str(line));
		}
		remo__frame_info_free(fi, n);
		remo_dict_set_str(remo_error_attrs(e), "frames", frames);
	}
	if (remo_ok(e))
		remo_dict_set_str(remo_error_attrs(e), "fatal", remo_bool(true));
	remo__serving_reply_error(e, true);
	remo_value_release(e);
	remo__serving_act_end(saved);
}

/* On the crash service thread, in normal context. */
static void tb_crash_serve(struct remo__crash *c)
{
	if (!c->recovering) {
		tb_crash_report(c);
		remo__crash_done(c);
		return;
	}
	/* The park serves the session for up to live_ms: on a thread of its
	 * own, so that the service is free for the next crash (one in a
	 * call that this park serves, say).  Without one, no park: the
	 * crashed thread makes a snapshot after its jump. */
	pthread_t th;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &a, tb_crash_park, c) != 0)
		remo__crash_done(c);
	pthread_attr_destroy(&a);
}

static const struct remo__crash_hook tb_crash_hook = {
	.capture = tb_crash_capture,
	.serve = tb_crash_serve,
};

static int tb_init_handlers(void)
{
	/* every time, not once: in a child of fork, it starts the child's
	 * crash service (remo__recover_init) */
	int rc = remo__recover_init();
	if (rc == REMO_OK)
		remo__set_crash_hook(&tb_crash_hook);
	return rc;
}

/* The hooks of the layers below: remo_raise attaches a traceback
 * (value/raise.c), and a session with tracebacks installs the crash
 * handlers and reports a recovered crash (session/). */
__attribute__((constructor)) static void tb_install_hooks(void)
{
	remo__raise_hook = tb_attach;
	remo__session_hooks.crashed = tb_crashed;
	remo__session_hooks.init_handlers = tb_init_handlers;
}
