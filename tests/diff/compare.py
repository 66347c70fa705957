#!/usr/bin/env python3
"""Differential test: the batch mode (core/cl_batch.h) against cleanlab.

Generates random small inputs (K 2..20, N 10..2000) with exact ties,
repeated rows, absent classes, skewed priors, near-one probabilities,
rows that sum to 1 only within float error, values just outside [0, 1]
within cleanlab's 1e-6 slack, and inputs cleanlab refuses.  Each input
goes through cleanlab 2.9.0 and, many per process, through batch_dump
(tests/diff/batch_dump.c); every result must agree:

  thresholds, confident joint, calibrated joint     exactly
  py, noise and inverse noise matrices (both joints) within 1e-12
  num_label_issues (both methods)                    exactly
  find_label_issues, all seven filter_by values      the same rows
  self_confidence, normalized_margin                 exactly
  confidence_weighted_entropy                        within 1e-9
  return_indices_ranked_by (one score per case)      the same order
  input refused by cleanlab                          cl_batch_info says so

The batch mode sorts like numpy 1.24 (docs/batch.md), so the flagged rows
must match exactly, tied rows included; the environment pins numpy 1.24.2
for that reason (scripts/cleanlab-venv).

A differing case prints its seed, case number, K, N, kind, the field and
the differing rows, and how to rerun it alone; --save DIR also writes its
labels.npy and probs.npy for `confidentctl batch`.  Exit status: 0 all
cases agree, 1 a mismatch or an error.
"""
import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter

import numpy as np

FILTERS = ["prune_by_noise_rate", "prune_by_class", "both",
           "confident_learning", "predicted_neq_given",
           "low_self_confidence", "low_normalized_margin"]
SCORES = ["self_confidence", "normalized_margin",
          "confidence_weighted_entropy"]
LATENT_TOL = 1e-12
ENTROPY_TOL = 1e-9
SORT_NUMPY, SORT_STABLE = 0, 1  # enum cl_batch_sort
KINDS = ["absent", "skewed", "grid", "repeated", "flat", "near_one",
         "float32", "slack", "one_class", "all_zero", "above", "below",
         "params"]


# ---------------------------------------------------------------- inputs

def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def quantize(rng, p):
    """Rows of multiples of 1/q (q small): exact ties everywhere."""
    q = int(rng.choice([2, 3, 4, 8, 10, 20, 100]))
    scaled = p * q
    c = np.floor(scaled)
    left = (q - c.sum(axis=1)).astype(int)
    order = np.argsort(-(scaled - c), axis=1, kind="stable")
    for r in range(len(p)):
        c[r, order[r, :left[r]]] += 1
    return c / q


def make_labels(rng, n, k, kinds):
    """True and given labels over the classes in use."""
    if rng.random() < 0.3 and k > 2:
        used = np.sort(rng.choice(k, size=int(rng.integers(2, k)),
                                  replace=False))
        kinds.append("absent")
    else:
        used = np.arange(k)
    if rng.random() < 0.4:
        prior = rng.dirichlet(np.full(len(used), 0.3)) + 1e-3
        kinds.append("skewed")
    else:
        prior = rng.dirichlet(np.full(len(used), 5.0))
    prior /= prior.sum()
    true = used[rng.choice(len(used), size=n, p=prior)]
    given = true.copy()
    flip = rng.random(n) < rng.uniform(0.0, 0.5)
    given[flip] = used[rng.integers(0, len(used), size=int(flip.sum()))]
    return true, given


