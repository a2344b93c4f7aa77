/*
 * auth.c -- authentication in the opening handshake: both peers prove
 * that they know a shared secret, each to the other, before anything is
 * sent or served, and the secret never crosses.
 *
 * The exchange (doc/wire.md section 7.1), run by remo_session_new of a
 * session with a secret, before any other thread can use the session:
 *
 *   each side   HELLO [0, version, max_message, max_depth, nonce]
 *               with 32 fresh random bytes of its own (OpenSSL's
 *               RAND_bytes)
 *   each side   AUTH  [11, proof], once the peer's HELLO came:
 *               proof = HMAC-SHA-256(secret, "remo-auth-1" ||
 *                                    peer's nonce || own nonce)
 *   each side   checks the peer's AUTH against the proof it expects,
 *               HMAC(secret, "remo-auth-1" || own nonce || peer's
 *               nonce), in constant time (CRYPTO_memcmp)
 *
 * Erlang's cookie, done right: both sides challenge (a one-sided check
 * lets an impostor server collect proofs), the nonces of both go into
 * each proof in an order that differs by direction, so a proof cannot be
 * played back to its maker; a peer that sends our own nonce back as its
 * own would make the two proofs equal, and is refused.  A proof says
 * nothing about the secret (HMAC), and a fresh nonce per session means
 * none can be replayed.  What it does not give: secrecy of what follows
 * (the tls:// transport's job) and an identity finer than "knows the
 * secret".
 *
 * HMAC and random bytes are OpenSSL 3's libcrypto, not code of ours: the
 * brief forbids hand-written crypto, and libcrypto is also what tls://
 * will use (doc/design.md says why not GnuTLS or libsodium).
 */
#include "session/session_impl.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define AUTH_LABEL "remo-auth-1"

int remo__auth_nonce(unsigned char nonce[REMO__NONCE_LEN])
{
	return RAND_bytes(nonce, REMO__NONCE_LEN) == 1 ? REMO_OK : REMO_ENOMEM;
}

/* HMAC-SHA-256(secret, label || first || second) into out. */
static int auth_proof(const remo_session *s, const unsigned char *first,
                      const unsigned char *second,
                      unsigned char out[REMO__PROOF_LEN])
{
	unsigned char data[sizeof AUTH_LABEL - 1 + 2 * REMO__NONCE_LEN];
	memcpy(data, AUTH_LABEL, sizeof AUTH_LABEL - 1);
	memcpy(data + sizeof AUTH_LABEL - 1, first, REMO__NONCE_LEN);
	memcpy(data + sizeof AUTH_LABEL - 1 + REMO__NONCE_LEN, second,
	       REMO__NONCE_LEN);
	size_t n = 0;
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, s->secret,
	              s->secret_len, data, sizeof data, out, REMO__PROOF_LEN,
	              &n) == NULL || n != REMO__PROOF_LEN)
		return REMO_ENOMEM;
	return REMO_OK;
}

/* One message of the handshake, read straight off the channel (nothing
 * else reads it yet): its array header and type into *n and *type. */
static int auth_recv(remo_session *s, int64_t deadline, remo_buf *b,
                     remo__rd *rd, uint32_t *n, uint64_t *type)
{
	int left = remo__ms_left(deadline);
	if (left == 0)
		return REMO_ETIMEDOUT;
	b->len = 0;
	int rc = s->ch.recv(s->ch.user, b, left);
	if (rc != REMO_OK)
		return rc;
	if (remo__wire_check(b->data, b->len) != REMO_OK)
		return REMO_EPROTO;
	*rd = (remo__rd){b->data, b->data + b->len};
	remo__tok a, t;
	if (remo__wire_next(rd, &a) != REMO_OK || a.type != REMO__T_ARRAY ||
	    a.n < 1 || remo__wire_next(rd, &t) != REMO_OK ||
	    t.type != REMO__T_INT || t.v.i < 0)
		return REMO_EPROTO;
	*n = a.n; /* the whole message's items, the type among them */
	*type = (uint64_t)t.v.i;
	return REMO_OK;
}

/* 32 bytes of bin into out. */
static bool auth_bin(remo__rd *rd, unsigned char *out, size_t len)
{
	remo__tok t;
	if (remo__wire_next(rd, &t) != REMO_OK || t.type != REMO__T_BIN ||
	    t.n != len)
		return false;
	memcpy(out, t.v.p, len);
	return true;
}

