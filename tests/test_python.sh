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

"$build/demo/tuplespace/remo-tuplespace" "unix://$tmp/ts.sock" \
	>"$tmp/server.out" 2>&1 &
spid=$!
url=$(ready_url "$tmp/server.out" "$spid")
[ -n "$url" ] || { show remo-tuplespace "$tmp/server.out"; exit 1; }

"$py" "$top/tests/test_python.py" "$url" >"$tmp/checks.out" 2>&1
cat "$tmp/checks.out"
if grep -q '^FAILED' "$tmp/checks.out" || ! grep -q '^ok' "$tmp/checks.out"; then
	not_ok "the Python client's checks (test_python.py)"
else
	ok "the Python client's checks (test_python.py)"
fi
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
finish test_python
