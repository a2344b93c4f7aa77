#!/bin/sh
# test_tls.sh -- the tls:// transport between real processes, with
# certificates made here by openssl(1): a CA, a server certificate for
# 127.0.0.1, a client certificate, and a CA nobody uses.
#
#   1. a client that trusts the CA is served;
#   2. a client that trusts another CA is refused, by name
#      (AuthenticationError, the certificate's problem in words);
#   3. a server that asks for client certificates (ca= on its URL)
#      refuses a client without one and serves a client with one;
#   4. a server URL without cert= and key= is refused at listen.
set -u
HELPER_DIR=${HELPER_DIR:-$(pwd)/tests}
server=$HELPER_DIR/helper_server
client=$HELPER_DIR/helper_client
. "$(dirname "$0")/testlib.sh"
command -v openssl >/dev/null 2>&1 || {
	echo "test_tls: skipped: openssl(1) is not installed"
	exit 77
}

tmp=$(mktemp -d) || exit 1
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- certificates ----------------------------------------------------------
make_certs "$tmp" 127.0.0.1 || {
	echo "FAILED: openssl could not make the test certificates"
	exit 1
}

start() { # url: starts helper_server, sets spid and bound
	"$server" "$1" >"$tmp/server.out" 2>&1 &
	spid=$!
	bound=$(ready_url "$tmp/server.out" "$spid")
	[ -n "$bound" ] || { show helper_server "$tmp/server.out"; return 1; }
}
stop() {
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	spid=
}

# ---- 1 and 2: the server's certificate ---------------------------------------
start "tls://127.0.0.1:0?cert=$tmp/srv.pem&key=$tmp/srv.key" || exit 1
"$client" "$bound?ca=$tmp/ca.pem" 20 >"$tmp/c1.out" 2>&1
expect "a client that trusts the server's CA is served" '^OK 20$' "$tmp/c1.out"
"$client" "$bound?ca=$tmp/other.pem" 1 >"$tmp/c2.out" 2>&1
refused "a client that trusts another CA is refused, saying why" \
	certificate "$tmp/c2.out"
stop

# ---- 3: mutual TLS --------------------------------------------------------------
start "tls://127.0.0.1:0?cert=$tmp/srv.pem&key=$tmp/srv.key&ca=$tmp/ca.pem" ||
	exit 1
"$client" "$bound?ca=$tmp/ca.pem" 1 >"$tmp/c3.out" 2>&1
grep -q '^OK' "$tmp/c3.out" &&
	{ not_ok "a client without a certificate is refused by a mutual-TLS server"
	  show c3 "$tmp/c3.out"; } ||
	{ ok "a client without a certificate is refused by a mutual-TLS server"
	  sed 's/^/    /' "$tmp/c3.out"; }
"$client" "$bound?ca=$tmp/ca.pem&cert=$tmp/cli.pem&key=$tmp/cli.key" 20 \
	>"$tmp/c4.out" 2>&1
expect "a client with a certificate the server's CA signed is served" \
	'^OK 20$' "$tmp/c4.out"
"$client" "$bound?ca=$tmp/ca.pem&cert=$tmp/cli.pem&key=$tmp/cli.key" 0 \
	--whoami >"$tmp/c5.out" 2>&1
expect "the server sees the client's certificate subject (remo_caller)" \
	'^WHOAMI auth=0 tls subject=/CN=remo test cli 127.0.0.1:' "$tmp/c5.out"
stop

# ---- 4: a server needs its certificate ---------------------------------------------
"$server" "tls://127.0.0.1:0" >"$tmp/s5.out" 2>&1 &
spid=$!
sleep 0.3
if kill -0 "$spid" 2>/dev/null; then
	stop
	not_ok "a tls:// server without cert= and key= is refused"
	show s5 "$tmp/s5.out"
else
	spid=
	expect "a tls:// server without cert= and key= is refused" \
		'needs cert= and key=' "$tmp/s5.out"
fi

finish test_tls
