# shellcheck shell=bash
# Shell helpers for tests on a real Apache Kafka broker, run by
# scripts/kafka-broker.  Source it and call kafka_cleanup from an EXIT
# trap; every broker started here also stops by itself when the sourcing
# script exits, however it exits.

KAFKA_BROKER=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka-broker
# Broker folders started here, stopped by kafka_cleanup.
KAFKA_DIRS=()

# kafka_fetch_or_skip: makes sure the jars are cached.  Exits 77, the
# skip code of the tests, when Maven Central is unreachable and nothing is
# cached; any other failure exits 1.
kafka_fetch_or_skip() {
        local rc=0

        "$KAFKA_BROKER" fetch || rc=$?
        case $rc in
        0) return 0 ;;
        69) echo "SKIP: Maven Central unreachable and no Kafka jars cached"
            exit 77 ;;
        *) echo "$(basename "$0"): kafka-broker fetch failed ($rc)" >&2
           exit 1 ;;
        esac
}

# Sets KAFKA_BOOTSTRAP and KAFKA_PID, read by the sourcing script, from
# the broker in DIR.
# shellcheck disable=SC2034
kafka_read_state() {
        local dir=$1 out

        out=$("$KAFKA_BROKER" status "$dir") || return 1
        KAFKA_BOOTSTRAP=$(awk '{ print $2 }' <<<"$out")
        KAFKA_PID=$(awk '{ print $4 }' <<<"$out")
}

# kafka_start DIR [--port N] -> sets KAFKA_BOOTSTRAP and KAFKA_PID
kafka_start() {
        local dir=$1

        shift
        "$KAFKA_BROKER" start "$dir" --owner "$$" "$@" >/dev/null || return 1
        KAFKA_DIRS+=("$dir")
        kafka_read_state "$dir"
}

# kafka_restart DIR: same ports, same data; updates KAFKA_PID.
kafka_restart() {
        "$KAFKA_BROKER" restart "$1" >/dev/null || return 1
        kafka_read_state "$1"
}

kafka_stop() {
        "$KAFKA_BROKER" stop "$1"
}

# kafka_topic DIR NAME PARTITIONS [--compact]
kafka_topic() {
        "$KAFKA_BROKER" topic "$@"
}

kafka_cleanup() {
        local dir

        for dir in "${KAFKA_DIRS[@]}"; do
                "$KAFKA_BROKER" stop "$dir" 2>/dev/null || true
        done
        KAFKA_DIRS=()
}
