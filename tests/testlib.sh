# testlib.sh -- what the shell tests of processes share (test_tls.sh,
# test_hosts.sh source it): counting checks, checking a client's output,
# waiting for helper_server's READY line, making certificates, the
# closing summary.
# POSIX sh.

passed=0
failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
not_ok() { echo "FAILED: $1"; failed=$((failed + 1)); }
show() {
	echo "---- $1"
	cat "$2" 2>/dev/null || echo "(no file)"
	echo "----"
}

# expect WHAT PATTERN FILE: the check WHAT passes if a line of FILE (a
# client's output) matches PATTERN; if not, FILE is shown and it
# returns 1.
expect() {
	if grep -q "$2" "$3"; then
		ok "$1"
	else
		not_ok "$1"
		show "${3##*/}" "$3"
		return 1
	fi
}

# refused WHAT REASON FILE: the check WHAT passes if the client whose
# output is FILE was not served (no OK or SESSIONS line) and said why,
# REASON matching a line (any case); FILE is shown either way.
refused() {
	if ! grep -Eq '^(OK|SESSIONS)' "$3" && grep -qi "$2" "$3"; then
		ok "$1"
		sed 's/^/    /' "$3"
	else
		not_ok "$1"
		show "${3##*/}" "$3"
		return 1
	fi
}

# ready_url FILE PID: waits up to 15 s (a loaded machine: 5 s was once
# too short in make -j2 check) for "READY <url>" in FILE, which
# helper_server (PID) writes once it listens; prints the url, or nothing
# if it did not come (or PID died).
ready_url() {
	i=0
	while ! grep -q "^READY " "$1" && [ $i -lt 300 ]; do
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	sed -n 's/^READY //p' "$1"
}

# make_certs DIR IP: in DIR, a CA (ca.pem, ca.key), another nobody uses
# (other.pem), a server certificate the CA signs for IP (srv.pem,
# srv.key) and a client certificate it signs (cli.pem, cli.key), all
# P-256, "CN=remo test NAME".  Fails if openssl(1) does.
make_certs() (
	cd "$1" || exit 1
	mkca() {
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout "$1.key" -out "$1.pem" -days 2 \
			-subj "/CN=remo test $1"
	}
	mkcert() { # name ca extension-line
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout "$1.key" -out "$1.csr" \
			-subj "/CN=remo test $1" &&
		printf '%s\n' "$3" >"$1.ext" &&
		openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
			-CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext"
	}
	{ mkca ca && mkca other &&
	  mkcert srv ca "subjectAltName=IP:$2" &&
	  mkcert cli ca "extendedKeyUsage=clientAuth"; } >/dev/null 2>&1
)

# finish NAME: the summary lines ./run counts; exits 1 if a check failed.
finish() {
	echo "[==========] $1: $((passed + failed)) checks"
	echo "[  PASSED  ] $passed test(s)."
	if [ "$failed" -ne 0 ]; then
		echo "[  FAILED  ] $failed test(s)."
		exit 1
	fi
	exit 0
}
