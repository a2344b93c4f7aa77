/*
 * remo-pdb -- calls a function of a remo server and, when the call
 * fails, opens a post-mortem prompt on the remote traceback, in the
 * spirit of Python's pdb.post_mortem.
 *
 *   remo-pdb ADDRESS FUNCTION [ARGS...]
 *
 * Each argument is passed as an int if it reads as one, else as a str.
 * A call that works prints its result and exits 0.  A call that fails
 * prints the error and, if it carries a traceback, the prompt
 * "(remo-pdb) " with the innermost frame current:
 *
 *   where, bt        every frame, outermost first; ">" marks the current
 *   up, down         the current frame one call outwards, inwards
 *   frame N          frame N (#0 is the innermost, as in gdb)
 *   list             the source around the current frame's line: read
 *                    here if the file exists here, else fetched from
 *                    the server (Traceback.source)
 *   print NAME, p    one local of the current frame
 *   locals           all of them
 *   info             the traceback: process, thread, signal, live,
 *                    tainted
 *   gdb              runs gdb attached to the failing thread alone (a
 *                    live traceback only), and comes back when it exits
 *   help             this list
 *   quit, q          releases the traceback (a parked thread goes on)
 *                    and exits 0; so does the end of the input
 *
 * With REMO_PDB_FETCH_SOURCE set (not empty), list always fetches the
 * source from the server, as it must where the files are not.
 *
 * Everything here is the public API: the error's traceback is a proxy
 * of the server's Traceback object, frames() gives a proxy of its list
 * of Frame objects (forced here in one go), and each frame's locals are
 * a proxy of a dict that stays in the server: print reads one item of
 * it, locals copies it.  Nothing of the server's stack is copied ahead.
 *
 * Commands are read with read(2), one byte at a time, and never through
 * stdio: when the commands come down a pipe, the lines after "gdb" must
 * still be in the pipe when gdb starts, since they are gdb's own.  When
 * stdin is not a terminal each command is echoed after the prompt, so
 * that a transcript reads as a session.
 */
#include <remo/remo.h>
#include <remo/transport.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* One frame, its fields read once when the prompt opens. */
struct frame {
	remo_value ref; /* the Frame proxy (new) */
	char *function, *file, *module, *process;
	int64_t line, offset;
	bool inlined;
};

struct pdb {
	remo_value error; /* the failure (new) */
	remo_value tb;    /* its traceback, borrowed from error */
	char *process;    /* the traceback's: "name[pid]" */
	struct frame *frames; /* innermost first, as frames() gives them */
	size_t n, cur;
	bool echo;        /* stdin is not a terminal */
};

/* ==== helpers =========================================================== */

/* Prints "*** " and the error of the last failed remo operation. */
static void print_remote_error(const char *what)
{
	remo_value e = remo_last_error();
	if (e.kind == REMO_ERROR)
		printf("*** %s: %s: %s\n", what, remo_error_name(e),
		       remo_error_message(e));
	else
		printf("*** %s failed\n", what);
}

static void print_repr(remo_value v)
{
	char *r = remo_repr(v);
	fputs(r != NULL ? r : "?", stdout);
	remo_free(r);
}

/* A copy of obj.name if it is a str, else NULL. */
static char *str_attr(remo_value obj, const char *name)
{
	remo_value v;
	if (remo_getattr(obj, name, &v) != REMO_OK)
		return NULL;
	char *s = v.kind == REMO_STR ? strdup(remo_str_data(v, NULL)) : NULL;
	remo_value_release(v);
	return s;
}

static int64_t int_attr(remo_value obj, const char *name)
{
	remo_value v;
	if (remo_getattr(obj, name, &v) != REMO_OK)
		return 0;
	int64_t x = v.kind == REMO_INT ? v.as.i : v.kind == REMO_BOOL ? v.as.b
	                                                              : 0;
	remo_value_release(v);
	return x;
}

