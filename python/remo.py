"""remo.py -- a Python client of remo sessions, from doc/wire.md.

    import remo
    s = remo.connect("unix:///tmp/ts.sock")        # or tcp://HOST:PORT
    out = s.lookup("out")                          # a Ref to a callable
    s.call(out, ("job", 1))                        # out(("job", 1))
    s.call(take, pattern, timeout=2.0)             # TimeoutError past it

What it speaks: the stream transport's framing (a 4-byte big-endian
length before each message), HELLO, MULTI, REQ (LOOKUP, GETATTR, CALL, CALLM,
LEN, GETITEM, SETITEM, CONTAINS, with the DEADLINE flag for a timeout),
REPLY, ERROR, SHAPE, PING (sent every half of the lease the server
tells in HELLO, so its lease never runs out), CANCEL (at a timeout, then the server's answer is
waited for: a tuple space's tuple that was already on its way is
returned, not lost), BYE.  Values, as section 2 maps them: None, bool,
int, float, str, bytes, tuple (an array), list (extension 1, sent by
value), dict (a map, sent by value), remo errors (RemoteError), and
references (Ref: objects, callables, frames, tracebacks of the peer,
sent back with the home bit).

Callbacks: s.function(fn, "?(x:r)") makes a Python callable the peer
can call (its signature in remo's grammar, as remo_function takes it);
the peer's calls are served in the thread that waits for a reply, as C
remo serves callbacks, so a tuple space can ask a Python predicate
during the in_ that carries it, and the predicate may use the session.

Also: secrets (AUTH, doc/wire.md 7.1: connect(url, secret=...)),
tls:// (connect(url, cafile=...)), references released when Python drops
them (RELEASE, counted as 7.3 says), async calls (call_async: a Future),
errors as classes named after the remote error and derived from
Python's built-in of that name (except ZeroDivisionError catches the
peer's), dir() and iteration from shapes, and pm(): a post-mortem
prompt on a remote traceback.

serve_in_background() serves the peer's calls while no call of ours
waits (a tuple space's subscription), reading whenever the session is
idle.  Not built: pipelining.  A session's calls are one at a time (a
lock); use a session per thread for calls in parallel.
"""
import cmd
import collections
import hashlib
import hmac
import os
import secrets
import socket
import ssl
import struct
import sys
import threading
import time
import weakref

import msgpack

VERSION = 1
MAX_MESSAGE = 16 << 20
PING_S = 2.0

HELLO, REQ, REPLY, ERROR, RELEASE, SHAPE, BYE, PING = 0, 1, 2, 3, 4, 5, 6, 7
DROP, BATCH, MULTI, AUTH, REFUSED, CANCEL = 8, 9, 10, 11, 12, 13
LOOKUP, GETATTR, SETATTR, CALL, CALLM, LEN, GETITEM, SETITEM, CONTAINS = \
    1, 2, 3, 4, 5, 6, 7, 8, 9
DEADLINE = 0x800
EXT_LIST, EXT_ERROR = 1, 2
REF_KINDS = {3: "object", 4: "callable", 5: "frame", 6: "traceback"}
# PING this often when the server tells no lease in its HELLO
HOME = 1 << 63


class RemoteError(Exception):
    """An error the peer raised, by name (remo's errors cross by name).
    Each name is its own class (remo.error_class), derived from Python's
    built-in of the same name where there is one, so that
    `except ZeroDivisionError` catches the peer's ZeroDivisionError.
    traceback is the peer's Traceback (a Ref), session the session it
    came by: remo.pm(e) walks it."""

    def __init__(self, name, message, attrs=None, traceback=None,
                 session=None):
        Exception.__init__(self, "%s: %s" % (name, message))
        self.name, self.message = name, message
        self.attrs, self.traceback = attrs or {}, traceback
        self.session = session

    def __str__(self):
        return "%s: %s" % (self.name, self.message)


