#!/bin/sh
# check_exports.sh -- libremo.so must export remo_* and nothing else.
#
# -fvisibility=hidden plus REMO_API on the public declarations is what
# makes this hold; this test keeps it holding.  A remo__ (internal) name
# or any other symbol in the dynamic table fails it.
set -u
lib="${top_builddir:-.}/.libs/libremo.so"
if [ ! -f "$lib" ]; then
	echo "check_exports: $lib not found" >&2
	exit 1
fi
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
bad=$(printf '%s\n' "$syms" | grep -v '^remo_' | grep -v -x -e '_init' -e '_fini' -e '')
internal=$(printf '%s\n' "$syms" | grep '^remo__')
count=$(printf '%s\n' "$syms" | grep -c '^remo_')
for want in remo_pack remo_unpack remo_strerror remo_value_release remo_error; do
	printf '%s\n' "$syms" | grep -qx "$want" || { echo "check_exports: $want missing" >&2; exit 1; }
done
if [ -n "$bad$internal" ]; then
	echo "check_exports: symbols that must not be exported:" >&2
	printf '%s\n' $bad $internal >&2
	exit 1
fi
echo "check_exports: $count remo_* symbols, nothing else"
echo "1 passed, 0 failed"
