#!/usr/bin/env bash
# End to end: embedded broker, daemon, replay of simulated items with
# three bad messages in the middle (one not msgpack, one with NaN, one
# too large for the output topic), written by kcat as a third-party
# client.  Checks that every input id appears exactly once across clean,
# suspect and dead-letter, that the bad ones are dead-lettered with a
# reason while the stream keeps flowing, that the suspect set equals
# core's verdicts computed offline on the same sequence, that /metrics
# passes promtool and counts what happened, that systemd hears READY,
# WATCHDOG, STATUS and STOPPING on a socket the test owns, and that
# SIGTERM gives exit status 0.
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
        "  warmup_class: 20" "commit:" "  max_items: 700" "  interval_ms: 50" \
        "metrics:" "  listen: \"127.0.0.1:0\""

# A datagram socket standing in for systemd's notification socket.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", 0) as out:
    while True:
        out.write(s.recv(4096) + b"\n")
' "$work/notify.sock" "$work/notify.txt" &
CFD_PIDS+=($!)
for _ in $(seq 50); do [ -S "$work/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$work/notify.sock WATCHDOG_USEC=1000000 \
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
# A valid item of 1.5 MB: more than the daemon's producer may send.
python3 -c '
import struct, sys
probs = b"".join(b"\xcb" + struct.pack(">d", 0.2) for _ in range(5))
blob = b"x" * 1500000
sys.stdout.buffer.write(b"\x84\xa2id\xa7too-big\xa5label\x00\xaapred_probs\x95"
                        + probs + b"\xa4blob\xc6" + struct.pack(">I", len(blob))
                        + blob)
' >"$work/bad3.bin"
kcat -P -b "$CFD_BOOTSTRAP" -t "$topic" -p 0 -k too-big \
        -X message.max.bytes=4000000 "$work/bad3.bin"

replay "$work/part2.csv"

# Every id exactly once (evaluate exits 1 on a missing or duplicated id).
"$CONFIDENTCTL" evaluate --brokers "$CFD_BOOTSTRAP" --input-topic "$topic" \
        --truth "$work/labels.csv" --id-column id --label-column label \
        --truth-column true_label --expect $((items + 3)) --idle-ms 10000 \
        --verdicts-out "$work/verdicts.csv" >"$work/evaluate.out" ||
        fail "evaluate: $(cat "$work/evaluate.out")"
summary=$(tail -n 1 "$work/evaluate.out")
echo "$summary"
case $summary in
*" dead_letter=3 "*) ;;
*) fail "expected 3 dead-letter messages: $summary" ;;
esac

# The dead-letter topic, read by kcat: reasons in headers, in order.
kcat -C -b "$CFD_BOOTSTRAP" -t "$topic.dead-letter" -o beginning -e -q \
        -f '%k %h\n' >"$work/dead.txt"
grep -q '^bad-parse .*confidentd-error=MSG_E_PARSE' "$work/dead.txt" ||
        fail "no MSG_E_PARSE header: $(cat "$work/dead.txt")"
grep -q '^bad-nan .*confidentd-error=CL_E_NONFINITE.*pred_probs\[0\]' \
        "$work/dead.txt" || fail "no CL_E_NONFINITE header: $(cat "$work/dead.txt")"
grep -Eq "^bad-nan .*confidentd-source=$topic/0/[0-9]+\$" "$work/dead.txt" ||
        fail "no topic/partition/offset source header: $(cat "$work/dead.txt")"
grep -q '^too-big .*confidentd-error=CFD_E_OUTPUT_REFUSED' "$work/dead.txt" ||
        fail "no CFD_E_OUTPUT_REFUSED header: $(cat "$work/dead.txt")"

# /metrics: valid exposition, and it counts what happened.
port=$(sed -n 's/.*event=metrics_listening .*port=\([0-9]*\).*/\1/p' \
        "$work/confidentd.log")
[ -n "$port" ] || fail "no metrics_listening line"
sleep 1.5 # one publish interval
curl -sf "http://127.0.0.1:$port/metrics" >"$work/metrics.txt" ||
        fail "scrape of 127.0.0.1:$port/metrics failed"
promtool check metrics <"$work/metrics.txt" ||
        fail "promtool check metrics"
grep -q '^confidentd_dead_letters_total{reason="CL_E_NONFINITE"} 1$' \
        "$work/metrics.txt" || fail "dead-letter count: $(grep dead_letters "$work/metrics.txt")"
consumed=$(awk '/^confidentd_messages_consumed_total/ {s += $2} END {print s}' \
        "$work/metrics.txt")
[ "$consumed" = $((items + 3)) ] || fail "consumed=$consumed in /metrics"
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || fail "healthz"

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
for word in READY=1 WATCHDOG=1 STATUS= STOPPING=1; do
        grep -q "^$word" "$work/notify.txt" ||
                fail "systemd never heard $word: $(sort -u "$work/notify.txt" | head)"
done
echo "PASS"
