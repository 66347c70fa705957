"""Times cleanlab 2.9.0 on the CIFAR-10H stream, as bench_core batch does.

    python cleanlab_time.py ANNOTATIONS.csv PRED_PROBS.npy

Labels: column label of the CSV; probabilities: row item of the .npy, in
CSV order.  Loading is not timed.  Each call runs three times; the best
time is printed (the first also pays imports and page faults).
"""
import csv
import sys
import time

import numpy as np
from cleanlab.experimental.label_issues_batched import \
    find_label_issues_batched
from cleanlab.filter import find_label_issues


def best_of(n, fn):
    best, out = None, None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return best, out


def main():
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f))
    labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    items = np.array([int(r["item"]) for r in rows], dtype=np.int64)
    probs = np.ascontiguousarray(np.load(sys.argv[2])[items], dtype=np.float64)

    t, mask = best_of(3, lambda: find_label_issues(
        labels, probs, filter_by="prune_by_noise_rate", n_jobs=1))
    print("cleanlab call=find_label_issues rows=%d flagged=%d seconds=%.4f"
          % (len(labels), int(mask.sum()), t))
    t, idx = best_of(3, lambda: find_label_issues_batched(
        labels=labels, pred_probs=probs, verbose=False))
    print("cleanlab call=find_label_issues_batched rows=%d flagged=%d "
          "seconds=%.4f" % (len(labels), len(idx), t))


if __name__ == "__main__":
    main()
