#!/bin/sh
# test_kafka_tools.sh - confidentctl broker, replay and evaluate, round trip
# without the daemon: items are replayed straight into the clean and
# suspect topics, then evaluated against the truth they were made from.
#
# usage: test_kafka_tools.sh path/to/confidentctl
# Exit status: 0 pass, 1 fail, 77 skipped (no python3 to write the .npy).
set -u

CTL=${1:?usage: test_kafka_tools.sh path/to/confidentctl}
command -v python3 >/dev/null 2>&1 || { echo "skip: no python3"; exit 77; }

DIR=$(mktemp -d) || exit 1
BROKER_PID=
cleanup() {
        if [ -n "$BROKER_PID" ]; then
                kill "$BROKER_PID" 2>/dev/null
                wait "$BROKER_PID" 2>/dev/null
        fi
        exec 3>&- 2>/dev/null
        rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
fail() {
        echo "FAIL: $*"
        failures=$((failures + 1))
}
# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
        [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}
# expect_grep WHAT PATTERN FILE
expect_grep() {
        grep -q -- "$2" "$3" || { fail "$1: no '$2' in:"; cat "$3"; }
}
run() {
        timeout 30 "$CTL" "$@"
}

# 60 items, 3 classes; every 5th label is wrong (truth differs).  The .npy
# is written by hand (float32, 60 x 3) so that numpy is not needed.
python3 - "$DIR" <<'EOF' || exit 1
import struct, sys
d, n, k = sys.argv[1], 60, 3
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, k)
hdr += ' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + '\n'
with open(d + '/probs.npy', 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode())
    for i in range(n):
        f.write(struct.pack('<3f', *[0.8 if c == i % 3 else 0.1
                                     for c in range(k)]))
rows = [(i, 'item%d' % i, (i + 1) % 3 if i % 5 == 0 else i % 3, i % 3)
        for i in range(n)]
def write(name, keep):
    with open(d + '/' + name, 'w') as f:
        f.write('row,id,label,true_label\n')
        for r in rows:
            if keep(r):
                f.write('%d,%s,%d,%d\n' % r)
write('truth.csv', lambda r: True)
# item0 (an error) is missed, item1 (correct) is flagged.
write('clean.csv', lambda r: (r[0] % 5 != 0 or r[0] == 0) and r[0] != 1)
write('suspect.csv', lambda r: (r[0] % 5 == 0 and r[0] != 0) or r[0] == 1)
with open(d + '/bad_row.csv', 'w') as f:
    f.write('row,id,label\n0,a,1\n60,b,2\n')
EOF

# --- broker: start, announce, fault commands ------------------------------
mkfifo "$DIR/cmds" || exit 1
"$CTL" broker --topics in,in.clean,in.suspect,in.dead-letter \
        --partitions 4 <"$DIR/cmds" >"$DIR/broker.out" 2>"$DIR/broker.err" &
BROKER_PID=$!
exec 3>"$DIR/cmds"

i=0
while ! grep -q '^BOOTSTRAP ' "$DIR/broker.out" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
                echo "FAIL: no BOOTSTRAP line in 10 s"
                cat "$DIR/broker.err"
                exit 1
        fi
        sleep 0.1
done
B=$(sed -n 's/^BOOTSTRAP //p' "$DIR/broker.out")
case $B in
127.0.0.1:[0-9]*) ;;
*) fail "bootstrap '$B' is not on 127.0.0.1" ;;
esac
expect_grep "broker log" "level=info event=ready" "$DIR/broker.err"

printf '%s\n' "down 1" "up 1" "rtt 1 0" "err Produce NOT_LEADER_FOR_PARTITION 1" \
        "err 1 _TRANSPORT 0" "bogus 1" "err Prodce _TRANSPORT" "up 2" \
        "topic extra 2" "clear Produce" >&3
