"""test_python.py -- the Python client (python/remo.py, and the tuple
space's demo/tuplespace/ts.py) against a real remo-tuplespace: values
both ways, wildcards (the server's objects, sent back home), a blocking
in_ that times out by name and loses nothing, errors by name.

    python3 test_python.py URL
"""
import os
import sys

for demo in ("tuplespace", "pod"):
    sys.path.insert(0, os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "demo", demo))
from ts import Space  # noqa: E402
from pod import Pod  # noqa: E402
import remo  # noqa: E402

failures = 0


def check(what, cond):
    global failures
    print("%s: %s" % ("ok" if cond else "FAILED", what))
    failures += not cond


def main():
    sp = Space(sys.argv[1])
    # values both ways: a list and a dict go by value, come back equal
    t = ("v", 1, -2, 2 ** 40, 1.5, True, None, "é", b"\x00\x01",
         [1, [2, "x"]], {"k": [3], 4: "four"}, (5, (6,)))
    sp.out(t)
    got = sp.rdp(("v",) + tuple(sp.any("any") for _ in t[1:]))
    check("a tuple of every kind comes back equal", got == t)
    check("a list is a list", isinstance(got[9], list))
    check("an int key stays an int", got[10].get(4) == "four")
    # wildcards: references to the server's objects, sent back home
    w = sp.any("int")
    check("a wildcard is a reference", isinstance(w, remo.Ref))
    check("its type has its name", sp.s.type_name(w) == "Wildcard")
    check("inp with a wildcard takes it",
          sp.inp(("v", w) + tuple(sp.any("any") for _ in t[2:])) == t)
    check("inp of nothing is None", sp.inp(("v", w)) is None)
    # a blocking in_ that times out, by name, and loses nothing
    try:
        sp.in_(("late", w), timeout=0.2)
        check("in_ times out", False)
    except remo.RemoteError as e:
        check("in_ times out with TimeoutError", e.name == "TimeoutError")
    sp.out(("late", 7))
    check("after the timeout the tuple stays", sp.count() == 1)
    check("and is taken", sp.in_(("late", w), timeout=5.0) == ("late", 7))
    # a Python predicate, asked by the space during the call, which
    # itself uses the session (a nested call)
    for i in range(1, 5):
        sp.out(("n", i))
    even = sp.s.function(lambda x: x % 2 == 0, "?(x:r)", "even")
    check("a Python predicate picks the oldest even",
          sp.inp(("n", even)) == ("n", 2))

    def flag_up(x):
        return sp.rdp(("flag",)) is not None
    up = sp.s.function(flag_up, "?(x:r)", "flag_up")
    check("a predicate that uses the space: no flag, no match",
          sp.inp(("n", up)) is None)
    sp.out(("flag",))
    check("with the flag, a match", sp.inp(("n", up)) == ("n", 1))

    def boom(x):
        raise ValueError("no opinion on %r" % (x,))
    try:
        sp.inp(("n", sp.s.function(boom, "?(x:r)", "boom")))
        check("a raising predicate fails the call", False)
    except remo.RemoteError as e:
        check("a raising predicate's error arrives by name: " + e.name,
              e.name == "ValueError")
    # errors by name
    try:
        sp.s.call(sp.fns["take"], "not a tuple")
        check("a non-tuple pattern is refused", False)
    except remo.RemoteError as e:
        check("a non-tuple pattern is a TypeError", e.name == "TypeError")
    try:
        sp.s.lookup("no_such_export")
        check("an unknown name is refused", False)
    except remo.RemoteError as e:
        check("an unknown name is an error by name: " + e.name,
              e.name in ("NotFound", "KeyError", "LookupError"))
    # a subscription: the space calls us back while we make no call
    import threading
    got, done = [], threading.Event()

    def note(t):
        got.append(t)
        if len(got) == 3:
            done.set()
    sub = sp.subscribe(("note", sp.any("int")), note)
    other = Space(sys.argv[1])
    for i in range(3):
        other.out(("note", i))
    other.out(("other", 9))
    other.close()
    check("a subscriber hears every match, in order, while idle",
          done.wait(10) and got == [("note", 0), ("note", 1), ("note", 2)])
    sub.cancel()
    sp.close()
    return 1 if failures else 0