/* The arguments: an int where one parses, else a str.  New tuple. */
static remo_value parse_args(int argc, char **argv)
{
	remo_value t = remo_tuple((size_t)argc);
	for (int i = 0; remo_ok(t) && i < argc; i++) {
		char *end;
		errno = 0;
		long long x = strtoll(argv[i], &end, 10);
		bool is_int = argv[i][0] != '\0' && *end == '\0' && errno == 0;
		remo_tuple_set(t, (size_t)i, is_int ? remo_int(x)
		                                    : remo_str(argv[i]));
	}
	return t;
}

/* Prints "fn(a, b)". */
static void print_call(const char *fn, remo_value args)
{
	printf("%s(", fn);
	for (size_t i = 0; i < remo_tuple_len(args); i++) {
		if (i > 0)
			fputs(", ", stdout);
		print_repr(remo_tuple_get(args, i));
	}
	putchar(')');
}

/*
 * One line of input, without its newline, read a byte at a time (see
 * the top of the file for why).  Returns its length, or -1 at the end of
 * the input.  A line longer than the buffer is cut.
 */
static ssize_t read_line(char *buf, size_t size)
{
	size_t len = 0;
	bool any = false;
	for (;;) {
		char c;
		ssize_t k = read(STDIN_FILENO, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		any = true;
		if (c == '\n')
			break;
		if (len + 1 < size)
			buf[len++] = c;
	}
	buf[len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return any ? (ssize_t)len : -1;
}

/* ==== the frames ======================================================== */

static void frames_free(struct pdb *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct frame *f = &p->frames[i];
		remo_value_release(f->ref);
		free(f->function);
		free(f->file);
		free(f->module);
		free(f->process);
	}
	free(p->frames);
	p->frames = NULL;
	p->n = 0;
}

/* Reads the traceback's frames: one call for the list, then each
 * frame's fields.  False (and says why) if the frames cannot be had. */
static bool frames_load(struct pdb *p)
{
	remo_value list, local;
	if (remo_call_method(p->tb, "frames", remo_nil(), &list) != REMO_OK) {
		print_remote_error("Traceback.frames()");
		return false;
	}
	int rc = remo_force(list, &local);
	remo_value_release(list);
	if (rc != REMO_OK) {
		print_remote_error("reading the frames");
		return false;
	}
	size_t n = remo_list_len(local);
	p->frames = calloc(n ? n : 1, sizeof *p->frames);
	if (p->frames == NULL) {
		remo_value_release(local);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		struct frame *f = &p->frames[i];
		f->ref = remo_value_retain(remo_list_get(local, i));
		f->function = str_attr(f->ref, "function");
		f->file = str_attr(f->ref, "file");
		f->module = str_attr(f->ref, "module");
		f->process = str_attr(f->ref, "process");
		f->line = int_attr(f->ref, "line");
		f->offset = int_attr(f->ref, "offset");
		f->inlined = int_attr(f->ref, "inlined") != 0;
	}
	p->n = n;
	remo_value_release(local);
	if (n == 0) {
		printf("*** the traceback has no frames\n");
		return false;
	}
	return true;
}

/* "#i function (file:line) [process]", with the mark for the current
 * frame in front. */
static void print_frame(const struct pdb *p, size_t i)
{
	const struct frame *f = &p->frames[i];
	printf("%s #%zu %s", i == p->cur ? ">" : " ", i,
	       f->function ? f->function : "??");
	if (f->file != NULL)
		printf(" (%s:%" PRId64 ")", f->file, f->line);
	else
		printf(" (%s+0x%" PRIx64 ")", f->module ? f->module : "?",
		       (uint64_t)f->offset);
	if (f->inlined)
		fputs(" (inlined)", stdout);
	printf(" [%s]\n", f->process ? f->process : "?");
}

/*
 * The lines line-context..line+context of frame f's file, numbered, with
 * "->" at line (the format of Traceback.source, so that both read the
 * same).  Read here when the file exists here; else fetched from the
 * server (always, with $REMO_PDB_FETCH_SOURCE).  A new string (free
 * it), or NULL after saying why.  *where says which.
 */
static char *source_text(const struct pdb *p, const struct frame *f,
                         int context, const char **where)
{
	if (f->file == NULL) {
		printf("*** frame %s has no source file (no debug information "
		       "for %s)\n", f->function ? f->function : "??",
		       f->module ? f->module : "?");
		return NULL;
	}
	const char *fetch = getenv("REMO_PDB_FETCH_SOURCE");
	FILE *fp = fetch != NULL && *fetch != '\0' ? NULL : fopen(f->file, "r");
	if (fp != NULL) {
		char *text = NULL, buf[1024];
		size_t size = 0;
		FILE *out = open_memstream(&text, &size);
		int64_t no = 0;
		while (out != NULL && fgets(buf, sizeof buf, fp) != NULL) {
			size_t len = strlen(buf);
			if (len > 0 && buf[len - 1] != '\n' && !feof(fp))
				continue; /* an overlong line: its rest follows */
			no++;
			if (no >= f->line - context && no <= f->line + context)
				fprintf(out, "%s%5" PRId64 "  %s%s",
				        no == f->line ? "->" : "  ", no, buf,
				        buf[strlen(buf) - 1] == '\n' ? "" : "\n");
		}
		fclose(fp);
		if (out != NULL)
			fclose(out);
		*where = "read here";
		return text;
	}
	remo_value args = remo_tuple_of(3, remo_str(f->file), remo_int(f->line),
	                                remo_int(context)), text;
	int rc = remo_call_method(p->tb, "source", args, &text);
	remo_value_release(args);
	if (rc != REMO_OK) {
		print_remote_error("Traceback.source()");
		return NULL;
	}
	char *s = text.kind == REMO_STR ? strdup(remo_str_data(text, NULL))
	                                : NULL;
	remo_value_release(text);
	*where = "fetched from the server";
	return s;
}

/* pdb's view of where we are: the frame, then its line. */
static void print_location(const struct pdb *p)
{
	const struct frame *f = &p->frames[p->cur];
	print_frame(p, p->cur);
	if (f->file == NULL)
		return;
	const char *where;
	char *text = source_text(p, f, 0, &where);
	if (text != NULL)
		fputs(text, stdout);
	free(text);
}

/* ==== the commands ====================================================== */

static void cmd_where(struct pdb *p)
{
	for (size_t i = p->n; i-- > 0;)
		print_frame(p, i);
}

static void cmd_move(struct pdb *p, long to)
{
	if (to < 0) {
		printf("*** Newest frame\n");
		return;
	}
	if ((size_t)to >= p->n) {
		printf("*** Oldest frame\n");
		return;
	}
	p->cur = (size_t)to;
	print_location(p);
}

static void cmd_frame(struct pdb *p, const char *arg)
{
	if (*arg == '\0') {
		print_location(p);
		return;
	}
	char *end;
	long n = strtol(arg, &end, 10);
	if (*end != '\0' || n < 0 || (size_t)n >= p->n) {
		printf("*** no frame '%s': frames are #0 (innermost) to #%zu\n",
		       arg, p->n - 1);
		return;
	}
	cmd_move(p, n);
}

static void cmd_list(struct pdb *p)
{
	const struct frame *f = &p->frames[p->cur];
	const char *where;
	char *text = source_text(p, f, 5, &where);
	if (text == NULL)
		return;
	printf("%s (%s):\n%s", f->file, where, text);
	free(text);
}

/* The current frame's locals dict: a proxy, or a local dict for frames
 * that came by value from another hop.  New, or nil after saying why. */
static remo_value frame_locals(const struct pdb *p)
{
	remo_value d;
	if (remo_getattr(p->frames[p->cur].ref, "locals", &d) != REMO_OK) {
		print_remote_error("Frame.locals");
		return remo_nil();
	}
	return d;
}

static void cmd_print(struct pdb *p, const char *name)
{
	if (*name == '\0') {
		printf("*** print what? print NAME, one of the frame's locals "
		       "(see locals)\n");
		return;
	}
	remo_value d = frame_locals(p), key = remo_str(name), v;
	if (d.kind == REMO_NIL) {
		remo_value_release(key);
		return;
	}
	int rc = remo_getitem(d, key, &v);
	if (rc == REMO_OK) {
		printf("%s = ", name);
		print_repr(v);
		putchar('\n');
		remo_value_release(v);
	} else if (remo_error_isa(remo_last_error(), "KeyError")) {
		const struct frame *f = &p->frames[p->cur];
		printf("*** NameError: '%s' is not a local of frame #%zu (%s)\n",
		       name, p->cur, f->function ? f->function : "??");
	} else {
		print_remote_error("reading the locals");
	}
	remo_value_release(key);
	remo_value_release(d);
}

static void cmd_locals(struct pdb *p)
{
	remo_value d = frame_locals(p), all;
	if (d.kind == REMO_NIL)
		return;
	if (remo_force(d, &all) != REMO_OK) {
		print_remote_error("reading the locals");
		remo_value_release(d);
		return;
	}
	size_t pos = 0;
	remo_value k, v;
	if (remo_dict_len(all) == 0)
		printf("(no locals recorded or found for this frame)\n");
	while (remo_dict_next(all, &pos, &k, &v)) {
		if (k.kind == REMO_STR)
			fputs(remo_str_data(k, NULL), stdout);
		else
			print_repr(k);
		fputs(" = ", stdout);
		print_repr(v);
		putchar('\n');
	}
	remo_value_release(all);
	remo_value_release(d);
}

static void cmd_info(struct pdb *p)
{
	char *process = str_attr(p->tb, "process");
	if (process == NULL) {
		print_remote_error("Traceback.process");
		return;
	}
	int64_t tid = int_attr(p->tb, "tid"), sig = int_attr(p->tb, "signal");
	bool live = int_attr(p->tb, "live") != 0;
	bool tainted = int_attr(p->tb, "tainted") != 0;
	printf("error: %s: %s\n", remo_error_name(p->error),
	       remo_error_message(p->error));
	printf("traceback of %s, thread %" PRId64 "%s; %zu frames\n",
	       process, tid,
	       live ? ", parked where it failed (live: gdb can attach)"
	            : " (a snapshot: the thread went on)", p->n);
	if (sig != 0)
		printf("it crashed with signal %" PRId64 " (%s)\n", sig,
		       strsignal((int)sig));
	if (tainted)
		printf("the server is tainted: it recovered from a crash, and "
		       "should be restarted\n");
	free(process);
}

/*
 * Hands the parked thread to gdb: Traceback.debugger() gives its pid and
 * tid, and "gdb -p TID" attaches to that thread alone (ptrace works per
 * thread), so the server's other threads, and the clients they serve,
 * go on.  gdb shares our terminal, or the rest of our input; we wait for
 * it with SIGINT and SIGQUIT ignored, as system() does, so that ^C
 * reaches gdb only.
 */
static void cmd_gdb(struct pdb *p)
{
	remo_value dbg;
	if (remo_call_method(p->tb, "debugger", remo_nil(), &dbg) != REMO_OK) {
		print_remote_error("Traceback.debugger()");
		return;
	}
	int64_t pid = remo_tuple_get(dbg, 0).as.i;
	int64_t tid = remo_tuple_get(dbg, 1).as.i;
	remo_value_release(dbg);
	char tidbuf[32];
	snprintf(tidbuf, sizeof tidbuf, "%" PRId64, tid);
	printf("handing thread %s of process %" PRId64 " to gdb -q -nx -p %s: "
	       "only that thread stops, the server goes on serving.  In gdb, "
	       "\"detach\" then \"quit\" come back here; detach within 30 s "
	       "(3 default leases), or the server ends this session.\n", tidbuf, pid,
	       tidbuf);
	fflush(stdout);

	/* gdb starts on our current frame; reading a script, it echoes
	 * each command, as we do */
	const struct frame *f = &p->frames[p->cur];
	char select[300];
	snprintf(select, sizeof select, "frame function %s",
	         f->function ? f->function : "??");
	char *argv[12];
	int argn = 0;
	argv[argn++] = "gdb";
	argv[argn++] = "-q";
	argv[argn++] = "-nx";
	argv[argn++] = "-p";
	argv[argn++] = tidbuf;
	if (p->echo) {
		argv[argn++] = "-ex";
		argv[argn++] = "set trace-commands on";
	}
	if (f->function != NULL && f->process != NULL && p->process != NULL &&
	    strcmp(f->process, p->process) == 0) {
		argv[argn++] = "-ex";
		argv[argn++] = select;
	}
	argv[argn] = NULL;
	struct sigaction ign = {0}, oldint, oldquit;
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, &oldint);
	sigaction(SIGQUIT, &ign, &oldquit);
	posix_spawnattr_t attr;
	sigset_t def;
	sigemptyset(&def);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGQUIT);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	pid_t child;
	int rc = posix_spawnp(&child, "gdb", NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		printf("*** cannot run gdb: %s\n", strerror(rc));
	} else {
		int status;
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status))
			printf("back in remo-pdb: gdb exited with status %d\n",
			       WEXITSTATUS(status));
		else
			printf("back in remo-pdb: gdb was killed by signal %d\n",
			       WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	sigaction(SIGINT, &oldint, NULL);
	sigaction(SIGQUIT, &oldquit, NULL);
}