def make_probs(rng, n, k, true, kinds):
    """Model probabilities that lean towards the true class."""
    z = rng.normal(size=(n, k)) * rng.uniform(0.3, 2.0)
    z[np.arange(n), true] += rng.uniform(0.0, 6.0)
    p = softmax(z)
    if rng.random() < 0.3:
        p = quantize(rng, p)
        kinds.append("grid")
    if rng.random() < 0.25:
        uniq = int(rng.integers(1, max(2, n // 5)))
        p = p[rng.integers(0, uniq, size=n)]
        kinds.append("repeated")
    if rng.random() < 0.15:
        rows = rng.random(n) < rng.uniform(0.05, 0.5)
        p[rows] = 1.0 / k
        kinds.append("flat")
    if rng.random() < 0.3:
        eps = float(rng.choice([0.0, 1e-15, 1e-12, 1e-9, 1e-6]))
        rows = np.flatnonzero(rng.random(n) < rng.uniform(0.05, 0.8))
        top = np.argmax(p[rows], axis=1)
        p[rows] = eps / (k - 1)
        p[rows, top] = 1.0 - eps
        kinds.append("near_one")
    if rng.random() < 0.2:
        p = p.astype(np.float32).astype(np.float64)
        kinds.append("float32")
    if rng.random() < 0.1:
        # within cleanlab's range slack of 1e-6 on either side
        cells = rng.random(p.shape) < 0.01
        p[cells] += rng.uniform(-9e-7, 9e-7, size=int(cells.sum()))
        p = np.clip(p, -9e-7, 1 + 9e-7)
        kinds.append("slack")
    return p


def refuse(rng, n, k, labels, probs, kinds):
    """Input cleanlab refuses, or the all-zero case it accepts."""
    what = rng.choice(["one_class", "all_zero", "above", "below"])
    kinds.append(str(what))
    if what == "one_class":
        labels[:] = int(rng.integers(1, k))
    elif what == "all_zero":
        labels[:] = 0
    elif what == "above":
        probs[int(rng.integers(0, n)), int(rng.integers(0, k))] = 1 + 2e-6
    else:
        probs[int(rng.integers(0, n)), int(rng.integers(0, k))] = -2e-6


def generate(seed, case):
    """Case number `case` of seed `seed`: (k, labels, probs, kinds,
    find_label_issues parameters)."""
    rng = np.random.default_rng([seed, case])
    k = int(rng.integers(2, 21))
    n = int(np.clip(np.exp(rng.uniform(np.log(10), np.log(2001))), 10, 2000))
    kinds = []
    true, labels = make_labels(rng, n, k, kinds)
    probs = make_probs(rng, n, k, true, kinds)
    if rng.random() < 0.04:
        refuse(rng, n, k, labels, probs, kinds)
    params = {"min_examples_per_class": 1, "frac_noise": 1.0}
    if rng.random() < 0.3:
        params["min_examples_per_class"] = int(rng.choice([0, 2, 5, 20]))
        params["frac_noise"] = float(rng.choice([1.0, 0.9, 0.5, 0.25]))
        kinds.append("params")
    return (k, labels.astype(np.int64), np.ascontiguousarray(probs),
            kinds, params)


# ---------------------------------------------------------------- C side

def write_cases(path, cases):
    """Each case twice: numpy sort (compared), stable sort (tie check)."""
    with open(path, "wb") as f:
        for cid, (k, labels, probs, _, params) in cases.items():
            for sort in (SORT_NUMPY, SORT_STABLE):
                head = np.array([2 * cid + sort, k, len(labels), sort,
                                 params["min_examples_per_class"]],
                                dtype=np.int64)
                f.write(head.tobytes())
                f.write(np.float64(params["frac_noise"]).tobytes())
                f.write(labels.tobytes())
                f.write(probs.tobytes())


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, dtype, count, shape=None):
        """count 8-byte values from the current position."""
        a = np.frombuffer(self.data, dtype=dtype, count=count,
                          offset=self.pos)
        self.pos += 8 * count
        return a.reshape(shape) if shape else a

    def i64(self):
        return int(self.take(np.int64, 1)[0])


def read_record(rd, k, n):
    out = {"id": rd.i64(), "status": rd.i64()}
    if out["status"] != 0:
        return out
    for key in ["accepted", "parity", "refuses", "too_few"]:
        out[key] = rd.i64()
    out["thresholds"] = rd.take(np.float64, k)
    out["counts"] = rd.take(np.int64, k)
    out["cj"] = rd.take(np.int64, k * k, (k, k))
    out["cjc"] = rd.take(np.int64, k * k, (k, k))
    for tag in ["", "_u"]:
        out["py" + tag] = rd.take(np.float64, k)
        out["nm" + tag] = rd.take(np.float64, k * k, (k, k))
        # cl_batch_latent(): P(true j | given i) at [j * K + i], which is
        # cleanlab's inverse_noise_matrix[j][i] read row-major.
        out["inv" + tag] = rd.take(np.float64, k * k, (k, k))
    out["nli_off"] = rd.i64()
    out["nli_cal"] = rd.i64()
    for f in FILTERS:
        out["mask_" + f] = rd.take(np.int64, n).astype(bool)
    for s in SCORES:
        out["score_" + s] = rd.take(np.float64, n)
    for s in SCORES:
        out["rank_" + s] = rd.take(np.int64, rd.i64())
    return out


def run_driver(driver, cases, tmp):
    """{case: (numpy-sort record, stable-sort record)} from batch_dump."""
    src, dst = os.path.join(tmp, "cases.bin"), os.path.join(tmp, "out.bin")
    write_cases(src, cases)
    subprocess.run([driver, src, dst], check=True, timeout=600)
    with open(dst, "rb") as f:
        rd = Reader(f.read())
    results = {}
    for cid, (k, labels, _, _, _) in cases.items():
        pair = []
        for sort in (SORT_NUMPY, SORT_STABLE):
            rec = read_record(rd, k, len(labels))
            if rec["id"] != 2 * cid + sort:
                raise RuntimeError("batch_dump: record %d for case %d"
                                   % (rec["id"], cid))
            pair.append(rec)
        results[cid] = tuple(pair)
    if rd.pos != len(rd.data):
        raise RuntimeError("batch_dump: trailing bytes")
    return results


# ---------------------------------------------------------------- cleanlab

class Refused:
    """A cleanlab call that raised instead of giving a result."""

    def __init__(self, err):
        self.err = err

    def __str__(self):
        return "%s: %s" % (type(self.err).__name__, self.err)


def cleanlab_results(labels, probs, params, rank_score):
    from cleanlab.count import (compute_confident_joint, estimate_latent,
                                get_confident_thresholds, num_label_issues)
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    def call(key, fn, *args, **kwargs):
        """cleanlab raises on some inputs: keep the error as the result."""
        try:
            out[key] = fn(*args, **kwargs)
        except (ValueError, TypeError, AssertionError) as e:
            out[key] = Refused(e)

    out = {}
    for f in FILTERS:
        call("mask_" + f, find_label_issues, labels, probs, filter_by=f,
             n_jobs=1, **params)
    if isinstance(out["mask_prune_by_noise_rate"], Refused):
        return {"refused": out["mask_prune_by_noise_rate"]}
    call("thresholds", get_confident_thresholds, labels, probs)
    call("cj", compute_confident_joint, labels, probs, calibrate=False)
    call("cjc", compute_confident_joint, labels, probs, calibrate=True)
    for tag in ["", "_u"]:
        joint = out["cjc" if tag == "" else "cj"]
        if isinstance(joint, Refused):
            continue
        call("latent" + tag, estimate_latent, joint, labels)
        if not isinstance(out["latent" + tag], Refused):
            (out["py" + tag], out["nm" + tag],
             out["inv" + tag]) = out.pop("latent" + tag)
    call("nli_off", num_label_issues, labels, probs)
    call("nli_cal", num_label_issues, labels, probs,
         estimation_method="off_diagonal_calibrated")
    for s in SCORES:
        call("score_" + s, get_label_quality_scores, labels, probs,
             method=s)
    call("rank_" + rank_score, find_label_issues, labels, probs, n_jobs=1,
         return_indices_ranked_by=rank_score, **params)
    return out


# ---------------------------------------------------------------- compare

def rows_of(diff):
    rows = np.flatnonzero(diff)
    text = " ".join(str(r) for r in rows[:20])
    return text + (" ..." if len(rows) > 20 else "")


def differs(key, ref, ours):
    """Why ref (cleanlab) and ours differ for one field, or None."""
    if key.startswith("mask_"):
        if np.array_equal(ref, ours):
            return None
        return "cleanlab %d rows, ours %d; differing rows %s" % (
            ref.sum(), ours.sum(), rows_of(ref != ours))
    if key.startswith("score_"):
        tol = ENTROPY_TOL if key.endswith("entropy") else 0.0
        diff = ~(np.abs(ref - ours) <= tol)
        return "rows %s" % rows_of(diff) if diff.any() else None
    if key in ("py", "nm", "inv", "py_u", "nm_u", "inv_u"):
        err = np.max(np.abs(np.asarray(ref) - ours))
        return None if err <= LATENT_TOL else "largest difference %.3g" % err
    if key == "thresholds":
        diff = ref != ours
        return "classes %s" % rows_of(diff) if diff.any() else None
    ref, ours = np.atleast_1d(ref), np.atleast_1d(ours)
    if np.array_equal(ref, ours):
        return None
    if ref.ndim == 2 and ref.shape == ours.shape:
        cells = np.argwhere(ref != ours)[:10]
        return "cells " + " ".join("(%d,%d) cleanlab %s ours %s" % (
            i, j, ref[i, j], ours[i, j]) for i, j in cells)
    return "cleanlab %s, ours %s" % (ref.ravel()[:20].tolist(),
                                     ours.ravel()[:20].tolist())


def rank_differs(ref_rows, got, ref):
    """Ranking by confidence_weighted_entropy: the entropy goes through
    np.log, which numpy may take from a vector library on some CPUs, so the
    scores agree within ENTROPY_TOL, not bit for bit.  Where the flagged
    rows' scores are bit-equal the order must be identical; elsewhere our
    order must list the same rows, ascending in cleanlab's scores up to
    ENTROPY_TOL."""
    key = "score_confidence_weighted_entropy"
    ours = got["rank_confidence_weighted_entropy"]
    mask = ref["mask_prune_by_noise_rate"]
    if np.array_equal(ref[key][mask], got[key][mask]):
        return differs("rank", ref_rows, ours)
    if not np.array_equal(np.sort(ref_rows), np.sort(ours)):
        return "not the same rows"
    steps = np.diff(ref[key][ours])
    if np.all(steps >= -ENTROPY_TOL):
        return None
    return "our order is not ascending in cleanlab's scores at %s" % (
        rows_of(steps < -ENTROPY_TOL))


def compare(ref, got):
    """(list of (field, detail) that differ, number of cleanlab refusals)"""
    if got["status"] != 0:
        return [("status", "cl_batch_new returned %d" % got["status"])], 0
    if "refused" in ref:
        if got["refuses"]:
            return [], 1
        return [("refuses", "cleanlab raised '%s', cl_batch_info says it "
                 "would not" % ref["refused"])], 0
    if got["refuses"] or not got["parity"]:
        return [("parity", "cleanlab accepted, cl_batch_info says "
                 "refuses=%d parity=%d" % (got["refuses"], got["parity"]))], 0
    bad, raised = [], 0
    for key, value in ref.items():
        if isinstance(value, Refused):
            # With one label class (all 0) some cleanlab functions raise
            # where the default filter does not; the batch mode flags
            # nothing then (docs/batch.md, too_few_labels).
            raised += 1
            if key.startswith("mask_") and (not got["too_few"] or
                                             got[key].any()):
                bad.append((key, "cleanlab raised '%s'; ours flags %d rows"
                            " with too_few_labels=%d" % (
                                value, got[key].sum(), got["too_few"])))
            continue
        if key == "rank_confidence_weighted_entropy":
            why = rank_differs(value, got, ref)
        else:
            why = differs(key, value, got[key])
        if why:
            bad.append((key, why))
    return bad, raised


def tie_decided(numpy_rec, stable_rec):
    """True when the order of equal keys changes a result of the case:
    the sort modes then disagree, and only numpy's order can match."""
    if numpy_rec["status"] != 0:
        return False
    return any(not np.array_equal(numpy_rec[key], stable_rec[key])
               for key in numpy_rec
               if key.startswith(("mask_", "rank_")) or key == "cjc")


def save_case(folder, seed, cid, labels, probs):
    d = os.path.join(folder, "seed%d-case%d" % (seed, cid))
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "labels.npy"), labels)
    np.save(os.path.join(d, "probs.npy"), probs)


