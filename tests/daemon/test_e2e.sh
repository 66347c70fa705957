#!/usr/bin/env bash
# End to end: embedded broker, daemon, replay of simulated items with two
# bad messages in the middle (one not msgpack, one with NaN), written by
# kcat as a third-party client.  Checks that every input id appears
# exactly once across clean, suspect and dead-letter, that the bad ones
# are dead-lettered with a reason while the stream keeps flowing, that
# the suspect set equals core's verdicts computed offline on the same
# sequence, and that SIGTERM gives exit status 0.
#
#   test_e2e.sh BUILD_DIR
set -euo pipefail
export BUILD_DIR=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$top/scripts/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/confidentd-e2e.XXXXXX")
trap 'cfd_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
topic=e2e
items=4000
half=2000
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CONFIDENTCTL" simulate --classes 5 --items "$items" --seed 7 \
        --out-labels "$work/labels.csv" --out-probs "$work/probs.npy" >/dev/null
head -n $((half + 1)) "$work/labels.csv" >"$work/part1.csv"
{ head -n 1 "$work/labels.csv"; tail -n +$((half + 2)) "$work/labels.csv"; } \
        >"$work/part2.csv"

# One partition per topic: the daemon then sees exactly the file order,
# which the offline scorer repeats.
cfd_start_broker "$work" "$topic,$topic.clean,$topic.suspect,$topic.dead-letter" 1
cfd_write_config "$work/confidentd.yaml" "$CFD_BOOTSTRAP" "$topic" 5 \
        "filter:" "  method: prune_by_noise_rate" "  warmup_total: 500" \
        "  warmup_class: 20" "commit:" "  max_items: 700" "  interval_ms: 50"
cfd_start_daemon "$work/confidentd.yaml" "$work/confidentd.log"

replay() {
        "$CONFIDENTCTL" replay --labels "$1" --probs "$work/probs.npy" \
                --row-column row --brokers "$CFD_BOOTSTRAP" --topic "$topic" \
                >/dev/null
}
replay "$work/part1.csv"

# Not msgpack at all, then a valid map whose pred_probs holds a NaN:
# {"id": "bad-nan", "label": 0, "pred_probs": [NaN, 0.25, 0.25, 0.25, 0.25]}
printf 'this is not msgpack' >"$work/bad1.bin"
{
        printf '\x83\xa2id\xa7bad-nan\xa5label\x00\xaapred_probs\x95'
        printf '\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00'
        for _ in 1 2 3 4; do printf '\xcb\x3f\xd0\x00\x00\x00\x00\x00\x00'; done
} >"$work/bad2.bin"
kcat -P -b "$CFD_BOOTSTRAP" -t "$topic" -p 0 -k bad-parse "$work/bad1.bin"
kcat -P -b "$CFD_BOOTSTRAP" -t "$topic" -p 0 -k bad-nan "$work/bad2.bin"

replay "$work/part2.csv"

# Every id exactly once (evaluate exits 1 on a missing or duplicated id).
"$CONFIDENTCTL" evaluate --brokers "$CFD_BOOTSTRAP" --input-topic "$topic" \
        --truth "$work/labels.csv" --id-column id --label-column label \
        --truth-column true_label --expect $((items + 2)) --idle-ms 10000 \
        --verdicts-out "$work/verdicts.csv" >"$work/evaluate.out" ||
        fail "evaluate: $(cat "$work/evaluate.out")"
summary=$(tail -n 1 "$work/evaluate.out")
echo "$summary"
case $summary in
*" dead_letter=2 "*) ;;
*) fail "expected 2 dead-letter messages: $summary" ;;
esac

# The dead-letter topic, read by kcat: reasons in headers, in order.
kcat -C -b "$CFD_BOOTSTRAP" -t "$topic.dead-letter" -o beginning -e -q \
        -f '%k %h\n' >"$work/dead.txt"
grep -q '^bad-parse .*confidentd-error=MSG_E_PARSE' "$work/dead.txt" ||
        fail "no MSG_E_PARSE header: $(cat "$work/dead.txt")"
grep -q '^bad-nan .*confidentd-error=CL_E_NONFINITE.*pred_probs\[0\]' \
        "$work/dead.txt" || fail "no CL_E_NONFINITE header: $(cat "$work/dead.txt")"

# The stream kept flowing: items after the bad ones were all routed.
routed=$(awk -F, 'NR > 1 && ($2 == "clean" || $2 == "suspect")' \
        "$work/verdicts.csv" | wc -l)
[ "$routed" -eq "$items" ] || fail "$routed of $items items routed"

# Suspect set equals core's verdicts computed offline on the same order.
"$CONFIDENTCTL" score --config "$work/confidentd.yaml" \
        --labels "$work/labels.csv" --probs "$work/probs.npy" \
        --row-column row --out "$work/offline.csv" >/dev/null
awk -F, 'NR > 1 && $2 == "suspect" {print $1}' "$work/offline.csv" |
        sort >"$work/offline.ids"
awk -F, 'NR > 1 && $3 == "suspect" {print $1}' "$work/verdicts.csv" |
        sort >"$work/daemon.ids"
[ -s "$work/offline.ids" ] || fail "offline scorer flagged nothing"
diff -q "$work/offline.ids" "$work/daemon.ids" >/dev/null ||
        fail "suspect sets differ: $(diff "$work/offline.ids" "$work/daemon.ids" | head)"
echo "suspect sets equal: $(wc -l <"$work/daemon.ids") items"

status=0
cfd_stop "$CFD_DAEMON_PID" || status=$?
[ "$status" -eq 0 ] || fail "daemon exit status $status after SIGTERM"
grep -q 'event=stopped' "$work/confidentd.log" || fail "no stopped line"
echo "PASS"
