#!/bin/sh
# test_hosts.sh -- remo across two "hosts": a server in one network
# namespace, clients in another, joined by a veth pair, over tcp:// with
# a shared secret (issue 11).
#
#   1. an authenticated client is served across the link;
#   2. a client without the secret is refused by name, and a server
#      without one refuses to listen on the link's address at all;
#   3. the link is cut in the middle of a call: the call fails with
#      PeerLost within three lease periods (300 ms each), not when the
#      5-second call would have ended;
#   4. the link is restored: the server has let the cut client's session
#      go (its own lease), and a new client connects and is served;
#   5. over tls:// too (with openssl(1) to make the certificates): a
#      client on the other host that trusts the server's CA, with the
#      secret, is served; one that trusts another CA is refused.
#
# The test makes its namespaces and addresses itself (10.213.77.0/24,
# inside them only) and removes them at exit.  It is skipped, saying
# why, where it cannot: not root, no ip(8), or no permission to make
# namespaces (a container without CAP_NET_ADMIN).
set -u
HELPER_DIR=${HELPER_DIR:-$(pwd)/tests}
server=$HELPER_DIR/helper_server
client=$HELPER_DIR/helper_client
. "$(dirname "$0")/testlib.sh"

skip_all() {
	echo "test_hosts: skipped: $1"
	echo "[  SKIPPED ] 1 test(s)."
	exit 77
}

[ "$(id -u)" -eq 0 ] || skip_all "not root (network namespaces need it)"
command -v ip >/dev/null 2>&1 || skip_all "ip(8) is not installed (iproute2)"

srv=remo-srv-$$
cli=remo-cli-$$
vs=rvs$$
vc=rvc$$
tmp=$(mktemp -d) || exit 1
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	ip netns del "$srv" 2>/dev/null
	ip netns del "$cli" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$srv" 2>"$tmp/err" ||
	skip_all "cannot make a network namespace: $(cat "$tmp/err")"
ip netns add "$cli" || skip_all "cannot make a second network namespace"
ip link add "$vs" type veth peer name "$vc" 2>"$tmp/err" ||
	skip_all "cannot make a veth pair: $(cat "$tmp/err")"
ip link set "$vs" netns "$srv" && ip link set "$vc" netns "$cli" &&
	ip -n "$srv" addr add 10.213.77.1/24 dev "$vs" &&
	ip -n "$cli" addr add 10.213.77.2/24 dev "$vc" &&
	ip -n "$srv" link set "$vs" up && ip -n "$cli" link set "$vc" up &&
	ip -n "$srv" link set lo up && ip -n "$cli" link set lo up ||
	skip_all "cannot set up the link"

secret=$tmp/secret
printf 'the secret both hosts know, 32+ bytes\n' >"$secret"
chmod 600 "$secret"

# the server: on the link's address, with the secret and a 300 ms lease
ip netns exec "$srv" "$server" tcp://10.213.77.1:0 --lease 300 \
	--secret-file "$secret" >"$tmp/server.out" 2>&1 &
spid=$!
url=$(ready_url "$tmp/server.out" "$spid")
if [ -z "$url" ]; then
	show "helper_server" "$tmp/server.out"
	echo "FAILED: the server did not start"
	exit 1
fi
echo "server in $srv on $url"
incli() { ip netns exec "$cli" "$@"; }

# 1. served across the link
incli "$client" "$url" 20 --secret-file "$secret" >"$tmp/c1.out" 2>&1
expect "an authenticated client on the other host is served" \
	'^OK 20$' "$tmp/c1.out"

# 2. refused without the secret; and no open server on that address
incli "$client" "$url" 0 --sessions >"$tmp/c2.out" 2>&1
refused "a client without the secret is refused by name" \
	authentication "$tmp/c2.out"
ip netns exec "$srv" "$server" tcp://10.213.77.1:0 >"$tmp/open.out" 2>&1 &
opid=$!
sleep 0.5
if kill -0 "$opid" 2>/dev/null; then
	kill "$opid"
	wait "$opid" 2>/dev/null
	not_ok "a server without a secret refuses the link's address"
	show open "$tmp/open.out"
elif grep -q 'refusing to serve' "$tmp/open.out"; then
	ok "a server without a secret refuses the link's address"
else
	not_ok "a server without a secret refuses the link's address"
	show open "$tmp/open.out"
fi

# 3. the link cut in the middle of a 5-second call
incli "$client" "$url" 0 --secret-file "$secret" --lease 300 --slow 5000 \
	>"$tmp/c3.out" 2>&1 &
cpid=$!
sleep 0.5
ip -n "$cli" link set "$vc" down
wait "$cpid"
line=$(grep '^SLOW ' "$tmp/c3.out")
name=$(echo "$line" | cut -d' ' -f2)
ms=$(echo "$line" | cut -d' ' -f3)
echo "the cut call: ${line:-nothing}"
if [ "$name" = PeerLost ] && [ -n "$ms" ] && [ "$ms" -lt 4000 ]; then
	ok "the cut call fails with PeerLost within the lease, not at its end"
else
	not_ok "the cut call fails with PeerLost within the lease, not at its end"
	show c3 "$tmp/c3.out"
fi

# 4. restored: the cut client's session is gone, a new one is served
ip -n "$cli" link set "$vc" up
n=
i=0
while [ $i -lt 50 ]; do
	incli "$client" "$url" 0 --secret-file "$secret" --sessions \
		>"$tmp/c4.out" 2>&1
	n=$(sed -n 's/^SESSIONS //p' "$tmp/c4.out")
	[ "$n" = 1 ] && break
	sleep 0.1
	i=$((i + 1))
done
[ "$n" = 1 ] &&
	ok "the server let the cut client's session go (1 session: the asker)" ||
	{ not_ok "the server let the cut client's session go (sessions: ${n:-?})"
	  show c4 "$tmp/c4.out"; }
incli "$client" "$url" 20 --secret-file "$secret" >"$tmp/c5.out" 2>&1
expect "after the link is back, a client connects again and is served" \
	'^OK 20$' "$tmp/c5.out"

kill "$spid"
wait "$spid" 2>/dev/null
spid=

# 5. tls:// across the link
if command -v openssl >/dev/null 2>&1; then
	make_certs "$tmp" 10.213.77.1 ||
		{ echo "FAILED: openssl: certificates"; exit 1; }
	ip netns exec "$srv" "$server" \
		"tls://10.213.77.1:0?cert=$tmp/srv.pem&key=$tmp/srv.key" \
		--secret-file "$secret" >"$tmp/tls.out" 2>&1 &
	spid=$!
	turl=$(ready_url "$tmp/tls.out" "$spid")
	incli "$client" "$turl?ca=$tmp/ca.pem" 20 --secret-file "$secret" \
		>"$tmp/t1.out" 2>&1
	expect "over tls://, a client on the other host is served" \
		'^OK 20$' "$tmp/t1.out" || show tls-server "$tmp/tls.out"
	incli "$client" "$turl?ca=$tmp/other.pem" 1 --secret-file "$secret" \
		>"$tmp/t2.out" 2>&1
	refused "over tls://, a client that trusts another CA is refused" \
		certificate "$tmp/t2.out"
	kill "$spid"
	wait "$spid" 2>/dev/null
	spid=
else
	echo "test_hosts: the tls:// part is skipped: openssl(1) is not installed"
fi

finish test_hosts
