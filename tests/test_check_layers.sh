#!/bin/sh
# test_check_layers.sh -- check_layers.sh fails on what it names: an
# include of a higher layer's header, an include of another layer's
# private header, <ffi.h> outside types/, a call of a name only a higher
# layer defines, and a folder that is no layer.
# Each is planted in a copy of the tree (sources, or object files), and
# the check must fail naming the file and the header or name.  The
# unplanted tree passing is check_layers.sh's own test.
set -u
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
check=$top_srcdir/tests/check_layers.sh
passed=0
failed=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok: $1"; passed=$((passed + 1)); }
not_ok() { echo "FAILED: $1"; failed=$((failed + 1)); }

# expect_fail NAME PATTERN: the check exits non-zero and prints PATTERN
expect_fail() {
	if SRC=$tmp/src OBJ=$tmp/obj sh "$check" >"$tmp/out" 2>&1; then
		not_ok "$1 (the check passed)"
	elif grep -Eq -- "$2" "$tmp/out"; then
		ok "$1"
	else
		not_ok "$1 (/$2/ not in its output)"
	fi
	sed 's/^/    /' "$tmp/out"
}

fresh() {
	rm -rf "$tmp/src" "$tmp/obj"
	cp -R "$top_srcdir/src" "$tmp/src"
	chmod -R u+w "$tmp/src" # make distcheck's sources are read-only
	mkdir "$tmp/obj"
	(cd "$top_builddir/src" && find . -name '*.o') | while read -r o; do
		mkdir -p "$tmp/obj/${o%/*}"
		cp "$top_builddir/src/$o" "$tmp/obj/$o"
	done
}

fresh
if SRC=$tmp/src OBJ=$tmp/obj sh "$check" >"$tmp/out" 2>&1; then
	ok "the copied tree passes before anything is planted"
else
	not_ok "the copied tree passes before anything is planted"
	cat "$tmp/out"
fi

fresh
printf '#include "session/session.h"\n' >>"$tmp/src/value/dict.c"
expect_fail "value including the session's header fails, naming both" \
	'src/value/dict.c includes session/session.h: layer session is above value'

fresh
printf '#include "wire/private.h"\n' >>"$tmp/src/types/sig.c"
expect_fail "including another layer's private header fails" \
	'src/types/sig.c includes wire/private.h: only wire/wire.h'

fresh
printf 'int remo__session_request();\nint planted(void) { return remo__session_request(); }\n' \
	>"$tmp/planted.c"
${CC:-cc} -c -o "$tmp/obj/value/planted.o" "$tmp/planted.c"
expect_fail "an upward call from value into the session fails, naming it" \
	'planted\.o \(layer value\) calls remo__session_request, which only layer session defines'

fresh
printf '#include <ffi.h>\n' >>"$tmp/src/session/call.c"
expect_fail "libffi's header outside types/ fails" \
	"src/session/call.c includes <ffi.h>: libffi is types/'s alone"

fresh
mkdir -p "$tmp/src/extra"
expect_fail "a folder that is no layer fails" 'src/extra is not a layer'

echo "[==========] test_check_layers: $((passed + failed)) checks"
echo "[  PASSED  ] $passed test(s)."
if [ "$failed" -ne 0 ]; then
	echo "[  FAILED  ] $failed test(s)."
	exit 1
fi
