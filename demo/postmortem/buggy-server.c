/*
 * buggy-server -- a server with two bugs, for remo-pdb to debug from
 * the client's side.
 *
 *   buggy-server [URL]       (default unix:///tmp/remo-postmortem.sock)
 *
 * It prints the address it is bound to as the one line of its stdout
 * (scripts read it; the rest of its log goes to stderr), then serves
 * until SIGINT or SIGTERM:
 *
 *   parse_config(path)      reads a file of key=value lines; a line
 *                           without '=' raises ValueError, a missing
 *                           file ENOENT
 *   total(name, quantity)   the price of quantity items of name; an
 *                           unknown name dereferences NULL (SIGSEGV)
 *   ping()                  "pong": the healthy function, to show the
 *                           server answering other clients while one
 *                           failed call is being debugged
 *
 * Every session is served with live tracebacks and crash recovery
 * (remo_session_opts.traceback = REMO_TB_LIVE, .recover): a failing
 * thread stays parked where it failed, still serving its session, until
 * the client releases its traceback or two minutes pass, so the client
 * can read its frames and locals and hand it to gdb.  The other sessions
 * each have a thread of their own and go on being served.  A crash
 * marks the process tainted (remo_tainted): it says so on exit.
 *
 * The functions record their interesting locals with REMO_LOCAL, which
 * works at any optimisation level; DWARF adds the others while the
 * thread is parked, where -O2 kept them.  The helpers are noinline only
 * so that the stack shows the chain of calls as it is written here.
 *
 * tests/test_postmortem.sh finds the lines that fail by the comments
 * "postmortem: ..." on them (or just above): keep them where they are.
 */
#include <remo/remo.h>
#include <remo/trace.h>
#include <remo/transport.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_URL "unix:///tmp/remo-postmortem.sock"
#define NOINLINE __attribute__((noinline))

/* ==== bug 1: a function that raises ===================================== */

/* One "key = value" line: ValueError if there is no '='.  Returns false
 * after raising. */
NOINLINE static bool parse_line(const char *text, int lineno)
{
	const char *eq = strchr(text, '=');
	REMO_LOCAL(text);
	REMO_LOCAL(lineno);
	if (eq == NULL) {
		/* postmortem: the raise is on the next line */
		remo_raise("ValueError", "line %d: no '=' in '%s'", lineno, text);
		return false;
	}
	return true;
}

/* Counts the settings of the file at path. */
static int parse_config(const char *path)
{
	int lineno = 0, settings = 0;
	char buf[256];
	REMO_LOCAL(path);
	FILE *fp = fopen(path, "r");
	if (fp == NULL) {
		remo_raise_errno(errno, "parse_config %s", path);
		return -1;
	}
	while (fgets(buf, sizeof buf, fp) != NULL) {
		const char *line = buf;
		buf[strcspn(buf, "\n")] = '\0';
		lineno++;
		REMO_LOCAL(lineno);
		REMO_LOCAL(line);
		REMO_LOCAL(settings);
		if (buf[0] == '\0' || buf[0] == '#')
			continue;
		if (!parse_line(line, lineno))
			break;
		settings++;
	}
	fclose(fp);
	return settings;
}

/* ==== bug 2: a NULL dereference, two calls below the entry point ======== */

struct item {
	const char *name;
	int64_t price_cents;
	int64_t stock;
};

static const struct item inventory[] = {
	{"apple", 40, 120},
	{"pear", 55, 80},
	{"plum", 25, 300},
};

/* The item called name, or NULL: which nobody below checks. */
NOINLINE static const struct item *find_item(const char *name)
{
	size_t searched = 0;
	REMO_LOCAL(name);
	for (size_t i = 0; i < sizeof inventory / sizeof inventory[0]; i++) {
		searched++;
		if (strcmp(inventory[i].name, name) == 0)
			return &inventory[i];
	}
	REMO_LOCAL(searched);
	return NULL;
}

NOINLINE static int64_t line_price(const struct item *it, int64_t quantity)
{
	REMO_LOCAL(it);
	REMO_LOCAL(quantity);
	int64_t cents = it->price_cents * quantity; /* postmortem: NULL */
	REMO_LOCAL(cents);
	return cents;
}

static int64_t total(const char *name, int64_t quantity)
{
	const struct item *it = find_item(name);
	int64_t shipping = quantity >= 100 ? 0 : 499;
	REMO_LOCAL(name);
	REMO_LOCAL(quantity);
	REMO_LOCAL(shipping);
	return line_price(it, quantity) + shipping;
}

/* ==== the healthy one =================================================== */

static const char *ping(void)
{
	return "pong";
}

/* ==== serving =========================================================== */

static remo_server *server;

static void on_signal(int sig)
{
	(void)sig;
	remo_server_stop(server); /* async-signal-safe */
}

static int fail(const char *what, int rc)
{
	remo_value e = remo_last_error();
	fprintf(stderr, "buggy-server: %s: %s%s%s\n", what, remo_strerror(rc),
	        e.kind == REMO_ERROR ? ": " : "",
	        e.kind == REMO_ERROR ? remo_error_message(e) : "");
	return EXIT_FAILURE;
}

static int export_fn(remo_exports *ex, const char *name, const char *sig,
                     void (*fn)(void), const char *doc)
{
	remo_value f = remo_function(name, sig, fn, doc);
	int rc = remo_export(ex, name, f); /* REMO_ENOMEM for REMO_INVALID */
	remo_value_release(f);
	return rc;
}

int main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : DEFAULT_URL;
	int rc;

	remo_exports *ex = remo_exports_new();
	if (ex == NULL)
		return fail("remo_exports_new", REMO_ENOMEM);
#define CHECK(call)                                                         \
	if ((rc = (call)) != REMO_OK)                                       \
		return fail(#call, rc)
	CHECK(export_fn(ex, "parse_config", "i(path:s)",
	                (void (*)(void))parse_config,
	                "counts the key = value lines of a file"));
	CHECK(export_fn(ex, "total", "q(name:s quantity:q)",
	                (void (*)(void))total,
	                "the price of quantity items, in cents"));
	CHECK(export_fn(ex, "ping", "s()", (void (*)(void))ping, "\"pong\""));

	remo_server_opts opts = {
		.session = {
			.traceback = REMO_TB_LIVE, /* park the failing thread */
			.live_ms = 120000,         /* for two minutes at most */
			.recover = true,           /* a SIGSEGV fails the call */
		},
	};
	server = remo_server_new(ex, &opts, &rc);
	if (server == NULL)
		return fail("remo_server_new", rc);
	char bound[256];
	CHECK(remo_server_listen(server, url, bound, sizeof bound));

	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("%s\n", bound);
	fflush(stdout);
	fprintf(stderr, "buggy-server[%d]: serving parse_config(path), "
	        "total(name, quantity), ping() on %s\n", (int)getpid(), bound);
	remo_server_run(server);
	fprintf(stderr, "buggy-server[%d]: stopped%s\n", (int)getpid(),
	        remo_tainted() ? " (tainted: it recovered from a crash)" : "");
	remo_server_free(server);
	remo_exports_free(ex);
	return EXIT_SUCCESS;
}
