# shellcheck shell=bash
# Shell helpers for the demo, the evaluation scripts and the end-to-end
# tests: start the embedded broker and the daemon on loopback, stop them
# by pid.  Source it; set BUILD_DIR first (default ./build).

: "${BUILD_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}"
CONFIDENTD=$BUILD_DIR/daemon/confidentd
CONFIDENTCTL=$BUILD_DIR/tools/confidentctl

# Processes started here, stopped by cfd_cleanup.
CFD_PIDS=()

cfd_die() {
        echo "$(basename "$0"): $*" >&2
        exit 1
}

# cfd_start_broker WORKDIR TOPICS PARTITIONS -> sets CFD_BOOTSTRAP
cfd_start_broker() {
        local dir=$1 topics=$2 partitions=$3
        "$CONFIDENTCTL" broker --topics "$topics" --partitions "$partitions" \
                >"$dir/broker.out" 2>"$dir/broker.log" </dev/null &
        CFD_BROKER_PID=$!
        CFD_PIDS+=("$CFD_BROKER_PID")
        for _ in $(seq 100); do
                # The background shell may not have created the file yet.
                CFD_BOOTSTRAP=$(awk '/^BOOTSTRAP /{print $2; exit}' \
                        "$dir/broker.out" 2>/dev/null || true)
                [ -n "$CFD_BOOTSTRAP" ] && return 0
                kill -0 "$CFD_BROKER_PID" 2>/dev/null ||
                        cfd_die "broker exited: $(tail -n 3 "$dir/broker.log")"
                sleep 0.1
        done
        cfd_die "broker did not print its address within 10 s"
}

# cfd_write_config FILE BOOTSTRAP INPUT_TOPIC CLASSES [extra YAML lines]
cfd_write_config() {
        local file=$1 bootstrap=$2 topic=$3 classes=$4
        shift 4
        {
                echo "kafka:"
                echo "  bootstrap: \"$bootstrap\""
                echo "  group_id: confidentd-$topic"
                echo "  topics:"
                echo "    input: $topic"
                echo "  consumer_properties:"
                echo "    fetch.wait.max.ms: 10"
                echo "    queued.min.messages: 1000000"
                echo "classes: $classes"
                echo "log:"
                echo "  progress_interval_s: 5"
                for line in "$@"; do echo "$line"; done
        } >"$file"
}

# cfd_start_daemon CONFIG LOGFILE -> sets CFD_DAEMON_PID; waits for ready
cfd_start_daemon() {
        local config=$1 log=$2
        "$CONFIDENTD" -c "$config" 2>"$log" </dev/null &
        CFD_DAEMON_PID=$!
        CFD_PIDS+=("$CFD_DAEMON_PID")
        for _ in $(seq 300); do
                grep -qs 'event=ready' "$log" && return 0
                kill -0 "$CFD_DAEMON_PID" 2>/dev/null ||
                        cfd_die "daemon exited: $(tail -n 5 "$log")"
                sleep 0.1
        done
        cfd_die "daemon not ready within 30 s: $(tail -n 5 "$log")"
}

# cfd_stop PID [TIMEOUT_S] -> SIGTERM, wait; returns the exit status
cfd_stop() {
        local pid=$1 timeout=${2:-60}
        kill -TERM "$pid" 2>/dev/null || return 0
        if ! cfd_wait_exit "$pid" "$timeout"; then
                kill -KILL "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                cfd_forget "$pid"
                return 124
        fi
        return "$CFD_EXIT_STATUS"
}

# cfd_wait_exit PID TIMEOUT_S: waits up to TIMEOUT_S for PID (a child of
# this shell) to end; then sets CFD_EXIT_STATUS to its exit status and
# returns 0.  Returns 1 when it still runs.
cfd_wait_exit() {
        local pid=$1 timeout=$2
        for _ in $(seq $((timeout * 10))); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && return 1
        CFD_EXIT_STATUS=0
        wait "$pid" || CFD_EXIT_STATUS=$?
        cfd_forget "$pid"
        return 0
}

# cfd_forget PID: drop a process that has ended from the cleanup list.
cfd_forget() {
        local pid kept=()
        for pid in "${CFD_PIDS[@]}"; do
                [ "$pid" = "$1" ] || kept+=("$pid")
        done
        CFD_PIDS=("${kept[@]}")
}

cfd_cleanup() {
        local pid
        for pid in "${CFD_PIDS[@]}"; do
                kill -TERM "$pid" 2>/dev/null || true
        done
        for pid in "${CFD_PIDS[@]}"; do
                wait "$pid" 2>/dev/null || true
        done
        CFD_PIDS=()
}
