# Shared by every chaos scenario: the binary, a bounded run with traps that remove every process
# and namespace it made, broker and workers, a worker supervisor, test hosts, and the summary line.
# Sourced, not run: `. "$(dirname "$0")/lib.sh"`.

set -euo pipefail

CHAOS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CHAOS_DIR/../.." && pwd)
CHAOS_PY="$CHAOS_DIR/chaos.py"

# QUICK=1 (or a first argument `quick`) selects the small sizes CI uses.
if [ "${1:-}" = quick ]; then QUICK=1; shift; fi
QUICK=${QUICK:-0}

# Where the scenario was before the failure stopped it; printed when the run fails.
CHAOS_STEP="starting"

chaos_now() { date +%s.%N; }

# The binary under test: LANCOMPUTE=path, or a debug build made here.
chaos_binary() {
    if [ -n "${LANCOMPUTE:-}" ]; then
        [ -x "$LANCOMPUTE" ] || { echo "chaos: LANCOMPUTE=$LANCOMPUTE is not executable" >&2; exit 2; }
        return
    fi
    (cd "$REPO" && swift build --product lancompute >/dev/null) || { echo "chaos: swift build failed" >&2; exit 2; }
    LANCOMPUTE="$REPO/.build/debug/lancompute"
}

# chaos_begin NAME TIMEOUT_SECONDS: a work directory, the traps, and a watchdog that stops the
# scenario (status 124) when it runs longer than TIMEOUT_SECONDS.
chaos_begin() {
    CHAOS_NAME=$1
    local timeout=$2
    chaos_binary
    WORK=$(mktemp -d "/tmp/lc-chaos-$CHAOS_NAME.XXXXXX")
    : >"$WORK/pids" >"$WORK/supervisors" >"$WORK/netns" >"$WORK/marks"
    CHAOS_START=$(chaos_now)
    CHAOS_TIMED_OUT="$WORK/timed-out"
    trap chaos_cleanup EXIT
    trap 'chaos_interrupted 130' INT
    trap 'chaos_interrupted 143' TERM
    local main=$$
    (
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        sleep "$timeout" & nap=$!
        wait "$nap"
        echo "$timeout" >"$CHAOS_TIMED_OUT"
        kill -TERM "$main"
    ) &
    CHAOS_WATCHDOG=$!
}

chaos_interrupted() {
    # A signal to the whole process group (Ctrl-C) also reaches command substitutions: only the
    # scenario's own shell reports and cleans up.
    [ "$BASHPID" = "$$" ] || exit "$1"
    if [ -e "$CHAOS_TIMED_OUT" ]; then
        echo "chaos $CHAOS_NAME: FAIL (hard timeout of $(cat "$CHAOS_TIMED_OUT")s reached while $CHAOS_STEP; work kept in $WORK)"
        CHAOS_KEEP=1
        exit 124
    fi
    echo "chaos $CHAOS_NAME: interrupted while $CHAOS_STEP"
    exit "$1"
}

# Runs on every exit: supervisors first (so they start nothing new), then every process this
# scenario started (SIGCONT so a stopped one can take SIGTERM, SIGKILL after 2 s), then its
# network namespaces and, unless the run failed, its work directory.
chaos_cleanup() {
    local status=$?
    [ "$BASHPID" = "$$" ] || exit "$status"
    trap - EXIT INT TERM
    set +e
    [ -n "${WORK:-}" ] || exit "$status"
    touch "$WORK/stop"
    kill "$CHAOS_WATCHDOG" 2>/dev/null
    # Bash announces each job it reaps ("Killed"); the summary line is the news, not that.
    exec 2>/dev/null
    local pid
    for pid in $(awk '{print $1}' "$WORK/supervisors"); do kill -KILL "$pid" 2>/dev/null; done
    local pids
    pids=$(awk '{print $1}' "$WORK/pids"; jobs -p)
    for pid in $pids; do kill -CONT "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null; done
    local deadline=$((SECONDS + 2))
    for pid in $pids; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    local namespace
    for namespace in $(cat "$WORK/netns"); do ip netns del "$namespace" 2>/dev/null; done
    if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] || [ -n "${CHAOS_KEEP:-}" ] || [ -n "${KEEP:-}" ]; then
        echo "chaos $CHAOS_NAME: logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}

