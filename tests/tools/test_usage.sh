#!/bin/sh
# test_usage.sh - confidentctl's usage errors and limits, without a broker:
# what must be refused with exit status 2 before anything connects, the
# ranges the tools share with the configuration, and batch's message when
# every row was rejected.
#
# usage: test_usage.sh path/to/confidentctl
# Exit status: 0 pass, 1 fail, 77 skipped (no python3 to write the .npy).
set -u

CTL=${1:?usage: test_usage.sh path/to/confidentctl}
command -v python3 >/dev/null 2>&1 || { echo "skip: no python3"; exit 77; }

DIR=$(mktemp -d) || exit 1
trap 'rm -rf "$DIR"' EXIT

failures=0
fail() {
        echo "FAIL: $*"
        failures=$((failures + 1))
}
# expect_status WHAT STATUS PATTERN ARGS...: runs confidentctl ARGS, checks
# its exit status and that stderr matches PATTERN (empty: not checked).
expect_status() {
        what=$1 status=$2 pattern=$3
        shift 3
        timeout 20 "$CTL" "$@" >"$DIR/out" 2>"$DIR/err"
        rc=$?
        [ "$rc" = "$status" ] ||
                { fail "$what: exit status $rc, expected $status"; cat "$DIR/err"; }
        if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$DIR/err"; then
                fail "$what: no '$pattern' in stderr:"
                cat "$DIR/err"
        fi
}

# Inputs: 3 rows, 2 classes; every row of nan.npy is rejected (row 0 has
# a NaN first).  ok.npy holds integers, as a one-hot .npy may.
python3 - "$DIR" <<'PY' || exit 1
import struct, sys
d = sys.argv[1]
def npy(name, rows, fmt, descr):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (
        descr, len(rows), len(rows[0]))
    hdr += ' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + '\n'
    with open(d + '/' + name, 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) +
                hdr.encode())
        for r in rows:
            f.write(struct.pack('<%d%s' % (len(r), fmt), *r))
nan = float('nan')
npy('nan.npy', [[nan, 0.5], [0.5, float('inf')], [0.2, 0.2]], 'd', '<f8')
npy('ok.npy', [[1, 0], [0, 1], [1, 0], [0, 1]], 'q', '<i8')
with open(d + '/three.csv', 'w') as f:
    f.write('id,label\n0,0\n1,1\n2,0\n')
with open(d + '/four.csv', 'w') as f:
    f.write('id,label\n0,0\n1,1\n2,0\n3,1\n')
PY

B=127.0.0.1:9
R="replay --labels $DIR/four.csv --probs $DIR/ok.npy --brokers $B"

# --- the brokers come from --brokers only -------------------------------------
# shellcheck disable=SC2086
expect_status "replay bootstrap.servers" 2 "use --brokers" \
        $R --topic t --property bootstrap.servers=127.0.0.1:1
# shellcheck disable=SC2086
expect_status "replay metadata.broker.list" 2 "use --brokers" \
        $R --topic t --property=metadata.broker.list=127.0.0.1:1
expect_status "evaluate bootstrap.servers" 2 "use --brokers" \
        evaluate --brokers "$B" --input-topic t \
        --property bootstrap.servers=127.0.0.1:1
expect_status "evaluate metadata.broker.list" 2 "use --brokers" \
        evaluate --brokers "$B" --input-topic t \
        --property metadata.broker.list=127.0.0.1:1
# shellcheck disable=SC2086
expect_status "replay property without name" 2 "expected NAME=VALUE" \
        $R --topic t --property =x

# --- topic names ----------------------------------------------------------
for bad in "" "bad!name" "." ".." "a b" \
        "$(printf 'x%.0s' $(seq 250))"; do
        # shellcheck disable=SC2086
        expect_status "replay --topic '$bad'" 2 "invalid topic name" \
                $R --topic "$bad"
        expect_status "broker --topics '$bad'" 2 "invalid topic name" \
                broker --topics "in,$bad"
done
expect_status "broker --topics with an empty name" 2 "invalid topic name" \
        broker --topics "in,,out"

# --- shared ranges and usage exit status ------------------------------------
expect_status "batch --rank-by nope" 2 "unknown score 'nope'" \
        batch --labels "$DIR/four.csv" --probs "$DIR/ok.npy" --rank-by nope
expect_status "batch --sort nope" 2 "expected numpy or stable" \
        batch --labels "$DIR/four.csv" --probs "$DIR/ok.npy" --sort nope
expect_status "batch --sum-tol 5, integer probabilities" 0 "flagged 0 of 4" \
        batch --labels "$DIR/four.csv" --probs "$DIR/ok.npy" --sum-tol 5
expect_status "batch --sum-tol -1" 2 "" \
        batch --labels "$DIR/four.csv" --probs "$DIR/ok.npy" --sum-tol -1
expect_status "score --sum-tol 5" 0 "" \
        score --labels "$DIR/four.csv" --probs "$DIR/ok.npy" --sum-tol 5
expect_status "score --classes 65537" 2 "from 2 to 65536" \
        score --labels "$DIR/four.csv" --probs "$DIR/ok.npy" \
        --classes 65537
expect_status "simulate --classes 65537" 2 "from 2 to 65536" \
        simulate --classes 65537 --out-labels "$DIR/s.csv" \
        --out-probs "$DIR/s.npy"

# --- batch: every row rejected ------------------------------------------------
expect_status "batch, all rows rejected" 0 \
        "all 3 rows rejected: first at row 0: pred_probs\[0\] is nan" \
        batch --labels "$DIR/three.csv" --probs "$DIR/nan.npy" \
        --sum-tol 0.01
grep -q "fewer than 2 distinct" "$DIR/err" &&
        fail "batch, all rows rejected: still blames the labels"

if [ $failures -ne 0 ]; then
        echo "$failures check(s) failed"
        exit 1
fi
echo "all checks passed"
