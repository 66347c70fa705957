"""Latency percentiles for bench/run.

    python3 latency.py INPUT.txt CLEAN.txt SUSPECT.txt METRICS.txt

The three .txt files hold "key CreateTime_ms" lines (kcat -f '%k %T\\n')
of the input topic and of the outputs; an output is matched to the input
of the same key; only inputs created after the first output count
(steady state).  METRICS.txt is the daemon's /metrics page, whose
confidentd_delivery_latency_seconds histogram gives consume-to-delivery
percentiles by linear interpolation inside a bucket.  Prints one line of
key=value pairs; a percentile without data is "nan".
"""
import re
import sys


def read_ts(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = int(parts[1])
    return out


def pct(sorted_vals, q):
    if not sorted_vals:
        return "nan"
    i = min(len(sorted_vals) - 1, int(q * len(sorted_vals)))
    return "%d" % sorted_vals[i]


def hist_pct(buckets, q):
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return float("nan")
    want, lo, below = q * total, 0.0, 0
    for le, cum in buckets:
        if cum >= want:
            if le == float("inf"):
                return lo * 1000
            frac = (want - below) / (cum - below) if cum > below else 1.0
            return (lo + frac * (le - lo)) * 1000
        lo, below = le, cum
    return float("nan")


def main():
    inp = read_ts(sys.argv[1])
    pairs = []
    for path in sys.argv[2:4]:
        for key, ts in read_ts(path).items():
            if key in inp:
                pairs.append((inp[key], ts))
    # Steady state only: inputs sent after the first output, so that the
    # consumer group's first join (3 s on the mock) is not counted.
    start = min((o for _, o in pairs), default=0)
    lat = sorted(o - i for i, o in pairs if i >= start)
    buckets = []
    pat = re.compile(r'confidentd_delivery_latency_seconds_bucket'
                     r'\{le="([^"]+)"\} (\d+)')
    with open(sys.argv[4]) as f:
        for line in f:
            m = pat.match(line)
            if m:
                buckets.append((float(m.group(1)), int(m.group(2))))
    print("steady=%d pairs=%d ts_p50_ms=%s ts_p99_ms=%s hist_count=%d "
          "hist_p50_ms=%.1f hist_p99_ms=%.1f"
          % (len(lat), len(pairs), pct(lat, 0.5), pct(lat, 0.99),
             buckets[-1][1] if buckets else 0,
             hist_pct(buckets, 0.5), hist_pct(buckets, 0.99)))


if __name__ == "__main__":
    main()