# A sleep the traps can interrupt (bash runs a trap only between commands).
chaos_sleep() {
    sleep "$1" &
    wait $! || true
}

# chaos_mark fault [PID] | chaos_mark heal: the harness's own timeline, for detection and recovery.
chaos_mark() {
    echo "$(chaos_now) $*" >>"$WORK/marks"
}

# chaos_spawn LABEL [--netns NS] COMMAND...: starts COMMAND in the background, logging to
# $WORK/LABEL.log; its pid is in $SPAWNED and in the cleanup list.
chaos_spawn() {
    local label=$1
    shift
    local prefix=()
    if [ "${1:-}" = --netns ]; then
        prefix=(ip netns exec "$2")
        shift 2
    fi
    "${prefix[@]}" "$@" >>"$WORK/$label.log" 2>&1 &
    SPAWNED=$!
    echo "$SPAWNED $label" >>"$WORK/pids"
}

# The pipeline most scenarios run: numbered lines through STAGE_YAML (default: a `sleep`
# builtin of ITEM_DELAY, to make the run last long enough to hurt it) into a file of lines.
chaos_topology() {
    local items=$1
    local stage_yaml=${2:-}
    seq 1 "$items" >"$WORK/input.txt"
    if [ -z "$stage_yaml" ]; then
        stage_yaml="  - name: work
    builtin: sleep
    options: {duration: ${ITEM_DELAY:-1ms}}
    replicas: ${REPLICAS:-4}
    max-attempts: ${MAX_ATTEMPTS:-5}"
    fi
    cat >"$WORK/pipeline.yaml" <<EOF
version: 1
name: chaos-$CHAOS_NAME
source:
  file: $WORK/input.txt
stages:
$stage_yaml
sink:
  file: $WORK/sink.txt
  format: lines
EOF
}

# chaos_start_broker [--netns NS] [EXTRA BROKER OPTIONS...]: the broker on $DISPATCH/$AGGREGATOR,
# events on an ipc:// endpoint (a file, so it is read from outside any namespace), the event
# recorder and the sink watcher; returns once the broker publishes its first metrics.
chaos_start_broker() {
    local netns=()
    if [ "${1:-}" = --netns ]; then netns=(--netns "$2"); shift 2; fi
    EVENTS="ipc://$WORK/events.ipc"
    CHAOS_STEP="starting the broker"
    chaos_spawn events "$LANCOMPUTE" events "$EVENTS"
    # The recorder writes JSON to its log; keep standard error apart by reading only JSON lines later.
    EVENTS_PID=$SPAWNED
    BROKER_COMMAND=("${netns[@]}" "$LANCOMPUTE" broker "$WORK/pipeline.yaml" \
        --bind "$DISPATCH" --aggregator "$AGGREGATOR" --events "$EVENTS" --metrics-interval "${METRICS_INTERVAL:-0.2}" \
        --dead-letter "$WORK/dead-letter.jsonl" --json "$@")
    chaos_spawn broker "${BROKER_COMMAND[@]}"
    BROKER_PID=$SPAWNED
    chaos_spawn sink-watcher python3 "$CHAOS_PY" watch-sink "$WORK/sink.txt" "$WORK/sink-growth.log" "$WORK/stop"
    local tries=0
    until grep -q '"type":"metrics"' "$WORK/events.log" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 200 ] || ! kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "chaos $CHAOS_NAME: the broker did not come up:" >&2
            tail -20 "$WORK/broker.log" >&2
            exit 1
        fi
        chaos_sleep 0.05
    done
}

# The broker again, with the same command (after it was killed: it resumes from its journal when
# started with --state); its new pid in $BROKER_PID.
chaos_restart_broker() {
    chaos_spawn broker "${BROKER_COMMAND[@]}"
    BROKER_PID=$SPAWNED
}

