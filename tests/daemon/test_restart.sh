#!/usr/bin/env bash
# Restart: a daemon stopped with SIGTERM half way through the stream and a
# new one started with the same configuration.  The new one must take the
# statistics from the state topic (state_loaded origin=topic), every id
# must appear exactly once across the outputs, and the suspect set must
# equal core's verdicts computed offline on the whole sequence, as if no
# restart had happened.
#
#   test_restart.sh BUILD_DIR
set -euo pipefail
export BUILD_DIR=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$top/scripts/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/confidentd-restart.XXXXXX")
trap 'cfd_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
topic=restart
items=4000
half=2000
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CONFIDENTCTL" simulate --classes 4 --items "$items" --seed 11 \
        --out-labels "$work/labels.csv" --out-probs "$work/probs.npy" >/dev/null
head -n $((half + 1)) "$work/labels.csv" >"$work/part1.csv"
{ head -n 1 "$work/labels.csv"; tail -n +$((half + 2)) "$work/labels.csv"; } \
        >"$work/part2.csv"

cfd_start_broker "$work" \
        "$topic,$topic.clean,$topic.suspect,$topic.dead-letter,$topic.state" 1
cfd_write_config "$work/confidentd.yaml" "$CFD_BOOTSTRAP" "$topic" 4 \
        "filter:" "  warmup_total: 400" "  warmup_class: 20" \
        "commit:" "  max_items: 300" "  interval_ms: 50"

replay() {
        "$CONFIDENTCTL" replay --labels "$1" --probs "$work/probs.npy" \
                --row-column row --brokers "$CFD_BOOTSTRAP" --topic "$topic" \
                2>/dev/null
}
evaluate() {
        "$CONFIDENTCTL" evaluate --brokers "$CFD_BOOTSTRAP" \
                --input-topic "$topic" --truth "$work/labels.csv" \
                --id-column id --label-column label --truth-column true_label \
                --expect "$1" --idle-ms 10000 "${@:2}"
}

# First daemon: half the stream, then SIGTERM.
cfd_start_daemon "$work/confidentd.yaml" "$work/first.log"
replay "$work/part1.csv"
evaluate "$half" >/dev/null 2>&1 || true
status=0
cfd_stop "$CFD_DAEMON_PID" || status=$?
[ "$status" -eq 0 ] || fail "first daemon exit status $status"

# Second daemon: must resume from the state topic.
cfd_start_daemon "$work/confidentd.yaml" "$work/second.log"
grep -q "event=state_loaded origin=topic items=$half " "$work/second.log" ||
        fail "no state restored: $(grep state_loaded "$work/second.log")"
replay "$work/part2.csv"
evaluate "$items" --verdicts-out "$work/verdicts.csv" >"$work/evaluate.out" \
        2>&1 || fail "evaluate: $(tail -n 8 "$work/evaluate.out")"
tail -n 1 "$work/evaluate.out"
status=0
cfd_stop "$CFD_DAEMON_PID" || status=$?
[ "$status" -eq 0 ] || fail "second daemon exit status $status"

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
echo "suspect sets equal across the restart: $(wc -l <"$work/daemon.ids") items"
echo "PASS"
