"""pod.py -- the pod's Python client, on python/remo.py: tastypy's
SharedPOD, where the natural line is the one that persists.

    from pod import Pod
    pod = Pod("unix:///tmp/pod.sock")
    pod["foo"] = {"bar": 0, "baz": []}
    pod["foo"]["baz"].append("fizz")      # saved: no .set, no mark
    pod.sync()

pod[k] is the remo dict's item: a nested list or dict comes back as a
proxy, and a change made through it changes the pod, where the server's
observer marks "foo" dirty.  The server's functions (sync, hold,
try_key, mark_done...) are methods of the same name.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "python"))
import remo  # noqa: E402


class Pod:
    def __init__(self, url):
        self.session = remo.connect(url)
        self.dict = self.session.proxy(self.session.lookup("pod"))
        self.fns = {}

    def __getitem__(self, key):
        return self.dict[key]

    def __setitem__(self, key, value):
        self.dict[key] = value

    def __delitem__(self, key):
        del self.dict[key]

    def __len__(self):
        return len(self.dict)

    def __contains__(self, key):
        return key in self.dict

    def keys(self):
        return self.dict.keys()

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self.fns:
            self.fns[name] = self.session.proxy(self.session.lookup(name))
        return self.fns[name]

    def close(self):
        self.session.close()


if __name__ == "__main__":
    # python3 pod.py URL: the line from tastypy's docs that did not persist
    pod = Pod(sys.argv[1])
    pod["foo"] = {"bar": 0, "baz": []}
    pod["foo"]["bar"] = 1
    pod["foo"]["baz"].append("fizz")
    print(pod["foo"]["bar"], pod["foo"]["baz"][0], pod.dirty())
    pod.close()