def pod_main(url, mode):
    """tastypy's line, through proxies; read back after a restart."""
    pod = Pod(url)
    if mode == "write":
        pod["foo"] = {"bar": 0, "baz": []}
        pod["foo"]["bar"] = 1
        pod["foo"]["baz"].append("fizz")
        pod[7] = "seven"
        check("the nested append is seen at once",
              pod["foo"]["baz"][0] == "fizz")
        check("it made foo dirty", "foo" in list(pod.dirty().copy()))
    else:
        check("pod['foo']['baz'].append('fizz') persisted",
              pod["foo"]["baz"][0] == "fizz" and len(pod["foo"]["baz"]) == 1)
        check("pod['foo']['bar'] = 1 persisted", pod["foo"]["bar"] == 1)
        check("an int key stays an int", pod[7] == "seven")
    pod.close()
    return 1 if failures else 0


def calc_main(url):
    """demo/calc's server: the seed's headline, a remote
    ZeroDivisionError caught as Python's own and walked with remo.pm();
    proxies as Python objects; async calls; releases."""
    import gc
    import io
    s = remo.connect(url)
    calc = s.proxy(s.lookup("calc"))
    check("dir() from the shape: fields and methods",
          {"acc", "history", "add", "div"} <= set(dir(calc)))
    calc.acc = 0.0
    check("a method call", calc.add(2.5) == 2.5)
    check("a field read, a field written", calc.acc == 2.5)
    hist = calc.history
    check("len and indexing of a remote list",
          len(hist) >= 1 and hist[-1] == ("add", 2.5, 2.5))
    check("iteration and in", ("add", 2.5, 2.5) in list(iter(hist)))
    caught = None
    try:
        calc.div(0)
    except ZeroDivisionError as e:  # Python's own built-in
        caught = e
    check("the peer's ZeroDivisionError is caught as Python's",
          caught is not None and isinstance(caught, ArithmeticError) and
          isinstance(caught, remo.RemoteError) and
          caught.message == "cannot divide 2.5 by zero")
    try:
        calc.add("ten")
    except TypeError as e:
        check("a TypeError by name, as Python's", "must be double" in str(e))
    out = io.StringIO()
    remo.pm(caught, stdin=io.StringIO("where\nlocals\np x\nlist\nq\n"),
            stdout=out)
    text = out.getvalue()
    print(text)
    check("pm: the failing frame", "> #0 calc_div (" in text)
    check("pm: its recorded locals", "acc = 2.5" in text and
          "x = 0.0" in text)
    check("pm: its source line, marked",
          'remo_raise("ZeroDivisionError"' in text and "->" in text)
    f1 = s.call_method_async(s.lookup("calc"), "add", 1.0)
    f2 = s.call_method_async(s.lookup("calc"), "mul", 2.0)
    check("two async calls, answered in order",
          f1.result(5) == 3.5 and f2.result(5) == 7.0)
    before = s.released
    for _ in range(5):
        len(calc.history)  # a new list proxy each time (a copy), dropped
    gc.collect()
    calc.acc  # a message, which carries the releases due
    check("dropped proxies are released (RELEASE sent)",
          s.released > before)
    s.close()
    return 1 if failures else 0


def auth_main(url, secret_path):
    """A server with a secret: the right one opens, a wrong one and none
    are AuthenticationError (a PermissionError), by name."""
    sp = Space(url, secret=remo.secret_file(secret_path))
    sp.out(("authenticated", 1))
    check("a session that proved the secret is served",
          sp.inp(("authenticated", 1)) == ("authenticated", 1))
    sp.close()
    for secret in (b"not-the-secret-0123456789", None):
        try:
            remo.connect(url, secret=secret)
            check("a wrong or missing secret is refused", False)
        except PermissionError as e:
            check("a wrong or missing secret is refused by name: %s" %
                  e.name, e.name == "AuthenticationError")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "pod":
        sys.exit(pod_main(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 3 and sys.argv[1] == "calc":
        sys.exit(calc_main(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "auth":
        sys.exit(auth_main(sys.argv[2], sys.argv[3]))
    sys.exit(main())