# A pipeline whose source is `pull:` on $SOURCE, fed by `lancompute feed`: numbered lines in
# $WORK/input.txt for the producer, a `sleep` of ITEM_DELAY, a file sink. chaos_feed_endpoints first.
chaos_pull_topology() {
    seq 1 "$1" >"$WORK/input.txt"
    cat >"$WORK/pipeline.yaml" <<EOF
version: 1
name: chaos-$CHAOS_NAME
source:
  pull: $SOURCE
stages:
  - name: work
    builtin: sleep
    options: {duration: ${ITEM_DELAY:-1ms}}
    replicas: ${REPLICAS:-4}
sink:
  file: $WORK/sink.txt
  format: lines
EOF
}

# Dispatch, aggregator and pull-source endpoints on free loopback ports.
chaos_feed_endpoints() {
    local ports
    read -r -a ports <<<"$(python3 "$CHAOS_PY" free-ports 3)"
    DISPATCH="tcp://127.0.0.1:${ports[0]}"
    AGGREGATOR="tcp://127.0.0.1:${ports[1]}"
    SOURCE="tcp://127.0.0.1:${ports[2]}"
    WORKER_BROKER=$DISPATCH
}

# The lines before the first one a failed `lancompute feed` had not got acknowledged, from its
# log ("every line before line N was"); all of them when it never said so.
chaos_feed_acknowledged() {
    local log=$1 first
    first=$(grep -o 'every line before line [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    if [ -n "$first" ]; then head -n $((first - 1)) "$WORK/input.txt"; else cat "$WORK/input.txt"; fi
}

# chaos_wait_settled SECONDS: until the sink stopped growing for 2 s (a pull source never ends by itself).
chaos_wait_settled() {
    local last=-1 now tries=0
    CHAOS_STEP="waiting for the sink to settle"
    while now=$(chaos_sink_lines) && [ "$now" != "$last" ] && [ "$tries" -lt "$(($1 / 2))" ]; do
        last=$now
        tries=$((tries + 1))
        chaos_sleep 2
    done
}

# Local endpoints on free loopback ports.
chaos_local_endpoints() {
    local ports
    read -r -a ports <<<"$(python3 "$CHAOS_PY" free-ports 2)"
    DISPATCH="tcp://127.0.0.1:${ports[0]}"
    AGGREGATOR="tcp://127.0.0.1:${ports[1]}"
    WORKER_BROKER=$DISPATCH
}

# chaos_start_worker LABEL [--netns NS]: one worker of $WORKER_BROKER; pid in $SPAWNED.
chaos_start_worker() {
    local label=$1
    shift
    chaos_spawn "$label" "$@" "$LANCOMPUTE" worker --broker "$WORKER_BROKER" --workdir "$WORK" --insecure
}

# chaos_supervise LABEL [--netns NS]: keeps one worker running, restarting it whenever it dies
# and marking each restart as a heal; the current worker's pid is in $WORK/LABEL.pid.
chaos_supervise() {
    local label=$1
    shift
    (
        trap - EXIT INT TERM
        # Bash reports each killed worker ("Killed"): that is the point here, not news.
        exec 2>>"$WORK/supervisor-$label.log"
        while [ ! -e "$WORK/stop" ]; do
            chaos_start_worker "$label" "$@"
            echo "$SPAWNED" >"$WORK/$label.pid"
            wait "$SPAWNED" || true
            [ -e "$WORK/stop" ] && break
            chaos_mark heal
        done
    ) &
    echo "$! supervisor-$label" >>"$WORK/supervisors"
    local tries=0
    until [ -s "$WORK/$label.pid" ] || [ "$tries" -gt 100 ]; do tries=$((tries + 1)); sleep 0.02; done
}

# The pid of the worker a supervisor currently runs.
chaos_supervised_pid() { cat "$WORK/$1.pid"; }

# chaos_wait_broker SECONDS: waits for the broker to exit; its status in $BROKER_STATUS (124: it
# was still running after SECONDS).
chaos_wait_broker() {
    local limit=$(($1 * 20)) tries=0
    CHAOS_STEP="waiting for the broker to finish"
    while kill -0 "$BROKER_PID" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt "$limit" ]; then BROKER_STATUS=124; return; fi
        chaos_sleep 0.05
    done
    BROKER_STATUS=0
    wait "$BROKER_PID" || BROKER_STATUS=$?
}