static void cmd_help(void)
{
	printf("Commands (frame #0 is the innermost, where the call failed):\n"
	       "  where, bt       every frame, outermost first; > marks the "
	       "current one\n"
	       "  up, down        the current frame one call outwards, "
	       "inwards\n"
	       "  frame N         frame N; without N, where we are\n"
	       "  list, l         the source around the current line\n"
	       "  print NAME, p   a local of the current frame\n"
	       "  locals          all of them\n"
	       "  info            the error and the traceback\n"
	       "  gdb             gdb attached to the failing thread (live "
	       "tracebacks)\n"
	       "  quit, q         release the traceback and exit\n");
}

/* ==== the prompt ======================================================== */

static bool is(const char *cmd, const char *a, const char *b)
{
	return strcmp(cmd, a) == 0 || (b != NULL && strcmp(cmd, b) == 0);
}

/* Runs one command line; false for quit. */
static bool run_command(struct pdb *p, char *line)
{
	char *cmd = line + strspn(line, " \t");
	char *arg = cmd + strcspn(cmd, " \t");
	if (*arg != '\0')
		*arg++ = '\0';
	arg += strspn(arg, " \t");
	char *tail = arg + strlen(arg);
	while (tail > arg && (tail[-1] == ' ' || tail[-1] == '\t'))
		*--tail = '\0';

	if (*cmd == '\0')
		return true;
	if (is(cmd, "where", "bt") || is(cmd, "w", NULL))
		cmd_where(p);
	else if (is(cmd, "up", "u"))
		cmd_move(p, (long)p->cur + 1);
	else if (is(cmd, "down", "d"))
		cmd_move(p, (long)p->cur - 1);
	else if (is(cmd, "frame", "f"))
		cmd_frame(p, arg);
	else if (is(cmd, "list", "l"))
		cmd_list(p);
	else if (is(cmd, "print", "p"))
		cmd_print(p, arg);
	else if (is(cmd, "locals", NULL))
		cmd_locals(p);
	else if (is(cmd, "info", NULL))
		cmd_info(p);
	else if (is(cmd, "gdb", NULL))
		cmd_gdb(p);
	else if (is(cmd, "help", "h") || is(cmd, "?", NULL))
		cmd_help();
	else if (is(cmd, "quit", "q") || is(cmd, "exit", NULL))
		return false;
	else
		printf("*** unknown command '%s': help lists the commands\n",
		       cmd);
	return true;
}