# remo's hierarchy (src/value/errname.c): each name's parent
_REMO_PARENTS = {
    "TypeError": "Error", "ValueError": "Error", "LookupError": "Error",
    "KeyError": "LookupError", "IndexError": "LookupError",
    "AttributeError": "Error", "ArithmeticError": "Error",
    "ZeroDivisionError": "ArithmeticError",
    "OverflowError": "ArithmeticError", "MemoryError": "Error",
    "TimeoutError": "Error", "CancelledError": "Error", "Crash": "Error",
    "ConnectionError": "Error", "PeerLost": "ConnectionError",
    "PermissionError": "Error", "AuthenticationError": "PermissionError",
    "ProtocolError": "Error", "NotFound": "Error", "OSError": "Error",
    "RecursionError": "Error", "LimitError": "Error",
    "ReferenceError": "LookupError",
}
# Python's built-ins a remo name is caught as
_BUILTINS = {
    "TypeError": TypeError, "ValueError": ValueError,
    "LookupError": LookupError, "KeyError": KeyError,
    "IndexError": IndexError, "AttributeError": AttributeError,
    "ArithmeticError": ArithmeticError,
    "ZeroDivisionError": ZeroDivisionError,
    "OverflowError": OverflowError, "MemoryError": MemoryError,
    "TimeoutError": TimeoutError, "ConnectionError": ConnectionError,
    "PermissionError": PermissionError, "OSError": OSError,
    "RecursionError": RecursionError, "ReferenceError": ReferenceError,
    "NotImplementedError": NotImplementedError,
    "FileNotFoundError": FileNotFoundError,
}
_classes = {"Error": RemoteError}


def error_class(name):
    """The class of the peer's errors named name: a RemoteError, and the
    built-in of that name (or of its nearest remo ancestor's) if Python
    has one."""
    c = _classes.get(name)
    if c is not None:
        return c
    parent = error_class(_REMO_PARENTS.get(name, "Error"))
    bases = (parent,)
    b = _BUILTINS.get(name)
    if b is not None and not issubclass(parent, b):
        bases = (parent, b)
    try:
        c = type(name if name.isidentifier() else "RemoteError", bases, {})
    except TypeError:  # built-ins whose layouts conflict
        c = type(name if name.isidentifier() else "RemoteError",
                 (parent,), {})
    _classes[name] = c
    return c


def _error(name, message, attrs=None, traceback=None, session=None):
    return error_class(name)(name, message, attrs, traceback, session)


class Home:
    """A reference with the home bit: one of ours, going back to us."""

    def __init__(self, ext, ident):
        self.ext, self.id = ext, ident


class LocalFn:
    """A Python callable exported to the peer (Session.function)."""

    def __init__(self, fn, ident, shape):
        self.fn, self.id, self.shape = fn, ident, shape

    def __call__(self, *args):
        return self.fn(*args)


class Ref:
    """A reference to one of the peer's objects, callables, frames or
    tracebacks: usable as a call's target or argument on its session."""

    def __init__(self, ext, ident, shape):
        self.ext, self.id, self.shape = ext, ident, shape

    @property
    def kind(self):
        return REF_KINDS[self.ext]

    def __repr__(self):
        return "<remo %s %d>" % (self.kind, self.id)

    def __eq__(self, other):
        return isinstance(other, Ref) and (self.ext, self.id) == \
            (other.ext, other.id)

    def __hash__(self):
        return hash((self.ext, self.id))


def _to_wire(v):
    """Python to what msgpack packs as remo's encoding (section 2)."""
    if isinstance(v, Proxy):
        v = object.__getattribute__(v, "_ref")
    if isinstance(v, Ref):
        body = struct.pack(">QI", HOME | v.id, 0)  # going home
        return msgpack.ExtType(v.ext, body)
    if isinstance(v, LocalFn):
        return msgpack.ExtType(4, struct.pack(">QI", v.id, v.shape))
    if isinstance(v, tuple):
        return [_to_wire(x) for x in v]
    if isinstance(v, list):
        return msgpack.ExtType(EXT_LIST, _pack([_to_wire(x) for x in v]))
    if isinstance(v, dict):
        return {_to_wire(k): _to_wire(x) for k, x in v.items()}
    if isinstance(v, (type(None), bool, int, float, str, bytes)):
        return v
    raise TypeError("remo cannot send a %s" % type(v).__name__)


def _pack(v):
    return msgpack.packb(v, use_bin_type=True)


def _ext_hook(code, data, session=None):
    if code == EXT_LIST:
        return list(_unpack(data, session))
    if code == EXT_ERROR:
        name, message, attrs, tb = _unpack(data, session)
        return _error(name, message, attrs, tb, session)
    if code in REF_KINDS:
        if len(data) != 12:
            raise ValueError("a reference's body is 12 bytes")
        word, shape = struct.unpack(">QI", data)
        if word & HOME:
            return Home(code, word & ~HOME)
        if session is None:
            return Ref(code, word, shape)
        return session._arrived(code, word, shape)
    raise ValueError("unknown extension %d" % code)


