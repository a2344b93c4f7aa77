/*
 * procs.h -- a server program started for a test: argv run with its
 * stdout a pipe and its stderr the file err; the "READY <url>" line it
 * prints when listening is read back.  test_tuplespace and test_pod use
 * it (their servers, remo-tuplespace and remo-pod, print that line).
 */
#ifndef REMO_TESTS_PROCS_H
#define REMO_TESTS_PROCS_H

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * proc_start: runs argv; returns its pid with the url it printed in url
 * (cap bytes), or -1 (it exited, or said nothing in 10 s) with what it
 * wrote to err in url instead.
 */
static inline pid_t proc_start(char *const argv[], const char *err, char *url,
                        size_t cap)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	char line[1024] = {0};
	size_t got = 0;
	struct pollfd pf = {p[0], POLLIN, 0};
	while (strchr(line, '\n') == NULL && poll(&pf, 1, 10000) > 0) {
		ssize_t r = read(p[0], line + got, sizeof line - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	if (strncmp(line, "READY ", 6) != 0) {
		int st;
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		FILE *fp = fopen(err, "r");
		size_t n = fp ? fread(url, 1, cap - 1, fp) : 0;
		url[n] = '\0';
		if (fp)
			fclose(fp);
		return -1;
	}
	line[strcspn(line, "\n")] = '\0';
	size_t n = strlen(line + 6);
	if (n >= cap)
		n = cap - 1;
	memcpy(url, line + 6, n);
	url[n] = '\0';
	return pid;
}

/* proc_stop: sends sig and waits; the exit status. */
static inline int proc_stop(pid_t pid, int sig)
{
	int st = 0;
	kill(pid, sig);
	waitpid(pid, &st, 0);
	return st;
}

/* proc_show_err: a process that did not stop cleanly (status st, from
 * proc_stop) has what it wrote to err shown on our stderr, before the
 * scratch directory goes (a sanitizer's report, most often). */
static inline void proc_show_err(const char *who, int st, const char *err)
{
	char line[512];
	FILE *e = fopen(err, "r");
	fprintf(stderr, "%s: status 0x%x; its stderr:\n", who, (unsigned)st);
	while (e != NULL && fgets(line, sizeof line, e) != NULL)
		fprintf(stderr, "  %s", line);
	if (e != NULL)
		fclose(e);
}

/* proc_self: this program's path, for running it again in a mode. */
static inline const char *proc_self(void)
{
	static char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	self[len > 0 ? len : 0] = '\0';
	return self;
}

/*
 * proc_build_path: rel (e.g. "demo/pod/remo-pod") in the build tree
 * this program runs from (a test or benchmark, one folder down), into
 * out; and, unless REMO_TRANSPORT_PATH is set, that tree's stream and
 * exec modules as the transports, as make check and make bench set.
 */
static inline void proc_build_path(const char *rel, char *out, size_t cap)
{
	char top[4096];
	snprintf(top, sizeof top, "%s", proc_self());
	char *slash = strrchr(top, '/');
	if (slash != NULL)
		*slash = '\0';
	snprintf(out, cap, "%s/../%s", top, rel);
	if (getenv("REMO_TRANSPORT_PATH") == NULL) {
		char tp[3 * sizeof top];
		snprintf(tp, sizeof tp, "%s/../transport/stream/.libs:"
		         "%s/../transport/exec/.libs", top, top);
		setenv("REMO_TRANSPORT_PATH", tp, 1);
	}
}

/* proc_rmdir: removes a scratch directory a test or benchmark made
 * (with what its servers left in it); says so if it could not. */
static inline void proc_rmdir(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
