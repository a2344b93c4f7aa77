"""remo.py -- a Python client of remo sessions, from doc/wire.md.

    import remo
    s = remo.connect("unix:///tmp/ts.sock")        # or tcp://HOST:PORT
    out = s.lookup("out")                          # a Ref to a callable
    s.call(out, ("job", 1))                        # out(("job", 1))
    s.call(take, pattern, timeout=2.0)             # TimeoutError past it

What it speaks: the stream transport's framing (a 4-byte big-endian
length before each message), HELLO, MULTI, REQ (LOOKUP, GETATTR, CALL, CALLM,
LEN, GETITEM, SETITEM, CONTAINS, with the DEADLINE flag for a timeout),
REPLY, ERROR, SHAPE, PING (sent every PING_S seconds, so the server's
lease never runs out), CANCEL (at a timeout, then the server's answer is
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

Not built (issue 14): secrets (AUTH), serving the peer's requests while
no call of ours waits (so no subscriptions), RELEASE (references the
server sent are released when the session ends), tls://, pipelining.
One call at a time per session (a lock); use a session per thread.
"""
import socket
import struct
import threading
import time

import msgpack

VERSION = 1
MAX_MESSAGE = 16 << 20
PING_S = 2.0

HELLO, REQ, REPLY, ERROR, RELEASE, SHAPE, BYE, PING = 0, 1, 2, 3, 4, 5, 6, 7
DROP, BATCH, MULTI, REFUSED, CANCEL = 8, 9, 10, 12, 13
LOOKUP, GETATTR, SETATTR, CALL, CALLM, LEN, GETITEM, SETITEM, CONTAINS = \
    1, 2, 3, 4, 5, 6, 7, 8, 9
DEADLINE = 0x800
EXT_LIST, EXT_ERROR = 1, 2
REF_KINDS = {3: "object", 4: "callable", 5: "frame", 6: "traceback"}
HOME = 1 << 63


class RemoteError(Exception):
    """An error the peer raised, by name (remo's errors cross by name)."""

    def __init__(self, name, message, attrs=None, traceback=None):
        super().__init__("%s: %s" % (name, message))
        self.name, self.message = name, message
        self.attrs, self.traceback = attrs or {}, traceback


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


def _ext_hook(code, data):
    if code == EXT_LIST:
        return list(_unpack(data))
    if code == EXT_ERROR:
        name, message, attrs, tb = _unpack(data)
        return RemoteError(name, message, attrs, tb)
    if code in REF_KINDS:
        if len(data) != 12:
            raise ValueError("a reference's body is 12 bytes")
        word, shape = struct.unpack(">QI", data)
        if word & HOME:
            return Home(code, word & ~HOME)
        return Ref(code, word, shape)
    raise ValueError("unknown extension %d" % code)


def _unpack(data):
    # arrays are tuples; keys may be any hashable remo value
    return msgpack.unpackb(data, raw=False, use_list=False,
                           strict_map_key=False, ext_hook=_ext_hook)


class Session:
    def __init__(self, sock):
        self.sock = sock
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
        self._send([HELLO, VERSION, MAX_MESSAGE, 32])
        hello = self._recv(10.0)
        if hello[0] == REFUSED:
            raise RemoteError("ConnectionError",
                              "refused by the server (status %d)" % hello[1])
        if hello[0] != HELLO or hello[1] != VERSION:
            raise RemoteError("ProtocolError", "no HELLO version 1")
        if len(hello) == 5:
            raise RemoteError("AuthenticationError",
                              "the server asks for a secret (not built)")
        self.peer_max = hello[2]
        self.pinger = threading.Thread(target=self._ping, daemon=True)
        self.pinger.start()

    # ---- framing --------------------------------------------------------
    def _send(self, msg):
        data = _pack(msg)
        if len(data) > self.peer_max:
            raise RemoteError("LimitError", "a message of %d bytes, over "
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
                raise RemoteError("PeerLost", "the peer went away")
            buf += chunk
        return buf

    def _recv(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        (n,) = struct.unpack(">I", self._read_exact(4, deadline))
        if n > MAX_MESSAGE:
            raise RemoteError("ProtocolError", "a message over our limit")
        # a message begun is read whole
        return _unpack(self._read_exact(n, None))

    def _ping(self):
        while not self.closed:
            time.sleep(PING_S)
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
            cancelled = False
            deadline = None if timeout is None else \
                time.monotonic() + timeout
            while True:
                left = None if deadline is None else \
                    max(0.0, deadline - time.monotonic())
                try:
                    m = self.replies.pop(rid, None) or \
                        (self.inbox.pop(0) if self.inbox else
                         self._recv(left))
                except socket.timeout:
                    if cancelled:
                        raise RemoteError("TimeoutError", "no answer to "
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
                    raise RemoteError("PeerLost", "the peer closed")
                elif kind == REPLY and m[1] == rid:
                    return m[2]
                elif kind == ERROR and m[1] == rid:
                    e = m[2]
                    if cancelled and e.name == "CancelledError":
                        raise RemoteError("TimeoutError", "timed out "
                                          "after %.3f s" % timeout)
                    raise e
                elif kind in (REPLY, ERROR):
                    self.replies[m[1]] = m  # an outer wait's
                elif kind == REQ:
                    self._serve(m)

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
                raise RemoteError("NotImplementedError", "this Python "
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

    def type_name(self, ref):
        shape = self.shapes.get(ref.shape)
        return {1: "list", 2: "dict"}.get(ref.shape) or \
            (shape[1] if shape else None)

    def close(self):
        if not self.closed:
            try:
                self._send([BYE])
            except OSError:
                pass
        self.closed = True
        self.sock.close()


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

    def __repr__(self):
        return "<remo proxy %r>" % (self._r(),)


def connect(url, timeout=10.0):
    """A session with the server at unix://PATH or tcp://HOST:PORT."""
    if url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(url[len("unix://"):])
    elif url.startswith("tcp://"):
        host, _, port = url[len("tcp://"):].rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)),
                                        timeout)
    else:
        raise ValueError("remo.py speaks unix:// and tcp:// (not %s)" % url)
    return Session(sock)