i=0
while [ "$(grep -c -v '^BOOTSTRAP ' "$DIR/broker.out")" -lt 10 ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && { fail "fewer than 10 command answers"; break; }
        sleep 0.1
done
sed -n '2,11p' "$DIR/broker.out" >"$DIR/answers"
cat >"$DIR/answers.expected" <<'EOF'
ok
ok
ok
ok
error: err: bad count '0' (expected 1..100000)
error: unknown command 'bogus' (expected down, up, rtt, err, clear or topic)
error: err: unknown api 'Prodce' (expected a name like Produce, Fetch, EndTxn or a number 0..67)
error: up: bad broker id '2' (expected 1..1, or -1 for all)
ok
ok
EOF
diff "$DIR/answers.expected" "$DIR/answers" || fail "fault command answers"

if command -v kcat >/dev/null 2>&1; then
        timeout 10 kcat -L -b "$B" -t extra >"$DIR/kcat.out" 2>&1 ||
                fail "kcat -L"
        expect_grep "kcat -L" 'topic "extra" with 2 partitions' "$DIR/kcat.out"
fi

# --- replay ---------------------------------------------------------------
run replay --labels "$DIR/clean.csv" --probs "$DIR/probs.npy" \
        --brokers "$B" --topic in.clean 2>"$DIR/replay1.err" ||
        { fail "replay clean"; cat "$DIR/replay1.err"; }
expect_grep "replay summary" "event=replay_done topic=in.clean items=48 delivered=48 failed=0" \
        "$DIR/replay1.err"
run replay --labels "$DIR/suspect.csv" --probs "$DIR/probs.npy" \
        --brokers "$B" --topic in.suspect --float32 --rate 2000 \
        2>"$DIR/replay2.err" || { fail "replay suspect"; cat "$DIR/replay2.err"; }

run replay --labels "$DIR/bad_row.csv" --probs "$DIR/probs.npy" \
        --brokers "$B" --topic in 2>"$DIR/bad.err"
expect_eq "replay exit status, row outside the npy" 1 $?
expect_grep "replay error position" "bad_row.csv:3: row 60 outside" "$DIR/bad.err"

run replay --labels "$DIR/clean.csv" --probs "$DIR/probs.npy" \
        --brokers "$B" --topic in --id-column nope 2>"$DIR/col.err"
expect_eq "replay exit status, missing column" 1 $?
expect_grep "replay missing column" "clean.csv:1: no column 'nope'" "$DIR/col.err"

# --- evaluate ---------------------------------------------------------------
run evaluate --brokers "$B" --input-topic in --expect 60 --idle-ms 5000 \
        --truth "$DIR/truth.csv" --verdicts-out "$DIR/verdicts.csv" \
        >"$DIR/eval1.out" 2>"$DIR/eval1.err"
expect_eq "evaluate exit status" 0 $?
last=$(tail -n 1 "$DIR/eval1.out")
case $last in
"items=60 clean=48 suspect=12 dead_letter=0 precision=0.917 recall=0.917 f1=0.917 items_per_s="[0-9]*) ;;
*) fail "evaluate last line: $last"; cat "$DIR/eval1.out" "$DIR/eval1.err" ;;
esac
expect_grep "evaluate missing" "^missing=0$" "$DIR/eval1.out"
expect_grep "evaluate duplicated" "^duplicated=0$" "$DIR/eval1.out"
expect_eq "verdicts lines" 61 "$(wc -l <"$DIR/verdicts.csv")"
expect_eq "verdicts header" "id,topic,verdict,reason" "$(head -n 1 "$DIR/verdicts.csv")"
expect_eq "verdicts order" "48 12" \
        "$(grep -c ',clean,' "$DIR/verdicts.csv") $(tail -n 12 "$DIR/verdicts.csv" | grep -c ',suspect,')"

# A second copy of item7 reaches the dead-letter topic (with kcat: as a
# payload that does not decode, so the id comes from the key); an id of
# the truth is never sent.
printf '99,ghost,1,0\n' >>"$DIR/truth.csv"
if command -v kcat >/dev/null 2>&1; then
        printf 'item7:not msgpack\n' |
                timeout 10 kcat -P -b "$B" -t in.dead-letter -K: ||
                fail "kcat -P to dead-letter"
else
        printf 'row,id,label\n7,item7,1\n' >"$DIR/dup.csv"
        run replay --labels "$DIR/dup.csv" --probs "$DIR/probs.npy" \
                --brokers "$B" --topic in.dead-letter 2>/dev/null ||
                fail "replay to dead-letter"
fi
run evaluate --brokers "$B" --input-topic in --idle-ms 5000 \
        --truth "$DIR/truth.csv" >"$DIR/eval2.out" 2>"$DIR/eval2.err"
expect_eq "evaluate exit status, missing and duplicated ids" 1 $?
expect_grep "evaluate missing ghost" "^missing=1 first_ids=ghost$" "$DIR/eval2.out"
expect_grep "evaluate duplicated item7" "^duplicated=1 first_ids=item7$" "$DIR/eval2.out"
expect_grep "evaluate dead letter" "dead_letter=1 " "$DIR/eval2.out"

# Too few items: gives up after --idle-ms, exit status 1.
run evaluate --brokers "$B" --clean in.clean --suspect in.suspect \
        --dead-letter in.dead-letter --expect 1000 --idle-ms 300 \
        >"$DIR/eval3.out" 2>&1
expect_eq "evaluate exit status, fewer than --expect" 1 $?
expect_grep "evaluate idle" "ended=idle" "$DIR/eval3.out"

