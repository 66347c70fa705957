#!/usr/bin/env python3
"""Data preparation and counting for scripts/eval-quality.

Python's standard library only (no numpy): the verdicts themselves come
from `confidentctl score`; this file only writes the record order the
scorer reads and counts its output against the ground truth.

  eval-quality.py prep DATA WORK SEED
      For each label-errors set writes WORK/<name>.csv (columns
      id,row,label,truth in a fixed shuffled order; truth differs from
      label exactly on the rows of validated_errors.csv) and
      WORK/<name>.checked (rows that people looked at, one per line).

  eval-quality.py count DATA WORK NAME FILTER VERDICTS.csv
      Prints one line `key=value ...` with flagged, tp, precision,
      recall, f1 and (label-errors sets) checked precision.

  eval-quality.py doc DATA RESULTS TRIED DELAYED SEED QUALITY.md
      Rewrites the part of QUALITY.md between the two "generated"
      markers from the count lines in RESULTS, TRIED and DELAYED and the
      batch figures of DATA/reference/*/summary.json.
"""
import ast
import csv
import json
import struct
import sys

SETS = ["mnist", "cifar10", "20news", "imdb"]
MASK64 = (1 << 64) - 1


def read_npy(path):
    """Returns (shape, flat list) of a little-endian C-order .npy."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise SystemExit("%s: not a .npy file" % path)
    if data[6] == 1:
        hlen = struct.unpack_from("<H", data, 8)[0]
        start = 10
    else:
        hlen = struct.unpack_from("<I", data, 8)[0]
        start = 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header["fortran_order"]:
        raise SystemExit("%s: fortran order is not handled here" % path)
    codes = {"<u2": "H", "<f8": "d", "<i8": "q"}
    code = codes.get(header["descr"])
    if code is None:
        raise SystemExit("%s: dtype %s not handled" % (path, header["descr"]))
    count = 1
    for dim in header["shape"]:
        count *= dim
    values = struct.unpack_from("<%d%s" % (count, code), data, start + hlen)
    return header["shape"], list(values)


def splitmix64(state):
    """One step of SplitMix64 (Steele, Lea, Flood 2014): (state, value)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def shuffled(n, seed):
    """Fisher-Yates over 0..n-1, swap partner = SplitMix64 output mod
    (i + 1), from the last position down.  The modulo bias is below
    n / 2^64, irrelevant here, and keeps the order easy to reproduce."""
    order = list(range(n))
    state = seed & MASK64
    for i in range(n - 1, 0, -1):
        state, z = splitmix64(state)
        j = z % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def validated_rows(data, name):
    with open("%s/labelerrors/%s/validated_errors.csv" % (data, name)) as f:
        return {int(r["index"]) for r in csv.DictReader(f)}


def imdb_checked(data, labels):
    """Rows of imdb's mturk.json.  Its ids are file names whose row
    numbers need a file the data folder does not ship, so the set is
    rebuilt with the selection rule the data README quotes from the
    label-errors tutorial: the int((1 - trace(C) / sum(C)) N) rows of
    lowest normalised margin, C the uncalibrated confident joint.  The
    caller checks the result against the published counts."""
    shape, p = read_npy("%s/labelerrors/imdb/pred_probs_rownorm.npy" % data)
    n, k = shape
    rows = [p[r * k:(r + 1) * k] for r in range(n)]
    tsum = [0.0] * k
    tcnt = [0] * k
    for r in range(n):
        tsum[labels[r]] += rows[r][labels[r]]
        tcnt[labels[r]] += 1
    thr = [max(tsum[c] / tcnt[c], 2e-6) for c in range(k)]
    joint = [[0] * k for _ in range(k)]
    for r in range(n):
        conf = [c for c in range(k) if rows[r][c] >= thr[c] - 1e-6]
        if not conf:
            continue
        if len(conf) == 1:
            guess = conf[0]
        else:
            guess = max(range(k), key=lambda c: (rows[r][c], -c))
        joint[labels[r]][guess] += 1
    total = sum(sum(x) for x in joint)
    trace = sum(joint[c][c] for c in range(k))
    take = int((1.0 - trace / total) * n)

    def margin(r):
        own = rows[r][labels[r]]
        other = max(rows[r][c] for c in range(k) if c != labels[r])
        return own - other

    by_margin = sorted(range(n), key=lambda r: (margin(r), r))
    return set(by_margin[:take])