static void prompt_loop(struct pdb *p)
{
	char line[1024];
	for (;;) {
		fputs("(remo-pdb) ", stdout);
		fflush(stdout);
		ssize_t len = read_line(line, sizeof line);
		if (len < 0) {
			puts(p->echo ? "(end of input: quit)" : "");
			return;
		}
		if (p->echo)
			printf("%s\n", line);
		if (!run_command(p, line))
			return;
		fflush(stdout);
	}
}

/* ==== main ============================================================== */

/* Says what failed; the frames a dying server sent by value, if any. */
static void print_failure(remo_value e)
{
	printf("%s: %s\n", remo_error_name(e), remo_error_message(e));
	remo_value attrs = remo_error_attrs(e), frames;
	if (remo_dict_get_str(attrs, "frames", &frames) == REMO_OK &&
	    frames.kind == REMO_LIST) {
		printf("the server died; its last frames, innermost first:\n");
		for (size_t i = 0; i < remo_list_len(frames); i++) {
			remo_value f = remo_list_get(frames, i);
			printf("  %s\n", f.kind == REMO_STR ? remo_str_data(f, NULL)
			                                    : "?");
		}
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: remo-pdb ADDRESS FUNCTION [ARGS...]\n"
	        "  calls FUNCTION(ARGS) on the remo server at ADDRESS (ints "
	        "where they\n  parse, else strs); if it fails, opens a "
	        "post-mortem prompt (help)\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "--help") == 0)
		return usage();
	const char *url = argv[1], *name = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);

	remo_session *s;
	int rc = remo_connect(url, 5000, NULL, NULL, &s);
	if (rc != REMO_OK) {
		fprintf(stderr, "remo-pdb: cannot connect to %s: %s\n", url,
		        remo_error_message(remo_last_error()));
		return 1;
	}
	remo_value fn, out, args = parse_args(argc - 3, argv + 3);
	if (remo_lookup(s, name, &fn) != REMO_OK) {
		fprintf(stderr, "remo-pdb: %s: %s\n", name,
		        remo_error_message(remo_last_error()));
		remo_value_release(args);
		remo_session_free(s);
		return 1;
	}
	print_call(name, args);
	rc = remo_call(fn, args, &out);
	if (rc == REMO_OK) {
		fputs(" -> ", stdout);
		print_repr(out);
		putchar('\n');
		remo_value_release(out);
	} else {
		fputs(" failed\n", stdout);
	}
	remo_value_release(fn);
	remo_value_release(args);
	if (rc == REMO_OK) {
		remo_session_free(s);
		return 0;
	}

	struct pdb p = {0};
	p.error = remo_value_retain(remo_last_error());
	print_failure(p.error);
	p.tb = remo_error_traceback(p.error);
	int status = 1;
	if (p.tb.kind != REMO_TRACEBACK) {
		printf("(no traceback came with this error)\n");
	} else if ((p.process = str_attr(p.tb, "process")) == NULL) {
		print_remote_error("Traceback.process");
	} else if (frames_load(&p)) {
		p.echo = !isatty(STDIN_FILENO);
		printf("post-mortem on the remote traceback (help lists the "
		       "commands)\n");
		print_location(&p);
		prompt_loop(&p);
		remo_value nothing;
		if (remo_call_method(p.tb, "release", remo_nil(), &nothing) ==
		    REMO_OK)
			remo_value_release(nothing);
		status = 0;
	}
	frames_free(&p);
	free(p.process);
	remo_value_release(p.error);
	remo_session_free(s);
	return status;
}