# --- replay: integer .npy, slow rate; evaluate: escaped ids ----------------
python3 - "$DIR" <<'EOF2' || exit 1
import struct, sys
d = sys.argv[1]
def npy(name, n, k, fmt, descr, row):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (
        descr, n, k)
    hdr += ' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + '\n'
    with open(d + '/' + name, 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) +
                hdr.encode())
        for i in range(n):
            f.write(struct.pack('<%d%s' % (k, fmt), *row(i)))
npy('ints.npy', 3, 2, 'q', '<i8', lambda i: [1, 0] if i % 2 else [0, 1])
with open(d + '/odd.csv', 'w') as f:
    f.write('id,label\na\x01b,0\nc\\d,1\n"e,f",0\n')
# 400 items of 2000 classes, ~18 kB each: more than the mock's 5 MiB.
k = 2000
npy('big.npy', 400, k, 'd', '<f8',
    lambda i: [0.5 if c == i else 0.5 / (k - 1) for c in range(k)])
with open(d + '/big.csv', 'w') as f:
    f.write('id,label\n' + ''.join('b%d,%d\n' % (i, i) for i in range(400)))
EOF2

run replay --labels "$DIR/odd.csv" --probs "$DIR/ints.npy" \
        --brokers "$B" --topic odd 2>"$DIR/ints.err" ||
        { fail "replay of an int64 .npy"; cat "$DIR/ints.err"; }
expect_grep "replay int64 .npy" "items=3 delivered=3 failed=0" "$DIR/ints.err"
if command -v kcat >/dev/null 2>&1; then
        # A key of a NUL byte and "abc": the id of an undecodable message.
        printf '\000abc:not msgpack\n' |
                timeout 10 kcat -P -b "$B" -t odd.dl -K: ||
                fail "kcat -P with a NUL key"
fi
run evaluate --brokers "$B" --clean odd --suspect odd.none \
        --dead-letter odd.dl --idle-ms 3000 \
        --verdicts-out "$DIR/odd.verdicts" >"$DIR/odd.out" 2>"$DIR/odd.err"
expect_grep "evaluate without --truth" "^unknown=n/a$" "$DIR/odd.out"
expect_grep "escaped control byte" '^a\\x01b,clean,' "$DIR/odd.verdicts"
expect_grep "escaped backslash" '^c\\x5cd,clean,' "$DIR/odd.verdicts"
expect_grep "quoted comma" '^"e,f",clean,' "$DIR/odd.verdicts"
if command -v kcat >/dev/null 2>&1; then
        expect_grep "escaped NUL" '^\\x00abc,dead_letter,' \
                "$DIR/odd.verdicts"
fi

run replay --labels "$DIR/clean.csv" --probs "$DIR/probs.npy" \
        --brokers "$B" --topic slow --rate 0.5 --limit 2 \
        2>"$DIR/slow.err" || { fail "replay --rate 0.5"; cat "$DIR/slow.err"; }
grep -Eq 'items=2 .*items_per_s=(0\.[5-9][0-9]|1\.00)$' "$DIR/slow.err" ||
        { fail "replay --rate 0.5: items_per_s"; cat "$DIR/slow.err"; }

# --- evaluate: a partition whose oldest messages the broker dropped --------
printf 'topic big 1\n' >&3
i=0
while [ "$(grep -c -v '^BOOTSTRAP ' "$DIR/broker.out")" -lt 11 ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && { fail "no answer to 'topic big 1'"; break; }
        sleep 0.1
done
run replay --labels "$DIR/big.csv" --probs "$DIR/big.npy" \
        --brokers "$B" --topic big 2>"$DIR/big.err" ||
        { fail "replay big"; cat "$DIR/big.err"; }
run evaluate --brokers "$B" --clean big --suspect big.none \
        --dead-letter big.none2 --idle-ms 3000 >"$DIR/big.out" \
        2>"$DIR/big.stderr"
expect_grep "evaluate trimmed partitions" "^trimmed_partitions=1$" \
        "$DIR/big.out"
expect_grep "evaluate retention warning (report)" \
        "^warning: topic big partition 0 starts at offset [1-9][0-9]*: the broker dropped older messages; missing ids may be retention, not loss$" \
        "$DIR/big.out"
expect_grep "evaluate retention warning (stderr)" \
        "^warning: topic big partition 0 starts at offset" "$DIR/big.stderr"
expect_grep "evaluate untrimmed topics" "^trimmed_partitions=0$" \
        "$DIR/odd.out"

# --- broker stop ------------------------------------------------------------
exec 3>&-
kill -TERM "$BROKER_PID"
# Bounded by the CTest timeout; the broker stops within a second.
wait "$BROKER_PID"
expect_eq "broker exit status" 0 $?
BROKER_PID=
expect_grep "broker stop log" "event=stop signal=TERM" "$DIR/broker.err"

if [ $failures -ne 0 ]; then
        echo "$failures check(s) failed"
        exit 1
fi
echo "all checks passed"
