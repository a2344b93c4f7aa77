#!/bin/sh
# check_manpages.sh -- every function libremo.so exports has a man page.
#
# "man remo_future_wait" must work for every exported function: each one
# needs doc/man/NAME.3, a group page or a one-line link page to one
# (".so man3/GROUP.3").  A link page whose target is not in doc/man/
# fails too: installed, it would be a page that shows nothing.
set -u
lib="${top_builddir:-.}/.libs/libremo.so"
mandir="${top_srcdir:-.}/doc/man"
if [ ! -f "$lib" ]; then
	echo "check_manpages: $lib not found" >&2
	exit 1
fi
if [ ! -d "$mandir" ]; then
	echo "check_manpages: $mandir not found" >&2
	exit 1
fi
# Functions only (type T): exported data, if any ever is, has no page.
syms=$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^remo_/ {print $3}' | sort -u)
count=$(printf '%s\n' "$syms" | grep -c '^remo_')
if [ "$count" -eq 0 ]; then
	echo "check_manpages: no remo_* functions in $lib" >&2
	exit 1
fi
missing=
for s in $syms; do
	[ -f "$mandir/$s.3" ] || missing="$missing $s"
done
# Link pages: ".so manN/PAGE.N" names the installed path; in the source
# tree every page is in doc/man/ itself.
broken=
links=0
pages=0
for p in "$mandir"/*.[1-9]; do
	[ -f "$p" ] || continue
	pages=$((pages + 1))
	target=$(sed -n '1s/^\.so[ 	]\{1,\}//p' "$p")
	[ -n "$target" ] || continue
	links=$((links + 1))
	if [ ! -f "$mandir/${target##*/}" ]; then
		broken="$broken ${p##*/}->$target"
	fi
done
fail=0
if [ -n "$missing" ]; then
	echo "check_manpages: exported functions without doc/man/NAME.3:" >&2
	# shellcheck disable=SC2086 # one name a line: split on purpose
	printf '  %s\n' $missing >&2
	fail=1
fi
if [ -n "$broken" ]; then
	echo "check_manpages: link pages whose target is missing:" >&2
	# shellcheck disable=SC2086
	printf '  %s\n' $broken >&2
	fail=1
fi
if [ "$fail" -ne 0 ]; then
	echo "0 passed, 1 failed"
	exit 1
fi
echo "check_manpages: $count remo_* functions, each with a page ($pages pages, $links of them links)"
echo "1 passed, 0 failed"
