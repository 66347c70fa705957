#!/usr/bin/env bash
# Smoke test of scripts/kafka-broker on a real Apache Kafka broker:
# fetch (from the cache when filled), start in a temporary folder, create
# topics, a kcat round trip, transaction isolation with txn_probe and with
# kcat in read_committed mode, a restart on the same ports and data, stop,
# and no process left behind.  Prints the figures it measured.
#
#   test_real_broker.sh TXN_PROBE
#
# Exit status 77 (skipped) only when Maven Central is unreachable and no
# jars are cached.
set -euo pipefail
readonly TXN_PROBE=${1:?usage: test_real_broker.sh TXN_PROBE}
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib-kafka.sh
. "$top/scripts/lib-kafka.sh"

readonly MESSAGES=100
# Every client call is bounded: a broker that stops answering fails the
# test instead of hanging it.
readonly CLIENT_TIMEOUT_S=60

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

now_s() {
        date +%s.%3N
}

since() {
        awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'
}

# consume TOPIC [kcat options...]: every message to the end, one a line.
consume() {
        local topic=$1

        shift
        timeout "$CLIENT_TIMEOUT_S" kcat -C -b "$KAFKA_BOOTSTRAP" \
                -t "$topic" -o beginning -e -q "$@" ||
                fail "consuming '$topic' failed or timed out"
}

# Alive and not a zombie waiting to be reaped.
alive() {
        [ -r "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status"
}

rss_kb() {
        awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

check_round_trip() {
        consume plain -f '%k:%s\n' | sort >"$work/plain.out"
        cmp -s "$work/plain.in" "$work/plain.out" ||
                fail "plain: consumed messages differ from those produced"
}

check_committed_only() {
        consume txn -X isolation.level=read_committed -f '%s\n' \
                >"$work/txn.out"
        printf 'committed-%d\n' 0 1 2 3 4 | cmp -s - "$work/txn.out" ||
                fail "kcat read_committed saw: $(tr '\n' ' ' <"$work/txn.out")"
}

# No process may still name the work folder: broker, watchdog, tools.
check_nothing_left() {
        local proc cmd pids=()

        # Matched in the shell: a grep for $work would find itself.
        for proc in /proc/[0-9]*; do
                cmd=$({ tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null) ||
                        continue
                [[ $cmd != *"$work"* ]] || pids+=("${proc#/proc/}")
        done
        [ ${#pids[@]} -eq 0 ] ||
                fail "processes left running: ${pids[*]}"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/confidentd-kafka.XXXXXX")
trap 'kafka_cleanup; rm -rf "$work"' EXIT
broker=$work/broker

t0=$(now_s)
kafka_fetch_or_skip
fetch_s=$(since "$t0")

t0=$(now_s)
kafka_start "$broker" || fail "broker did not start"
start_s=$(since "$t0")
pid=$KAFKA_PID
echo "broker pid $pid at $KAFKA_BOOTSTRAP"

kafka_topic "$broker" plain 2
kafka_topic "$broker" compacted 1 --compact
kafka_topic "$broker" txn 1
"$KAFKA_BROKER" describe "$broker" compacted | grep -q 'cleanup.policy=compact' ||
        fail "topic 'compacted' lacks cleanup.policy=compact"
if kafka_topic "$broker" plain 2 2>/dev/null; then
        fail "creating an existing topic succeeded"
fi
# A metadata request for an unknown topic creates it when
# auto.create.topics.enable is true; the creation shows a moment later.
timeout "$CLIENT_TIMEOUT_S" kcat -L -b "$KAFKA_BOOTSTRAP" -t no-such-topic \
        >/dev/null || fail "kcat -L failed"
if "$KAFKA_BROKER" describe "$broker" no-such-topic >/dev/null 2>&1; then
        fail "the broker created a topic on a metadata request"
fi

for i in $(seq "$MESSAGES"); do
        echo "key-$i:value-$i"
done | sort >"$work/plain.in"
timeout "$CLIENT_TIMEOUT_S" kcat -P -b "$KAFKA_BOOTSTRAP" -t plain -K : \
        -X acks=all <"$work/plain.in" || fail "producing to 'plain' failed"
check_round_trip

"$TXN_PROBE" "$KAFKA_BOOTSTRAP" txn || fail "txn_probe"
check_committed_only
rss_mb=$(($(rss_kb "$pid" VmRSS) / 1024))
hwm_mb=$(($(rss_kb "$pid" VmHWM) / 1024))

bootstrap=$KAFKA_BOOTSTRAP
t0=$(now_s)
kafka_restart "$broker" || fail "broker did not restart"
restart_s=$(since "$t0")
[ "$KAFKA_BOOTSTRAP" = "$bootstrap" ] ||
        fail "restart moved the broker from $bootstrap to $KAFKA_BOOTSTRAP"
[ "$KAFKA_PID" != "$pid" ] || fail "restart kept the old process $pid"
! alive "$pid" || fail "the old broker $pid still runs"
check_round_trip
check_committed_only

pid=$KAFKA_PID
kafka_stop "$broker"
[ ! -e "$broker/kafka.pid" ] || fail "stop left $broker/kafka.pid"
! alive "$pid" || fail "stop left the broker $pid running"
check_nothing_left

# Started again, owned by a process that then dies: the watchdog must stop
# the broker, as it does when a test is killed before its cleanup.
sleep 600 &
owner=$!
"$KAFKA_BROKER" start "$broker" --owner "$owner" >/dev/null ||
        fail "broker did not start again in $broker"
pid=$(cat "$broker/kafka.pid")
kill "$owner"
wait "$owner" 2>/dev/null || true
for _ in $(seq 600); do
        alive "$pid" || break
        sleep 0.1
done
! alive "$pid" || fail "the broker $pid outlived its owner by 60 s"
check_nothing_left

echo "kafka_real_smoke: fetch_s=$fetch_s start_s=$start_s" \
        "restart_s=$restart_s broker_rss_mb=$rss_mb broker_peak_rss_mb=$hwm_mb"
