#!/usr/bin/env bash
# Re-review routing (routing.suspect_by: class): every suspect item goes
# to <suspect topic>.<class name> of its given class, none to the plain
# suspect topic, the per-class counts equal core's offline verdicts, and
# clean plus routed suspects account for every input exactly once (read
# back with kcat).
#
#   test_routing.sh BUILD_DIR
set -euo pipefail
export BUILD_DIR=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$top/scripts/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/confidentd-routing.XXXXXX")
trap 'cfd_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
topic=rt
items=3000
classes=(cat dog bird)
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CONFIDENTCTL" simulate --classes 3 --items "$items" --seed 3 \
        --out-labels "$work/labels.csv" --out-probs "$work/probs.npy" >/dev/null
topics="$topic,$topic.clean,$topic.suspect,$topic.dead-letter,$topic.state"
for c in "${classes[@]}"; do topics+=",$topic.suspect.$c"; done
cfd_start_broker "$work" "$topics" 1
cfd_write_config "$work/confidentd.yaml" "$CFD_BOOTSTRAP" "$topic" \
        "[cat, dog, bird]" "filter:" "  warmup_total: 300" \
        "routing:" "  suspect_by: class"
cfd_start_daemon "$work/confidentd.yaml" "$work/confidentd.log"
"$CONFIDENTCTL" replay --labels "$work/labels.csv" --probs "$work/probs.npy" \
        --row-column row --brokers "$CFD_BOOTSTRAP" --topic "$topic" 2>/dev/null

# read TOPIC: "key given-class" lines, once the stream is all out.
read_topic() {
        kcat -C -b "$CFD_BOOTSTRAP" -t "$1" -o beginning -e -q \
                -f '%k %h\n' | sed 's/ .*confidentd-given=\([0-9]*\).*/ \1/'
}
for _ in $(seq 100); do
        total=0
        for t in clean suspect.cat suspect.dog suspect.bird; do
                total=$((total + $(read_topic "$topic.$t" | wc -l)))
        done
        [ "$total" -ge "$items" ] && break
        sleep 0.2
done
cfd_stop "$CFD_DAEMON_PID" || fail "daemon exit status $?"

[ "$(read_topic "$topic.suspect" | wc -l)" -eq 0 ] ||
        fail "suspect items left on the plain suspect topic"
{
        read_topic "$topic.clean"
        for c in "${classes[@]}"; do read_topic "$topic.suspect.$c"; done
} | awk '{print $1}' | sort >"$work/seen.ids"
[ "$(wc -l <"$work/seen.ids")" -eq "$items" ] ||
        fail "$(wc -l <"$work/seen.ids") outputs for $items inputs"
[ "$(uniq -d "$work/seen.ids" | wc -l)" -eq 0 ] || fail "duplicated outputs"

"$CONFIDENTCTL" score --config "$work/confidentd.yaml" \
        --labels "$work/labels.csv" --probs "$work/probs.npy" \
        --row-column row --out "$work/offline.csv" >/dev/null
for i in "${!classes[@]}"; do
        c=${classes[$i]}
        read_topic "$topic.suspect.$c" >"$work/$c.txt"
        if awk -v i="$i" '$2 != i' "$work/$c.txt" | grep -q .; then
                fail "$topic.suspect.$c holds items of another class"
        fi
        want=$(awk -F, -v i="$i" 'NR > 1 && $2 == "suspect" && $3 == i' \
                "$work/offline.csv" | wc -l)
        got=$(wc -l <"$work/$c.txt")
        [ "$got" -eq "$want" ] || fail "$c: $got routed, $want offline"
        echo "$topic.suspect.$c: $got suspect items of class $c"
done
echo "PASS"
