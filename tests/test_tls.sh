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
#   4. a server URL without cert= and key= is refused at listen;
#   5. big frames received over tls:// count in the process's frame
#      budget: a second peer that trickles one is cut off, and a
#      well-behaved client is served meanwhile.
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

start() { # url [options]: starts helper_server, sets spid and bound
	"$server" "$@" >"$tmp/server.out" 2>&1 &
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

# ---- 5: the frame budget ------------------------------------------------------------
# a 6 MiB budget: peer A opens a session, announces 8 MiB and sends 2
# (its buffer, 4 MiB, is counted), then B does the same and is cut off
# past 2 MiB counted (without the budget, only the lease, 30 s, would)
if [ -x /usr/bin/python3 ]; then
	start "tls://127.0.0.1:0?cert=$tmp/srv.pem&key=$tmp/srv.key" \
		--frame-budget 6291456 || exit 1
	/usr/bin/python3 - "${bound#tls://}" >"$tmp/c6.out" 2>&1 <<'EOF' &
import socket, ssl, sys, time
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def trickle(n):
    s = ctx.wrap_socket(socket.create_connection((host, int(port))))
    # HELLO [0, 1, 16 MiB, 32] (doc/wire.md 7.1): the session is open,
    # and no opening deadline cuts the frame that follows
    hello = bytes([0x94, 0x00, 0x01, 0xce, 0x01, 0x00, 0x00, 0x00, 0x20])
    s.sendall(len(hello).to_bytes(4, "big") + hello)
    s.sendall((8 << 20).to_bytes(4, "big"))
    sent = 0
    try:
        while sent < n:
            s.sendall(bytes(65536))
            sent += 65536
    except OSError:
        pass
    return s
a = trickle(2 << 20)
time.sleep(1)
b = trickle(3 << 20)
until = time.time() + 8  # the lease (30 s) would cut it only later
try:  # the server's HELLO, then the end
    b.settimeout(8)
    while b.recv(4096):
        b.settimeout(max(0.01, until - time.time()))
    print("B CUT")
except socket.timeout:
    print("B NOT CUT")
except (OSError, ssl.SSLError) as e:
    print("B CUT", type(e).__name__)
print("A HOLDING", flush=True)
time.sleep(3)
a.close()
EOF
	ppid=$!
	for i in $(seq 1 100); do
		grep -q HOLDING "$tmp/c6.out" 2>/dev/null && break
		sleep 0.1
	done
	"$client" "$bound?ca=$tmp/ca.pem" 5 >"$tmp/c7.out" 2>&1
	wait "$ppid"
	expect "a peer trickling a big frame past the frame budget is cut off" \
		'^B CUT' "$tmp/c6.out"
	expect "a client is served while another peer holds a big frame" \
		'^OK 5$' "$tmp/c7.out"
	stop
else
	echo "skipped 5: /usr/bin/python3 is not installed"
fi

finish test_tls
