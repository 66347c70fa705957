#!/usr/bin/env bash
# SIGHUP: the daemon reads its configuration again.  A file with a syntax
# error and a change that needs a restart (kafka.group_id) are refused
# with the error logged and the daemon keeps running on its old
# configuration; a valid change (log level, routing by class, warm-up) is
# applied without losing the statistics: items replayed after it go to
# the per-class re-review topics, and the daemon still stops with 0.
#
#   test_reload.sh BUILD_DIR
set -euo pipefail
export BUILD_DIR=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$top/scripts/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/confidentd-reload.XXXXXX")
trap 'cfd_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
topic=rl
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CONFIDENTCTL" simulate --classes 3 --items 4000 --seed 9 \
        --out-labels "$work/labels.csv" --out-probs "$work/probs.npy" >/dev/null
head -n 2001 "$work/labels.csv" >"$work/part1.csv"
{ head -n 1 "$work/labels.csv"; tail -n +2002 "$work/labels.csv"; } \
        >"$work/part2.csv"
topics="$topic,$topic.clean,$topic.suspect,$topic.dead-letter,$topic.state"
for c in cat dog bird; do topics+=",$topic.suspect.$c"; done
cfd_start_broker "$work" "$topics" 1

config=$work/confidentd.yaml
base=("filter:" "  warmup_total: 300")
cfd_write_config "$config" "$CFD_BOOTSTRAP" "$topic" "[cat, dog, bird]" \
        "${base[@]}"
cfd_start_daemon "$config" "$work/confidentd.log"
replay() {
        "$CONFIDENTCTL" replay --labels "$1" --probs "$work/probs.npy" \
                --row-column row --brokers "$CFD_BOOTSTRAP" --topic "$topic" \
                2>/dev/null
}
count() {
        kcat -C -b "$CFD_BOOTSTRAP" -t "$1" -o beginning -e -q -f '%k\n' |
                wc -l
}
# hup EVENT: SIGHUP, then wait for the daemon's answer.
hup() {
        local before
        before=$(grep -c "event=$1" "$work/confidentd.log" || true)
        kill -HUP "$CFD_DAEMON_PID"
        for _ in $(seq 100); do
                [ "$(grep -c "event=$1" "$work/confidentd.log" || true)" -gt \
                  "$before" ] && return 0
                sleep 0.1
        done
        fail "no event=$1 after SIGHUP: $(tail -n 3 "$work/confidentd.log")"
}
# outputs: every output so far, on whichever topic.
outputs() {
        local total=$(( $(count "$topic.clean") + $(count "$topic.suspect") ))
        for c in cat dog bird; do
                total=$((total + $(count "$topic.suspect.$c")))
        done
        echo "$total"
}
# wait_outputs N: until N outputs are out.
wait_outputs() {
        for _ in $(seq 150); do
                [ "$(outputs)" -ge "$1" ] && return 0
                sleep 0.2
        done
        fail "$(outputs) outputs, expected $1"
}
replay "$work/part1.csv"
wait_outputs 2000

# 1. A syntax error: refused, named with its position.
cp "$config" "$work/good.yaml"
printf 'log: [unclosed\n' >>"$config"
hup reload_failed
grep 'event=reload_failed' "$work/confidentd.log" | tail -n 1 |
        grep -q "confidentd.yaml:[0-9]*:[0-9]*:" ||
        fail "reload error without position: $(grep reload_failed "$work/confidentd.log")"

# 2. A change that needs a restart: refused, naming the key.
sed 's/group_id: .*/group_id: another/' "$work/good.yaml" >"$config"
hup reload_failed
grep 'event=reload_failed' "$work/confidentd.log" | tail -n 1 |
        grep -q "'kafka.group_id' changed" ||
        fail "restart key not named: $(grep reload_failed "$work/confidentd.log" | tail -n 1)"
kill -0 "$CFD_DAEMON_PID" || fail "daemon died on a refused reload"

# 3. A valid change: applied.
cfd_write_config "$config" "$CFD_BOOTSTRAP" "$topic" "[cat, dog, bird]" \
        "${base[@]}" "  warmup_class: 10" "routing:" "  suspect_by: class"
sed -i 's/^  progress_interval_s: 5$/  progress_interval_s: 5\n  level: debug/' \
        "$config"
hup reloaded
grep -q 'event=reloaded .*level=debug' "$work/confidentd.log" ||
        fail "log level not applied"
grep -q 'event=state_loaded' "$work/confidentd.log"
[ "$(grep -c 'event=state_loaded' "$work/confidentd.log")" -eq 1 ] ||
        fail "statistics reloaded instead of kept"
before=$(count "$topic.suspect")
[ "$before" -gt 0 ] || fail "no suspect item before the reload"
replay "$work/part2.csv"
wait_outputs 4000
[ "$(outputs)" -eq 4000 ] || fail "$(outputs) outputs for 4000 inputs"
# The statistics were kept: no second warm-up after the reload.
[ "$(grep -c 'event=warmup_released' "$work/confidentd.log")" -eq 1 ] ||
        fail "warmed up again after the reload"
[ "$(count "$topic.suspect")" -eq "$before" ] ||
        fail "suspect items still on the plain topic after the reload"
routed=0
for c in cat dog bird; do routed=$((routed + $(count "$topic.suspect.$c"))); done
[ "$routed" -gt 0 ] || fail "nothing routed by class after the reload"
echo "before reload: $before suspect on $topic.suspect; after: $routed routed by class"

status=0
cfd_stop "$CFD_DAEMON_PID" || status=$?
[ "$status" -eq 0 ] || fail "daemon exit status $status"
echo "PASS"
