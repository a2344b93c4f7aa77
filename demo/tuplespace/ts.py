"""ts.py -- the tuple space's Python client, on python/remo.py.

    from ts import Space
    sp = Space("unix:///tmp/ts.sock")
    sp.out(("add", 1, 2, 3, 4))
    t = sp.in_(("sum", sp.any("int")), timeout=5.0)

The same space the C clients use (ts.h): tuples are Python tuples, lists
and dicts in them go by value, wildcards come from the server (any()),
in_/rd wait (TimeoutError by name past timeout, and nothing is lost),
inp/rdp return None when nothing matches.  A predicate (a Python
callable made with sp.s.function(fn, "?(x:r)")) is asked while the call
that carries it waits; subscribe() serves the space's notifications in a
background thread.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python"))
import remo  # noqa: E402


class Space:
    def __init__(self, url, secret=None):
        self.s = remo.connect(url, secret=secret)
        self.fns = {name: self.s.lookup(name) for name in
                    ("out", "take", "read", "takep", "readp", "any",
                     "count")}
        self.wild = {}

    def any(self, kind):
        if kind not in self.wild:
            self.wild[kind] = self.s.call(self.fns["any"], kind)
        return self.wild[kind]

    def out(self, t):
        self.s.call(self.fns["out"], t)

    def in_(self, pattern, timeout=None):
        return self.s.call(self.fns["take"], pattern, timeout=timeout)

    def rd(self, pattern, timeout=None):
        return self.s.call(self.fns["read"], pattern, timeout=timeout)

    def inp(self, pattern):
        return self.s.call(self.fns["takep"], pattern)

    def rdp(self, pattern):
        return self.s.call(self.fns["readp"], pattern)

    def count(self):
        return self.s.call(self.fns["count"])

    def subscribe(self, pattern, fn):
        """fn(t) for every tuple put in from now on that matches pattern,
        in order (fn(None) once if the space ends the subscription: a
        subscriber too slow, or one that raised); the session serves
        those calls in a background thread.  The Subscription returned
        ends it with cancel()."""
        self.s.serve_in_background()
        cb = self.s.function(fn, "v(t:r)", name="notify")
        sub = self.s.call(self.s.lookup("subscribe"), pattern, cb)
        return self.s.proxy(sub)

    def close(self):
        self.s.close()
