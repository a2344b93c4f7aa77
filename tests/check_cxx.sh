#!/bin/sh
# check_cxx.sh -- the public headers compile in C++ (a C++ program can
# use libremo), REMO_LOCAL included, with warnings as errors; skipped
# (77) without a C++ compiler.
set -u
cxx=${CXX:-g++}
command -v "$cxx" >/dev/null 2>&1 || { echo "check_cxx: no $cxx: skipped"; exit 77; }
src="${top_srcdir:-.}"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/t.cc" <<'CC'
#include <remo/remo.h>
#include <remo/trace.h>
#include <remo/transport.h>

int f(int i, const char *s, double d, remo_value v, void *p)
{
	bool b = i > 0;
	unsigned long long u = 7;
	char buf[4] = "abc";
	REMO_LOCAL(i);
	REMO_LOCAL(s);
	REMO_LOCAL(d);
	REMO_LOCAL(v);
	REMO_LOCAL(p);
	REMO_LOCAL(b);
	REMO_LOCAL(u);
	REMO_LOCAL(buf);
	REMO_LOCAL(i + 1);
	remo_raise("ValueError", "%d", i);
	return 0;
}
CC
if "$cxx" -std=c++11 -Wall -Wextra -Werror -I"$src/include" -c \
	-o "$tmp/t.o" "$tmp/t.cc" 2>"$tmp/err"; then
	echo "check_cxx: remo.h, trace.h (REMO_LOCAL) and transport.h compile in C++"
	echo "1 passed, 0 failed"
else
	cat "$tmp/err"
	echo "0 passed, 1 failed"
	exit 1
fi