# Lines of the sink so far.
chaos_sink_lines() { if [ -e "$WORK/sink.txt" ]; then wc -l <"$WORK/sink.txt"; else echo 0; fi; }

# chaos_wait_sink COUNT SECONDS: until the sink holds COUNT lines (or the broker ended).
chaos_wait_sink() {
    local tries=0 limit=$(($2 * 20))
    CHAOS_STEP="waiting for $1 lines in the sink"
    while [ "$(chaos_sink_lines)" -lt "$1" ] && kill -0 "$BROKER_PID" 2>/dev/null && [ "$tries" -lt "$limit" ]; do
        tries=$((tries + 1))
        chaos_sleep 0.05
    done
}

# Three test hosts in network namespaces: `switch` holds a bridge with an nftables table
# (`bridge chaos`, chain `forward`) that faults add rules to; `head` (10.233.N.1, the broker)
# and `node` (10.233.N.2, the far worker) hang off it by veth pairs.
chaos_hosts() {
    [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v nft >/dev/null || {
        echo "chaos $CHAOS_NAME: SKIPPED (needs root, iproute2 and nftables for test hosts)"
        exit 77
    }
    local suffix
    suffix=$(printf '%04x' $((RANDOM % 65536)))
    local subnet=$((RANDOM % 200 + 20))
    SWITCH="lcc-sw-$suffix" HEAD="lcc-head-$suffix" NODE="lcc-node-$suffix"
    HEAD_ADDRESS="10.233.$subnet.1" NODE_ADDRESS="10.233.$subnet.2"
    NODE_LINK="lcn$suffix"
    local namespace
    for namespace in "$SWITCH" "$HEAD" "$NODE"; do
        ip netns add "$namespace"
        echo "$namespace" >>"$WORK/netns"
        ip -n "$namespace" link set lo up
    done
    ip -n "$SWITCH" link add br0 type bridge
    ip -n "$SWITCH" link set br0 up
    local host address link
    for host in head node; do
        if [ "$host" = head ]; then namespace=$HEAD address=$HEAD_ADDRESS link="lch$suffix"; else namespace=$NODE address=$NODE_ADDRESS link=$NODE_LINK; fi
        ip link add "$link" type veth peer name "${link}p"
        ip link set "$link" netns "$namespace"
        ip link set "${link}p" netns "$SWITCH"
        ip -n "$SWITCH" link set "${link}p" master br0
        ip -n "$SWITCH" link set "${link}p" up
        ip -n "$namespace" addr add "$address/24" dev "$link"
        ip -n "$namespace" link set "$link" up
    done
    ip netns exec "$SWITCH" nft add table bridge chaos
    ip netns exec "$SWITCH" nft add chain bridge chaos forward '{ type filter hook forward priority 0; policy accept; }'
}

# chaos_nft RULE...: adds a rule at the bridge (e.g. `ip saddr X drop`); chaos_nft_flush removes them all.
chaos_nft() { ip netns exec "$SWITCH" nft add rule bridge chaos forward "$@"; }
chaos_nft_flush() { ip netns exec "$SWITCH" nft flush chain bridge chaos forward; }

# chaos_report [REPORT OPTIONS...]: prints the summary line and returns its verdict.
chaos_report() {
    local wall
    wall=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$CHAOS_START" "$(chaos_now)")
    touch "$WORK/stop"
    CHAOS_STEP="reporting"
    grep '^{' "$WORK/events.log" >"$WORK/events.jsonl" 2>/dev/null || true
    local strict=()
    [ -n "${CHAOS_STRICT_TIMING:-}" ] && strict=(--strict-timing)
    python3 "$CHAOS_PY" report --name "$CHAOS_NAME" --input "$WORK/input.txt" --sink "$WORK/sink.txt" \
        --dead-letter "$WORK/dead-letter.jsonl" --events "$WORK/events.jsonl" --marks "$WORK/marks" \
        --sink-log "$WORK/sink-growth.log" --wall "$wall" "${strict[@]}" "$@"
}
