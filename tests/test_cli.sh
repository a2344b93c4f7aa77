#!/bin/sh
# test_cli.sh -- remo(1) against demo/calc's server and helper_server:
# list, describe, call, get, set, errors by name with the remote
# traceback's frames, --json, the literal syntax, the exit statuses.
set -u
. "$(dirname "$0")/testlib.sh"
build=$(pwd)
remo="$build/cli/remo"
tmp=$(mktemp -d) || exit 1
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

"$build/demo/calc/calc-server" "unix://$tmp/calc.sock" >"$tmp/calc.out" 2>&1 &
pids="$!"
i=0
while ! grep -q serving "$tmp/calc.out" && [ $i -lt 300 ]; do
	sleep 0.05
	i=$((i + 1))
done
url="unix://$tmp/calc.sock"

# out FILE STATUS CMD...: runs remo, its stdout and stderr into FILE,
# and checks its exit status
out() {
	f=$1 want=$2
	shift 2
	"$remo" "$@" >"$f" 2>&1
	st=$?
	[ $st -eq "$want" ] || { echo "remo $*: exit $st, not $want"; return 1; }
}

out "$tmp/list" 0 "$url"
expect "lists the exports" '^calc  *object  *Calc$' "$tmp/list"
out "$tmp/desc" 0 "$url" describe calc
expect "describes a type: a method's signature and doc" \
	'^  add  *d(x:d)  acc += x$' "$tmp/desc"
expect "describes a type: a read-only field" \
	'^  history  *r  (read-only)$' "$tmp/desc"
out "$tmp/add" 0 "$url" call calc.add 2.5
expect "calls a method" '^2\.5$' "$tmp/add"
out "$tmp/get" 0 --json "$url" get calc.acc
expect "gets a field, as JSON" '^{"result": 2\.5}$' "$tmp/get"
out "$tmp/hist" 0 "$url" get 'calc.history[-1]'
expect "gets an item through a path" '^("add", 2\.5, 2\.5)$' "$tmp/hist"
out "$tmp/hjson" 0 --json "$url" get calc.history
expect "a remote list is printed by value" \
	'^{"result": \[\["add", 2\.5, 2\.5\]\]}$' "$tmp/hjson"
out "$tmp/set" 0 "$url" set calc.acc 10.0 && out "$tmp/acc" 0 "$url" get calc.acc
expect "sets a field" '^10\.0$' "$tmp/acc"
out "$tmp/div" 1 "$url" call calc.div 0
expect "a remote error by name" '^ZeroDivisionError: cannot divide 10 by zero$' \
	"$tmp/div"
expect "with its traceback's frames" '^  calc_div (.*calc-server\.c:[0-9]*)$' \
	"$tmp/div"
out "$tmp/divj" 1 --json "$url" call calc.div 0
expect "a remote error as JSON" \
	'^{"error": {"name": "ZeroDivisionError", "message": "cannot divide 10 by zero", "traceback": \[{"function": "calc_div"' \
	"$tmp/divj"
out "$tmp/type" 1 "$url" call calc.add '"ten"'
expect "a wrong argument is a TypeError naming it" \
	"^TypeError: add() argument 1 'x' must be double" "$tmp/type"
out "$tmp/bad" 2 "$url" call calc.add '[1,'
expect "a literal that does not parse: exit 2, and why" \
	"^remo: '\[1,': " "$tmp/bad"
out "$tmp/none" 3 "unix://$tmp/nobody.sock"
expect "no server: exit 3" "^remo: unix://$tmp/nobody.sock: " "$tmp/none"
out "$tmp/jlist" 0 --json "$url" list
expect "lists as JSON" '^\[{"name": "calc", "kind": "object", "type": "Calc"}\]$' \
	"$tmp/jlist"

# the literal syntax, through helper_server's echo
"$build/tests/helper_server" "unix://$tmp/h.sock" >"$tmp/h.out" 2>&1 &
pids="$pids $!"
hurl=$(ready_url "$tmp/h.out" "$!")
out "$tmp/fns" 0 "$hurl"
expect "a function's signature in the list" '^add  *function  *q(a:q b:q)$' \
	"$tmp/fns"
out "$tmp/fdesc" 0 "$hurl" describe echo
expect "describes a function" '^echo: function r(v:r)$' "$tmp/fdesc"
lit() { # WHAT LITERAL EXPECTED-JSON
	out "$tmp/lit" 0 --json "$hurl" call echo "$2"
	expect "literal: $1" "^{\"result\": $3}\$" "$tmp/lit"
}
lit "null" 'null' 'null'
lit "an int" '-42' '-42'
lit "a double" '2.0' '2'
lit "an int past 32 bits" '9007199254740993' '9007199254740993'
lit "a string with escapes" '"a\"b\u00e9\ud83d\ude00"' '"a\\"bé😀"'
lit "a bare word is a string" 'world' '"world"'
lit "bytes" 'b"\x00\xff"' '{"bytes": "00ff"}'
lit "a list" '[1, "two", [3]]' '\[1, "two", \[3\]\]'
lit "a tuple, one item with its comma" '(1,)' '\[1\]'
lit "a dict with a non-str key" '{"k": 1, 2: true}' '{"items": \[\["k", 1\], \[2, true\]\]}'
lit "nested" '{"a": [(1, 2.5), {"b": null}]}' '{"a": \[\[1, 2\.5\], {"b": null}\]}'
out "$tmp/big" 2 "$hurl" call echo 99999999999999999999
expect "an int past 64 bits is refused" "past 64 bits" "$tmp/big"
out "$tmp/surr" 2 "$hurl" call echo '"\ud800"'
expect "a lone surrogate is refused" "lone surrogate" "$tmp/surr"
out "$tmp/bs" 2 "$hurl" call echo '"abc\'
expect "a string ending in a backslash is refused" "closing quote" "$tmp/bs"
finish test_cli