def checked_rows(data, name, labels):
    if name == "imdb":
        rows = imdb_checked(data, labels)
    else:
        with open("%s/labelerrors/%s/mturk.json" % (data, name)) as f:
            rows = {int(o["id"]) for o in json.load(f)}
    with open("%s/labelerrors/%s/mturk.json" % (data, name)) as f:
        published = len(json.load(f))
    if len(rows) != published:
        raise SystemExit("%s: %d checked rows rebuilt, mturk.json has %d"
                         % (name, len(rows), published))
    if not validated_rows(data, name) <= rows:
        raise SystemExit("%s: a validated error is not among the checked "
                         "rows" % name)
    return rows


def check_reference(data, name, checked):
    """The checked set must give cleanlab's own flagged_and_mturk_checked
    for every reference issues file: the count below uses it too."""
    with open("%s/reference/%s/summary.json" % (data, name)) as f:
        metrics = json.load(f)["metrics_vs_ground_truth"]
    for method in ["prune_by_noise_rate", "prune_by_class", "both",
                   "confident_learning", "predicted_neq_given"]:
        path = "%s/reference/%s/issues_%s.csv" % (data, name, method)
        with open(path) as f:
            flagged = {int(r["index"]) for r in csv.DictReader(f)}
        want = metrics[method]["flagged_and_mturk_checked"]
        if len(flagged & checked) != want:
            raise SystemExit("%s %s: %d flagged rows checked, reference "
                             "says %d" % (name, method,
                                          len(flagged & checked), want))


def prep(data, work, seed):
    for name in SETS:
        shape, labels = read_npy("%s/labelerrors/%s/labels.npy"
                                 % (data, name))
        k = read_npy_shape_cols(data, name)
        errors = validated_rows(data, name)
        checked = checked_rows(data, name, labels)
        check_reference(data, name, checked)
        with open("%s/%s.csv" % (work, name), "w") as out:
            out.write("id,row,label,truth\n")
            for r in shuffled(shape[0], seed):
                truth = (labels[r] + 1) % k if r in errors else labels[r]
                out.write("%d,%d,%d,%d\n" % (r, r, labels[r], truth))
        with open("%s/%s.checked" % (work, name), "w") as out:
            for r in sorted(checked):
                out.write("%d\n" % r)


def read_npy_shape_cols(data, name):
    with open("%s/reference/%s/summary.json" % (data, name)) as f:
        return int(json.load(f)["classes"])


def flagged_ids(path):
    with open(path) as f:
        return {int(r["id"]) for r in csv.DictReader(f)
                if r["verdict"] == "suspect"}


def count(data, work, name, filt, verdicts):
    flagged = flagged_ids(verdicts)
    if name == "cifar10h":
        with open("%s/cifar10h/annotations.csv" % data) as f:
            errors = {int(r["seq"]) for r in csv.DictReader(f)
                      if r["label"] != r["true_label"]}
        checked = None
    else:
        errors = validated_rows(data, name)
        with open("%s/%s.checked" % (work, name)) as f:
            checked = {int(x) for x in f}
    tp = len(flagged & errors)
    prec = tp / len(flagged) if flagged else 0.0
    rec = tp / len(errors) if errors else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    line = ("set=%s filter=%s flagged=%d tp=%d precision=%.4f recall=%.4f "
            "f1=%.4f" % (name, filt, len(flagged), tp, prec, rec, f1))
    if checked is not None:
        fc = flagged & checked
        line += " checked=%d checked_precision=%.4f" % (
            len(fc), tp / len(fc) if fc else 0.0)
    print(line)


BEGIN = "<!-- generated by scripts/eval-quality: begin -->"
END = "<!-- generated by scripts/eval-quality: end -->"
# Batch counterpart of each online filter in summary.json: cleanlab's
# find_label_issues_batched ranks by self-confidence, as low_self_confidence.
BATCH_KEY = {"low_self_confidence": "batched(batch_size=10000)"}