def run_chunk(job):
    """Generates, runs and compares cases `ids`: (counters, failures)."""
    driver, seed, ids, save = job
    warnings.simplefilter("ignore")
    cases = {cid: generate(seed, cid) for cid in ids}
    with tempfile.TemporaryDirectory(prefix="cfd-diff-") as tmp:
        got = run_driver(driver, cases, tmp)
    stats = Counter()
    failures = []
    for cid, (k, labels, probs, kinds, params) in cases.items():
        ours, stable = got[cid]
        ref = cleanlab_results(labels, probs, params,
                               SCORES[cid % len(SCORES)])
        bad, raised = compare(ref, ours)
        stats.update(kinds)
        stats.update(cases=1, rows=len(labels), refused="refused" in ref,
                     cleanlab_raised=raised,
                     too_few_labels=bool(ours.get("too_few")),
                     tie_decided=tie_decided(ours, stable))
        if bad:
            failures.append((cid, k, len(labels), kinds, params, bad))
            if save:
                save_case(save, seed, cid, labels, probs)
    return stats, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", required=True, help="path of batch_dump")
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--case", type=int, action="append",
                    help="run only this case number (repeatable)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--save", help="folder for the inputs of differing cases")
    a = ap.parse_args()

    import cleanlab
    print("cleanlab=%s numpy=%s seed=%d" % (cleanlab.__version__,
                                             np.__version__, a.seed))
    ids = a.case if a.case else list(range(a.cases))
    jobs = [(a.driver, a.seed, ids[i:i + a.chunk], a.save)
            for i in range(0, len(ids), a.chunk)]
    t0 = time.monotonic()
    total = Counter()
    failures = []
    with multiprocessing.Pool(max(1, a.jobs)) as pool:
        for stats, fails in pool.imap_unordered(run_chunk, jobs):
            total.update(stats)
            failures += fails
    for cid, k, n, kinds, params, bad in sorted(failures,
                                                key=lambda f: f[0]):
        print("MISMATCH seed=%d case=%d k=%d n=%d kind=%s "
              "min_examples_per_class=%d frac_noise=%g" % (
                  a.seed, cid, k, n, ",".join(kinds) or "plain",
                  params["min_examples_per_class"], params["frac_noise"]))
        for field, detail in bad:
            print("  %s: %s" % (field, detail))
        print("  rerun: tests/diff/run.sh BATCH_DUMP --seed %d --case %d "
              "--save DIR" % (a.seed, cid))
    print("kinds: " + " ".join("%s=%d" % (kind, total[kind])
                               for kind in KINDS))
    print("cases=%d rows=%d tie_decided=%d refused=%d cleanlab_raised=%d "
          "too_few_labels=%d mismatches=%d seconds=%.1f" % (
              total["cases"], total["rows"], total["tie_decided"],
              total["refused"], total["cleanlab_raised"],
              total["too_few_labels"], len(failures),
              time.monotonic() - t0))
    return 1 if failures or total["cases"] != len(ids) else 0


if __name__ == "__main__":
    sys.exit(main())