int remo__session_auth(remo_session *s,
                       const unsigned char nonce[REMO__NONCE_LEN])
{
	int64_t deadline = remo__deadline_ms(s->opts.handshake_ms);
	remo_buf b = {0};
	remo__rd rd;
	uint32_t n = 0;
	uint64_t type, version, max_message, max_depth;
	unsigned char peer[REMO__NONCE_LEN], mine[REMO__PROOF_LEN];
	unsigned char want[REMO__PROOF_LEN], got[REMO__PROOF_LEN];

	/* the peer's HELLO, which must carry a nonce */
	int rc = auth_recv(s, deadline, &b, &rd, &n, &type);
	if (rc == REMO_OK && type == MSG_REFUSED && n == 2)
		rc = remo__read_uint(&rd, &version) ? remo__refused_status(version)
		                              : REMO_EPROTO; /* its reason */
	else if (rc == REMO_OK && type != MSG_HELLO)
		rc = REMO_EPROTO;
	if (rc == REMO_OK &&
	    (!remo__read_uint(&rd, &version) ||
	     !remo__read_uint(&rd, &max_message) ||
	     !remo__read_uint(&rd, &max_depth) || version != PROTO_VERSION ||
	     max_message < 64 || n < 4 || n > 6))
		rc = REMO_EPROTO;
	if (rc == REMO_OK && n == 4)
		rc = REMO_EAUTH; /* the peer has no secret */
	remo__tok t;
	remo__rd at = rd;
	if (rc == REMO_OK && remo__wire_next(&at, &t) == REMO_OK &&
	    t.type == REMO__T_NIL)
		rc = REMO_EAUTH; /* nil where the nonce goes: no secret */
	if (rc == REMO_OK && !auth_bin(&rd, peer, sizeof peer))
		rc = REMO_EPROTO;
	uint64_t lease = 0;
	if (rc == REMO_OK && n == 6 &&
	    (!remo__read_uint(&rd, &lease) || lease > INT32_MAX))
		rc = REMO_EPROTO;
	/* our own nonce back: its proof would be ours, played back */
	if (rc == REMO_OK && CRYPTO_memcmp(peer, nonce, sizeof peer) == 0)
		rc = REMO_EAUTH;

	/* our proof, then the peer's */
	if (rc == REMO_OK)
		rc = auth_proof(s, peer, nonce, mine);
	if (rc == REMO_OK) {
		int64_t hdr[1] = {MSG_AUTH};
		remo_value v = remo_bytes(mine, sizeof mine);
		rc = remo_ok(v) ? remo__send_msg(s, hdr, 1, &v, 1) : REMO_ENOMEM;
		remo_value_release(v);
	}
	if (rc == REMO_OK)
		rc = auth_recv(s, deadline, &b, &rd, &n, &type);
	if (rc == REMO_OK && (type != MSG_AUTH || n != 2))
		/* a BYE: the peer refused our proof */
		rc = type == MSG_BYE ? REMO_EAUTH : REMO_EPROTO;
	if (rc == REMO_OK && !auth_bin(&rd, got, sizeof got))
		rc = REMO_EPROTO;
	if (rc == REMO_OK)
		rc = auth_proof(s, nonce, peer, want);
	if (rc == REMO_OK && CRYPTO_memcmp(got, want, sizeof want) != 0)
		rc = REMO_EAUTH;
	if (rc == REMO_OK) {
		s->peer_max_message = max_message;
		s->peer_lease_ms = (int64_t)lease;
		s->hello_seen = true;
	} else if (rc == REMO_EAUTH) {
		/* say so, so that a peer whose proof we refused hears it by
		 * name rather than as a lost connection */
		int64_t bye[1] = {MSG_BYE};
		remo__send_msg(s, bye, 1, NULL, 0);
	}
	OPENSSL_cleanse(mine, sizeof mine);
	OPENSSL_cleanse(want, sizeof want);
	remo_buf_free(&b);
	return rc;
}

int remo_secret_load(const char *path, void *buf, size_t cap, size_t *len)
{
	if (path == NULL || buf == NULL || len == NULL)
		return remo__fail(REMO_EINVAL, "remo_secret_load");
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return remo__fail(REMO_ENOTFOUND, path);
		remo__raisef("PermissionError", "%s: %s", path, strerror(errno));
		return REMO_EINVAL;
	}
	struct stat st;
	int rc = REMO_OK;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		remo__raisef("PermissionError", "%s: not a regular file", path);
		rc = REMO_EINVAL;
	} else if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		remo__raisef("PermissionError",
		             "%s: a secret must be this user's and readable by "
		             "nobody else (mode %04o, owner %u: chmod 600)",
		             path, (unsigned)(st.st_mode & 07777),
		             (unsigned)st.st_uid);
		rc = REMO_EINVAL;
	}
	size_t got = 0;
	while (rc == REMO_OK) {
		if (got == cap) { /* one more byte would not fit */
			char c;
			ssize_t r = read(fd, &c, 1);
			if (r == 1 && !(c == '\n' && read(fd, &c, 1) == 0))
				rc = REMO_ETOOBIG;
			break;
		}
		ssize_t r = read(fd, (char *)buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			remo__raisef("PermissionError", "%s: %s", path,
			             strerror(errno));
			rc = REMO_EINVAL;
		}
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (rc == REMO_ETOOBIG) {
		remo__raisef("ValueError", "%s: longer than %zu bytes", path, cap);
		rc = REMO_EINVAL;
	}
	if (rc == REMO_OK && got > 0 && ((char *)buf)[got - 1] == '\n')
		got--;
	if (rc == REMO_OK && got < REMO_MIN_SECRET) {
		remo__raisef("ValueError", "%s: a secret needs %d bytes or more, "
		             "this one has %zu", path, REMO_MIN_SECRET, got);
		rc = REMO_EINVAL;
	}
	if (rc != REMO_OK) {
		OPENSSL_cleanse(buf, cap);
		return rc;
	}
	*len = got;
	return REMO_OK;
}
