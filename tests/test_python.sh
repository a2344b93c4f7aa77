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

# the calc demo: a remote ZeroDivisionError caught as Python's own and
# walked with remo.pm(); proxies, async calls, releases
"$build/demo/calc/calc-server" "unix://$tmp/calc.sock" >"$tmp/calc.out" 2>&1 &
spid=$!
i=0
while ! grep -q serving "$tmp/calc.out" && [ $i -lt 300 ]; do
	sleep 0.05
	i=$((i + 1))
done
"$py" "$top/tests/test_python.py" calc "unix://$tmp/calc.sock" \
	>"$tmp/calc.checks" 2>&1
cat "$tmp/calc.checks"
if grep -q '^FAILED' "$tmp/calc.checks" || ! grep -q '^ok' "$tmp/calc.checks"
then
	not_ok "the calc demo from Python, remo.pm() on its error"
else
	ok "the calc demo from Python, remo.pm() on its error"
fi
kill "$spid" && wait "$spid"
spid=

# a server with a secret: proved from Python (doc/wire.md 7.1)
printf 'a-secret-for-python-0123456789\n' >"$tmp/secret"
chmod 600 "$tmp/secret"
"$build/demo/tuplespace/remo-tuplespace" "unix://$tmp/ats.sock" \
	--secret-file "$tmp/secret" >"$tmp/ats.out" 2>&1 &
spid=$!
url=$(ready_url "$tmp/ats.out" "$spid")
"$py" "$top/tests/test_python.py" auth "$url" "$tmp/secret" \
	>"$tmp/auth.checks" 2>&1
cat "$tmp/auth.checks"
if grep -q '^FAILED' "$tmp/auth.checks" || ! grep -q '^ok' "$tmp/auth.checks"
then
	not_ok "a secret proved from Python; a wrong one refused by name"
else
	ok "a secret proved from Python; a wrong one refused by name"
fi
finish test_python