def _unpack(data, session=None):
    # arrays are tuples; keys may be any hashable remo value
    return msgpack.unpackb(data, raw=False, use_list=False,
                           strict_map_key=False,
                           ext_hook=lambda c, d: _ext_hook(c, d, session))


class Future:
    """An async call (Session.call_async): result() waits for it."""

    def __init__(self, session, rid, timeout):
        self.session, self.rid, self.timeout = session, rid, timeout
        self._done, self._value, self._error = False, None, None

    def result(self, timeout=None):
        """Its result, or its error raised; waits up to timeout seconds
        (None: the call's own timeout, or for ever): TimeoutError past
        it, the call still running."""
        if not self._done:
            try:
                self._value = self.session._wait(self.rid, self.timeout,
                                                 timeout)
            except RemoteError as e:
                if isinstance(e, _Pending):
                    raise _error("TimeoutError", "not answered yet")
                self._error = e
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value

    def done(self):
        """Whether its answer has come (reads what has arrived)."""
        if not self._done:
            self.session._poll()
            return self.rid in self.session.replies
        return True


class _Pending(RemoteError):
    pass


class Session:
    def __init__(self, sock, secret=None):
        self.sock = sock
        self.due = collections.deque()  # (id, count) pairs to RELEASE
        self.refs = weakref.WeakValueDictionary()  # id -> live Ref
        self.counts = {}      # id -> times it arrived
        self.released = 0     # pairs sent, for tests
        self.send_lock = threading.Lock()
        self.call_lock = threading.RLock()  # callbacks call again
        self.reqid = 0
        self.exports = {}     # our id -> LocalFn
        self.next_shape = 16
        self.replies = {}     # reqid -> message, read by a nested wait
        self.inbox = []       # the rest of a MULTI, in order
        self.serving = []     # (peer's reqid, depth) being served
        self.shapes = {}
        self.closed = False
        self.peer_max = MAX_MESSAGE
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and not 16 <= len(secret) <= 1024:
            raise ValueError("a secret has 16 to 1024 bytes")
        nonce = secrets.token_bytes(32) if secret is not None else None
        # [0, version, max_message, max_call_depth, nonce or nil,
        #  lease_ms]: 0, this side keeps no lease (doc/wire.md 7.1)
        self._send([HELLO, VERSION, MAX_MESSAGE, 32, nonce, 0])
        hello = self._recv(10.0)
        if hello[0] == REFUSED:
            if hello[1] == 18:
                raise _error("AuthenticationError", "refused by the "
                             "server: it asks for a secret")
            raise _error("ConnectionError",
                         "refused by the server (status %d)" % hello[1])
        if hello[0] != HELLO or hello[1] != VERSION:
            raise _error("ProtocolError", "no HELLO version 1")
        asks = len(hello) >= 5 and hello[4] is not None  # its nonce
        if asks != (secret is not None):
            self._bye()
            raise _error("AuthenticationError",
                         "the server asks for a secret" if asks
                         else "the server has no secret")
        # the server's lease (ms): speak at least every half of it
        lease = hello[5] if len(hello) >= 6 else 0
        self.ping_s = lease / 2000.0 if lease else PING_S
        if secret is not None:
            # doc/wire.md 7.1: HMAC-SHA-256 over "remo-auth-1", the
            # peer's nonce, then ours; the peer's over ours, then its
            theirs = hello[4]
            if not isinstance(theirs, bytes) or len(theirs) != 32 or \
                    theirs == nonce:
                self._bye()
                raise _error("AuthenticationError", "a bad nonce")
            mine = hmac.new(secret, b"remo-auth-1" + theirs + nonce,
                            hashlib.sha256).digest()
            self._send([AUTH, mine])
            want = hmac.new(secret, b"remo-auth-1" + nonce + theirs,
                            hashlib.sha256).digest()
            try:
                proof = self._recv(10.0)
            except (RemoteError, OSError):
                proof = [BYE]  # it closed: it refused our proof
            if proof[0] != AUTH or not isinstance(proof[1], bytes) or \
                    not hmac.compare_digest(proof[1], want):
                self._bye()
                raise _error("AuthenticationError",
                             "the server did not prove the secret")
        self.peer_max = hello[2]
        self.pinger = threading.Thread(target=self._ping, daemon=True)
        self.pinger.start()

    def _bye(self):
        """BYE, then closed; the peer may have closed first."""
        try:
            self._send([BYE])
        except OSError:
            pass
        self.closed = True
        self.sock.close()

    # ---- framing --------------------------------------------------------
    def _send(self, msg):
        if self.due and msg[0] != RELEASE:
            due = []
            while self.due:  # popleft: safe against a finalizer's append
                due.append(self.due.popleft())
            flat = tuple(x for pair in due for x in pair)
            self.released += len(due)
            self._send([RELEASE, flat])
        data = _pack(msg)
        if len(data) > self.peer_max:
            raise _error("LimitError", "a message of %d bytes, over "
                              "the peer's %d" % (len(data), self.peer_max))
        with self.send_lock:
            self.sock.sendall(struct.pack(">I", len(data)) + data)

    def _read_exact(self, n, deadline):
        buf = b""
        while len(buf) < n:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                self.closed = True
                raise _error("PeerLost", "the peer went away")
            buf += chunk
        return buf

    def _recv(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        (n,) = struct.unpack(">I", self._read_exact(4, deadline))
        if n > MAX_MESSAGE:
            raise _error("ProtocolError", "a message over our limit")
        # a message begun is read whole
        return _unpack(self._read_exact(n, None), self)

    # ---- references: counted, released when Python drops them (7.3) ----
    def _arrived(self, ext, ident, shape):
        r = self.refs.get(ident)
        if r is None:
            r = Ref(ext, ident, shape)
            self.refs[ident] = r
            weakref.finalize(r, self._dropped, ident)
        self.counts[ident] = self.counts.get(ident, 0) + 1
        return r

    def _dropped(self, ident):
        # may run in any thread, at any allocation: only queue it
        n = self.counts.pop(ident, 0)
        if n and not self.closed:
            self.due.append((ident, n))

    def _ping(self):
        while not self.closed:
            time.sleep(self.ping_s)
            try:
                self._send([PING])
            except OSError:
                return

    # ---- requests -------------------------------------------------------
    def request(self, op, target=None, a=None, b=None, timeout=None):
        """One request, waited for: its reply's value, or RemoteError.
        With a timeout (seconds) the server is told the deadline; past it
        the request is cancelled, and TimeoutError raised unless the
        answer had already left."""
        with self.call_lock:
            return self._wait(self._start(op, target, a, b, timeout),
                              timeout)

    def _start(self, op, target, a, b, timeout):
        with self.call_lock:
            self.reqid += 1
            rid = self.reqid
            cause, depth = self.serving[-1] if self.serving else (0, 0)
            if timeout is None:
                msg = [REQ, rid, cause, depth + 1, op, _to_wire(target),
                       _to_wire(a), _to_wire(b)]
            else:
                ms = max(0, min(int(timeout * 1000), 2 ** 31 - 1))
                msg = [REQ, rid, cause, depth + 1, op | DEADLINE, ms,
                       _to_wire(target), _to_wire(a), _to_wire(b)]
            self._send(msg)
            return rid

    def call_async(self, fn, *args, timeout=None):
        """fn(*args) started, not waited for: a Future.  Several may be
        in flight; each one's result() reads until its answer."""
        return Future(self, self._start(CALL, fn, tuple(args), None,
                                        timeout), timeout)

    def call_method_async(self, obj, name, *args, timeout=None):
        return Future(self, self._start(CALLM, obj, name, tuple(args),
                                        timeout), timeout)

    def _poll(self):
        """Reads what has arrived, without waiting."""
        with self.call_lock:
            try:
                self._wait(0, None, 0.001)
            except _Pending:
                pass

    def _wait(self, rid, timeout, wait=None):
        """Reads until rid's answer (serving the peer's callbacks and
        keeping other answers for their waiters).  timeout: the call's
        own (cancelled past it); wait: how long this wait may last
        (_Pending past it, the call going on)."""
        with self.call_lock:
            cancelled = False
            deadline = None if timeout is None else \
                time.monotonic() + timeout
            until = None if wait is None else time.monotonic() + wait
            while True:
                ends = [t for t in (deadline, until) if t is not None]
                left = None if not ends else \
                    max(0.0, min(ends) - time.monotonic())
                try:
                    m = self.replies.pop(rid, None) or \
                        (self.inbox.pop(0) if self.inbox else
                         self._recv(left))
                except socket.timeout:
                    if until is not None and time.monotonic() >= until:
                        raise _Pending("TimeoutError", "pending")
                    if cancelled:
                        raise _error("TimeoutError", "no answer to "
                                     "the cancel either")
                    self._send([CANCEL, rid])
                    cancelled = True
                    deadline = time.monotonic() + 1.0  # the grace
                    continue
                kind = m[0]
                if kind in (MULTI, BATCH):  # several, in order
                    self.inbox[:0] = list(m[1:])
                elif kind == SHAPE:
                    self.shapes[m[1]] = m[2]
                elif kind in (PING, RELEASE, DROP):
                    pass
                elif kind == BYE:
                    self.closed = True
                    raise _error("PeerLost", "the peer ended the session" +
                                 (": " + m[2] if len(m) == 3 else ""))
                elif kind == REPLY and m[1] == rid:
                    return m[2]
                elif kind == ERROR and m[1] == rid:
                    e = m[2]
                    if cancelled and e.name == "CancelledError":
                        raise _error("TimeoutError", "timed out "
                                     "after %.3f s" % timeout)
                    raise e
                elif kind in (REPLY, ERROR):
                    self.replies[m[1]] = m  # an outer wait's
                elif kind == REQ:
                    self._serve(m)

    def serve_in_background(self, poll=0.05):
        """Serves the peer's calls of our functions while no call of ours
        waits (a subscription's notifications, a callback kept for
        later): a daemon thread reads whenever the session is idle, each
        look at most poll seconds, so a call of ours waits that long at
        most for it.  Once per session; returns the thread."""
        if getattr(self, "_server", None) is not None:
            return self._server

        def loop():
            while not self.closed:
                with self.call_lock:
                    try:
                        self._wait(0, None, poll)
                    except _Pending:
                        pass
                    except (RemoteError, OSError):
                        return
                time.sleep(0.001)  # a caller may take the lock now
        self._server = threading.Thread(target=loop, daemon=True)
        self._server.start()
        return self._server

    def function(self, fn, sig, name=None, doc=""):
        """fn as a callable the peer can call: sig is its signature in
        remo's grammar ("?(x:r)": a bool from one value; "v(t:r)"...)."""
        with self.call_lock:
            ident = len(self.exports) + 1
            shape = self.next_shape
            self.next_shape += 1
            name = name or getattr(fn, "__name__", "fn")
            if not name.isidentifier():
                name = "fn"
            self._send([SHAPE, shape, ["F", name, sig, doc]])
            f = LocalFn(fn, ident, shape)
            self.exports[ident] = f
            return f

    def _serve(self, m):
        """A request of the peer's, read while we wait: a call of one of
        our functions; anything else is refused by name."""
        op = m[4]
        args_at = 6 if op & DEADLINE else 5
        target, a = m[args_at], m[args_at + 1]
        oneway = op & 0x200
        try:
            if op & 0xFF != CALL or not isinstance(target, Home) or \
                    target.id not in self.exports:
                raise _error("NotImplementedError", "this Python "
                                  "client serves calls of its functions "
                                  "only")
            self.serving.append((m[1], m[3]))
            try:
                result = self.exports[target.id](*(a or ()))
            finally:
                self.serving.pop()
            if not oneway:
                self._send([REPLY, m[1], _to_wire(result)])
        except Exception as e:
            if oneway:
                return
            name = e.name if isinstance(e, RemoteError) else \
                type(e).__name__
            msg = e.message if isinstance(e, RemoteError) else str(e)
            self._send([ERROR, m[1], msgpack.ExtType(
                EXT_ERROR, _pack([name, msg, {}, None]))])

    def lookup(self, name):
        return self.request(LOOKUP, None, name)

    def call(self, fn, *args, timeout=None):
        return self.request(CALL, fn, tuple(args), timeout=timeout)

    def call_method(self, obj, name, *args, timeout=None):
        return self.request(CALLM, obj, name, tuple(args), timeout=timeout)

    def getattr(self, obj, name):
        return self.request(GETATTR, obj, name)

    def len(self, obj):
        return self.request(LEN, obj)

    def getitem(self, obj, key):
        return self.request(GETITEM, obj, key)

    def setitem(self, obj, key, value):
        return self.request(SETITEM, obj, key, value)

    def contains(self, obj, key):
        return self.request(CONTAINS, obj, key)

    def proxy(self, ref):
        """ref as a Proxy: Python's own syntax for the peer's object."""
        return Proxy(self, ref) if isinstance(ref, Ref) else ref

    def fields(self, ref):
        """The field names of ref's shape and its bases'."""
        names, shape = [], self.shapes.get(ref.shape)
        while shape is not None and shape[0] == "T":
            names += [f[0] for f in shape[4]]
            shape = self.shapes.get(shape[2]) if shape[2] else None
        return names

    def members(self, ref):
        """The field and method names of ref's shape and its bases'."""
        if ref.shape == 1:
            return ["append", "extend", "insert", "pop", "delete",
                    "remove", "clear", "index", "slice"]
        if ref.shape == 2:
            return ["pop", "setdefault", "get", "delete", "clear",
                    "update", "keys", "values", "items"]
        names, shape = [], self.shapes.get(ref.shape)
        while shape is not None and shape[0] == "T":
            names += [f[0] for f in shape[4]] + [m[0] for m in shape[5]]
            shape = self.shapes.get(shape[2]) if shape[2] else None
        return names

    def type_name(self, ref):
        shape = self.shapes.get(ref.shape)
        return {1: "list", 2: "dict"}.get(ref.shape) or \
            (shape[1] if shape else None)

    def close(self):
        if self.closed:
            self.sock.close()
        else:
            self._bye()


class Proxy:
    """One of the peer's objects, lists or dicts in Python's syntax:
    p[k], p[k] = v, del p[k], len(p), k in p, p.method(args...), p(args)
    are requests on its session; what comes back that is a reference is
    a Proxy too, so pod["foo"]["baz"].append("fizz") changes the peer's
    nested list in place."""

    def __init__(self, session, ref):
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_ref", ref)

    def _wrap(self, v):
        return object.__getattribute__(self, "_session").proxy(v)

    def _s(self):
        return object.__getattribute__(self, "_session")

    def _r(self):
        return object.__getattribute__(self, "_ref")

    def __setattr__(self, name, value):
        self._s().request(SETATTR, self._r(), name, value)

    def __getitem__(self, key):
        return self._wrap(self._s().getitem(self._r(), key))

    def __setitem__(self, key, value):
        self._s().setitem(self._r(), key, value)

    def __delitem__(self, key):
        self._s().call_method(self._r(), "delete", key)

    def __len__(self):
        return self._s().len(self._r())

    def __contains__(self, key):
        return self._s().contains(self._r(), key)

    def __call__(self, *args, timeout=None):
        return self._wrap(self._s().call(self._r(), *args, timeout=timeout))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._s().fields(self._r()):  # a field: its value
            return self._wrap(self._s().getattr(self._r(), name))

        def method(*args, timeout=None):
            return self._wrap(self._s().call_method(self._r(), name, *args,
                                                    timeout=timeout))
        return method

    def copy(self):
        """A local copy of a remote list (or a dict's keys): its items by
        value, through the container protocol's slice (or keys)."""
        kind = self._r().shape
        items = self._s().call_method(self._r(), "slice" if kind == 1
                                      else "keys")
        return list(items)

    def __iter__(self):
        """A remote list's items, a remote dict's keys (one round trip:
        a copy taken at one instant)."""
        if self._r().shape not in (1, 2):
            raise TypeError("a remote %s is not iterable" %
                            self._s().type_name(self._r()))
        return iter([self._wrap(x) for x in self.copy()])

    def __dir__(self):
        """The fields and methods its shape names (its type's and its
        bases'), with no round trip."""
        return self._s().members(self._r())

    def __repr__(self):
        return "<remo proxy %r>" % (self._r(),)


def connect(url, timeout=10.0, secret=None, cafile=None, certfile=None,
            keyfile=None):
    """A session with the server at unix://PATH, tcp://HOST:PORT or
    tls://HOST:PORT.  secret (bytes or str, 16 to 1024 bytes; or
    secret_file(path)) proves the server's shared secret without sending
    it (doc/wire.md 7.1).  tls:// checks the server's certificate
    against cafile (else the system's), and presents certfile/keyfile
    if given (mutual TLS)."""
    if url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(url[len("unix://"):])
    elif url.startswith(("tcp://", "tls://")):
        host, _, port = url[len("tcp://"):].rpartition(":")
        host = host.strip("[]")
        sock = socket.create_connection((host, int(port)), timeout)
        if url.startswith("tls://"):
            ctx = ssl.create_default_context(cafile=cafile)
            if certfile is not None:
                ctx.load_cert_chain(certfile, keyfile)
            sock = ctx.wrap_socket(sock, server_hostname=host)
    else:
        raise ValueError("remo.py speaks unix://, tcp:// and tls:// "
                         "(not %s)" % url)
    return Session(sock, secret)


def secret_file(path):
    """A secret from a file, checked as remo_secret_load checks it: owned
    by this user, readable by nobody else; one trailing newline is not
    part of it."""
    st = os.stat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise _error("PermissionError", "%s: group or others may read "
                     "it, or another user owns it" % path)
    with open(path, "rb") as f:
        data = f.read()
    return data[:-1] if data.endswith(b"\n") else data


# ---- post-mortem on a remote traceback ---------------------------------------

class _PM(cmd.Cmd):
    """pdb's commands on a remote traceback's frames (remo.pm)."""

    prompt = "(remo-pm) "

    def __init__(self, error, frames, stdin=None, stdout=None):
        super().__init__(stdin=stdin, stdout=stdout)
        if stdin is not None:
            self.use_rawinput = False
        self.error, self.frames, self.i = error, frames, 0

    def _frame(self):
        return self.frames[self.i]

    def _show(self):
        f = self._frame()
        self.stdout.write("> #%d %s (%s:%s)\n" % (self.i, f["function"],
                                                  f["file"], f["line"]))

    def preloop(self):
        e = self.error
        self.stdout.write("%s: %s\n" % (e.name, e.message))
        self._show()

    def do_where(self, arg):
        """where: the frames, innermost first; > marks the current one"""
        for k, f in enumerate(self.frames):
            self.stdout.write("%s #%d %s (%s:%s)\n" % (
                ">" if k == self.i else " ", k, f["function"], f["file"],
                f["line"]))
    do_bt = do_w = do_where

    def do_up(self, arg):
        """up: the caller's frame (outward)"""
        if self.i + 1 < len(self.frames):
            self.i += 1
        self._show()
    do_u = do_up

    def do_down(self, arg):
        """down: the callee's frame (inward)"""
        if self.i > 0:
            self.i -= 1
        self._show()
    do_d = do_down

    def do_list(self, arg):
        """list: the source around the current line (the server reads
        it: only files of this traceback's frames)"""
        f = self._frame()
        try:
            text = self.error.session.call_method(
                self.error.traceback, "source", f["file"], f["line"] or 1, 5)
        except RemoteError as e:
            text = "%s: %s\n" % (e.name, e.message)
        self.stdout.write(text if isinstance(text, str) else repr(text))
    do_l = do_list

    def do_locals(self, arg):
        """locals: the current frame's recorded locals"""
        loc = self._frame()["locals"]
        if not loc:
            self.stdout.write("(no locals recorded)\n")
        for k, v in loc.items():
            self.stdout.write("%s = %r\n" % (k, v))

    def do_p(self, arg):
        """p NAME: a local's value"""
        loc = self._frame()["locals"]
        if arg.strip() in loc:
            self.stdout.write("%r\n" % (loc[arg.strip()],))
        else:
            self.stdout.write("*** NameError: %s\n" % arg.strip())

    def do_quit(self, arg):
        """quit: leave the prompt"""
        return True
    do_q = do_exit = do_quit

    def do_EOF(self, arg):
        self.stdout.write("\n")
        return True


def pm(error=None, stdin=None, stdout=None):
    """A post-mortem prompt on a remote error's traceback, as pdb.pm():
    the frames (where, up, down), their source lines (list, read by the
    server from the traceback's own files) and their recorded locals
    (locals, p NAME).  error: the RemoteError (default: the last
    uncaught one, sys.last_value, or the one being handled)."""
    if error is None:
        error = getattr(sys, "last_value", None) or sys.exc_info()[1]
    if not isinstance(error, RemoteError) or error.traceback is None or \
            error.session is None:
        raise ValueError("remo.pm needs a remote error with a traceback")
    rows = error.session.call_method(error.traceback, "summary")
    frames = []
    for r in rows or ():
        pairs = r[8] or ()
        frames.append({"function": r[0], "file": r[1], "line": r[2],
                       "locals": dict(zip(pairs[0::2], pairs[1::2]))})
    if not frames:
        raise ValueError("the traceback has no frames")
    _PM(error, frames, stdin, stdout).cmdloop()