def parse_lines(path):
    rows = []
    with open(path) as f:
        for line in f:
            rows.append(dict(kv.split("=", 1) for kv in line.split()))
    return rows


def fmt(x):
    return "%.3f" % float(x)


def results_table(data, rows, name):
    with open("%s/reference/%s/summary.json" % (data, name)) as f:
        ref = json.load(f)["metrics_vs_ground_truth"]
    checked = name != "cifar10h"
    head = ["filter", "flagged", "P", "R", "F1"]
    head += ["P checked"] if checked else []
    head += ["batch flagged", "batch P", "batch R", "batch F1"]
    head += ["batch P checked"] if checked else []
    head += ["F1 online - batch"]
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        if r["set"] != name:
            continue
        b = ref[BATCH_KEY.get(r["filter"], r["filter"])]
        cells = [r["filter"], r["flagged"], fmt(r["precision"]),
                 fmt(r["recall"]), fmt(r["f1"])]
        cells += [fmt(r["checked_precision"])] if checked else []
        cells += [str(b["flagged"]), fmt(b["precision"]), fmt(b["recall"]),
                  fmt(b["f1"])]
        cells += [fmt(b["precision_among_mturk_checked"])] if checked else []
        cells += ["%+.4f" % (float(r["f1"]) - b["f1"])]
        out.append("| " + " | ".join(cells) + " |")
    return out


def tried_table(rows):
    out = ["| policy | warmup_total | set | flagged | P | R | F1 |",
           "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| %s | %s | %s | %s | %s | %s | %.4f |" % (
            r["policy"], r["warmup_total"], r["set"], r["flagged"],
            fmt(r["precision"]), fmt(r["recall"]), float(r["f1"])))
    return out


def delayed_table(data, rows):
    out = ["| set | filter | delay_items | flagged | P | R | F1 | batch F1 "
           "| F1 online - batch |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        with open("%s/reference/%s/summary.json" % (data, r["set"])) as f:
            ref = json.load(f)["metrics_vs_ground_truth"]
        b = ref[BATCH_KEY.get(r["filter"], r["filter"])]["f1"]
        out.append("| %s | %s | %s | %s | %s | %s | %.4f | %.4f | %+.4f |" % (
            r["set"], r["filter"], r["delay"], r["flagged"],
            fmt(r["precision"]), fmt(r["recall"]), float(r["f1"]), b,
            float(r["f1"]) - b))
    return out


def doc(data, results, tried, delayed, seed, path):
    rows = parse_lines(results)
    lines = [BEGIN, ""]
    titles = {"cifar10h": "CIFAR-10H stream (511,000 annotations, seq "
                          "order; error: label != true_label)",
              "mnist": "MNIST test set (10,000 rows)",
              "cifar10": "CIFAR-10 test set (10,000 rows)",
              "20news": "20 Newsgroups test set (7,532 rows, K = 20)",
              "imdb": "IMDB test set (25,000 rows, K = 2, row-normalised "
                      "probabilities)"}
    for name in ["cifar10h"] + SETS:
        lines += ["### " + titles[name], ""]
        lines += results_table(data, rows, name) + [""]
    lines += ["Label-errors sets in the shuffled order of seed %s. Exact "
              "F1 differences use four decimals; the other figures three."
              % seed, "",
              "### Warm-up policy and size, `prune_by_noise_rate`", ""]
    lines += tried_table(parse_lines(tried)) + [""]
    lines += ["### Decision window (`delay_items`), warm-up hold", ""]
    lines += delayed_table(data, parse_lines(delayed)) + ["", END]
    with open(path) as f:
        text = f.read()
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise SystemExit("%s: generated-part markers not found" % path)
    text = text[:start] + "\n".join(lines) + text[stop + len(END):]
    with open(path, "w") as f:
        f.write(text)


def main(argv):
    if len(argv) == 5 and argv[1] == "prep":
        prep(argv[2], argv[3], int(argv[4], 0))
    elif len(argv) == 7 and argv[1] == "count":
        count(argv[2], argv[3], argv[4], argv[5], argv[6])
    elif len(argv) == 8 and argv[1] == "doc":
        doc(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
