#!/usr/bin/env bash
# Starting from history: `confidentctl batch --state-out` turns historical
# labels into a snapshot, and a daemon with state.initial pointing at it
# starts warm: it logs state_loaded origin=file with the history's item
# count, judges the first streamed item already (no warm-up or hold
# verdicts), and decides the stream exactly as core does offline over
# history followed by the stream.
#
#   test_initial_state.sh BUILD_DIR
set -euo pipefail
export BUILD_DIR=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$top/scripts/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/confidentd-initial.XXXXXX")
trap 'cfd_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
topic=seeded
items=6000
history=4000
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CONFIDENTCTL" simulate --classes 4 --items "$items" --seed 21 \
        --out-labels "$work/labels.csv" --out-probs "$work/probs.npy" >/dev/null
head -n $((history + 1)) "$work/labels.csv" >"$work/history.csv"
{ head -n 1 "$work/labels.csv"; tail -n +$((history + 2)) "$work/labels.csv"; } \
        >"$work/stream.csv"

cfd_start_broker "$work" \
        "$topic,$topic.clean,$topic.suspect,$topic.dead-letter,$topic.state" 1
cfd_write_config "$work/confidentd.yaml" "$CFD_BOOTSTRAP" "$topic" 4 \
        "state:" "  initial: $work/initial.state"

"$CONFIDENTCTL" batch --labels "$work/history.csv" --probs "$work/probs.npy" \
        --row-column row --config "$work/confidentd.yaml" \
        --state-out "$work/initial.state" --out /dev/null 2>"$work/batch.err" ||
        fail "batch --state-out: $(cat "$work/batch.err")"
grep -q "state of $history items" "$work/batch.err" ||
        fail "batch did not report the state: $(cat "$work/batch.err")"

cfd_start_daemon "$work/confidentd.yaml" "$work/confidentd.log"
grep -q "event=state_loaded origin=file items=$history " "$work/confidentd.log" ||
        fail "no state from the file: $(grep state_loaded "$work/confidentd.log")"
"$CONFIDENTCTL" replay --labels "$work/stream.csv" --probs "$work/probs.npy" \
        --row-column row --brokers "$CFD_BOOTSTRAP" --topic "$topic" 2>/dev/null
"$CONFIDENTCTL" evaluate --brokers "$CFD_BOOTSTRAP" --input-topic "$topic" \
        --truth "$work/stream.csv" --id-column id --label-column label \
        --truth-column true_label --expect $((items - history)) \
        --idle-ms 10000 --verdicts-out "$work/verdicts.csv" \
        >"$work/evaluate.out" 2>&1 ||
        fail "evaluate: $(tail -n 5 "$work/evaluate.out")"
cfd_stop "$CFD_DAEMON_PID" || fail "daemon exit status $?"

# Warm from the first item: no warm-up and no held (batch-decided) items.
if awk -F, 'NR > 1 && ($4 == "warmup" || $4 ~ /^batch/)' \
        "$work/verdicts.csv" | grep -q .; then
        fail "warm-up verdicts after a warm start"
fi

# Offline: history then stream through core, verdicts of the stream part.
"$CONFIDENTCTL" score --config "$work/confidentd.yaml" \
        --labels "$work/labels.csv" --probs "$work/probs.npy" \
        --row-column row --out "$work/offline.csv" >/dev/null
awk -F, -v h="$history" 'NR > h + 1 && $2 == "suspect" {print $1}' \
        "$work/offline.csv" | sort >"$work/offline.ids"
awk -F, 'NR > 1 && $3 == "suspect" {print $1}' "$work/verdicts.csv" |
        sort >"$work/daemon.ids"
[ -s "$work/daemon.ids" ] || fail "the daemon flagged nothing"
diff -q "$work/offline.ids" "$work/daemon.ids" >/dev/null ||
        fail "suspect sets differ: $(diff "$work/offline.ids" "$work/daemon.ids" | head)"
echo "warm start from $history items; suspect sets equal: $(wc -l <"$work/daemon.ids") items"
echo "PASS"
