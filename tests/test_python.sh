#!/bin/sh
# test_python.sh -- the Python client (python/remo.py) against real
# servers: test_python.py's checks on remo-tuplespace, lindypy's worker
# pool with a Python master and C workers sharing one space (sum.py), and
# tastypy's pod["foo"]["baz"].append("fizz") persisting in remo-pod
# across a restart.
set -u
. "$(dirname "$0")/testlib.sh"
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(pwd)
py=/usr/bin/python3
"$py" -c 'import msgpack' 2>/dev/null || {
	echo "test_python: skipped: python3-msgpack is not installed"
	exit 77
}
tmp=$(mktemp -d) || exit 1
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# py_checks WHAT OUT ARGS...: runs test_python.py ARGS, its output into
# OUT (shown); the check WHAT passes if every line it printed is ok
py_checks() {
	what=$1 out=$2
	shift 2
	"$py" "$top/tests/test_python.py" "$@" >"$out" 2>&1
	cat "$out"
	if grep -q '^FAILED' "$out" || ! grep -q '^ok' "$out"; then
		not_ok "$what"
	else
		ok "$what"
	fi
}

"$build/demo/tuplespace/remo-tuplespace" "unix://$tmp/ts.sock" \
	>"$tmp/server.out" 2>&1 &
spid=$!
url=$(ready_url "$tmp/server.out" "$spid")
[ -n "$url" ] || { show remo-tuplespace "$tmp/server.out"; exit 1; }

py_checks "the Python client's checks (test_python.py)" "$tmp/checks.out" \
	"$url"
"$py" "$top/demo/tuplespace/sum.py" "$url" 40 \
	"$build/demo/tuplespace/ts-sum" >"$tmp/sum.out" 2>&1
expect "a Python master and C workers share one space" \
	'^sum of 40 tuples by C workers, for Python: 3360 (expected 3360)$' \
	"$tmp/sum.out"
kill "$spid" && wait "$spid"
spid=

# the pod: tastypy's nested append from Python, saved across a restart
pod() {
	"$build/demo/pod/remo-pod" "$tmp/pod.db" "unix://$tmp/pod.sock" \
		>"$tmp/pod.out" 2>&1 &
	spid=$!
	url=$(ready_url "$tmp/pod.out" "$spid")
	[ -n "$url" ] || { show remo-pod "$tmp/pod.out"; return 1; }
	"$py" "$top/tests/test_python.py" pod "$url" "$1" >"$tmp/$1.out" 2>&1
	cat "$tmp/$1.out"
	kill "$spid" && wait "$spid" # SIGTERM: the last sync
	st=$?
	spid=
	if grep -q '^FAILED' "$tmp/$1.out" || ! grep -q '^ok' "$tmp/$1.out" ||
	    [ $st -ne 0 ]; then
		not_ok "the pod from Python: $1"
	else
		ok "the pod from Python: $1"
	fi
}
pod write
pod read

# the calc demo: a remote ZeroDivisionError caught as Python's own and
# walked with remo.pm(); proxies, async calls, releases
"$build/demo/calc/calc-server" "unix://$tmp/calc.sock" >"$tmp/calc.out" 2>&1 &
spid=$!
i=0
while ! grep -q serving "$tmp/calc.out" && [ $i -lt 300 ]; do
	sleep 0.05
	i=$((i + 1))
done
py_checks "the calc demo from Python, remo.pm() on its error" \
	"$tmp/calc.checks" calc "unix://$tmp/calc.sock"
kill "$spid" && wait "$spid"
spid=

# a server with a secret: proved from Python (doc/wire.md 7.1)
printf 'a-secret-for-python-0123456789\n' >"$tmp/secret"
chmod 600 "$tmp/secret"
"$build/demo/tuplespace/remo-tuplespace" "unix://$tmp/ats.sock" \
	--secret-file "$tmp/secret" >"$tmp/ats.out" 2>&1 &
spid=$!
url=$(ready_url "$tmp/ats.out" "$spid")
py_checks "a secret proved from Python; a wrong one refused by name" \
	"$tmp/auth.checks" auth "$url" "$tmp/secret"
finish test_python
