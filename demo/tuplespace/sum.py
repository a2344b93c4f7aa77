"""sum.py -- lindypy's worker pool with a Python master and C workers:
this puts ("add", a, b, c, d) tuples into the space, runs the C program
ts-sum with no tuples of its own (it starts its workers over exec://,
and they take whatever "add" tuples there are), and adds up the
("sum", n) tuples the C workers put back.

    python3 sum.py URL TUPLES PATH-TO-ts-sum
"""
import subprocess
import sys

from ts import Space


def main():
    url, n, ts_sum = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sp = Space(url)
    want = 0
    for k in range(n):
        sp.out(("add", k, k + 1, k + 2, k + 3))
        want += 4 * k + 6
    # the C workers: ts-sum URL 2 0 (two workers, no tuples of its own)
    subprocess.run([ts_sum, url, "2", "0"], check=True,
                   stdout=subprocess.DEVNULL)
    total = 0
    pattern = ("sum", sp.any("int"))
    for _ in range(n):
        total += sp.in_(pattern, timeout=10.0)[1]
    print("sum of %d tuples by C workers, for Python: %d (expected %d)" %
          (n, total, want))
    sp.close()
    return 0 if total == want else 1


if __name__ == "__main__":
    sys.exit(main())
