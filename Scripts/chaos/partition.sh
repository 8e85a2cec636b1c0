# Sourced by partition-drop, partition-link and aggregator-cut: the broker on a head host, the
# only worker on a far host behind a bridge; CUT and HEAL are the scenario's fault and remedy.
# CUT_SECONDS long; MUST_DETECT=1 when the broker has to notice the cut.

if [ "$QUICK" = 1 ]; then ITEMS=${ITEMS:-20000}; else ITEMS=${ITEMS:-100000}; fi
CUT_SECONDS=${CUT_SECONDS:-30}

partition_run() {
    local name=$1 cut=$2 heal=$3
    chaos_begin "$name" "${CHAOS_TIMEOUT:-300}"
    chaos_hosts
    ITEM_DELAY=2ms chaos_topology "$ITEMS"
    DISPATCH="tcp://$HEAD_ADDRESS:5555"
    AGGREGATOR="tcp://0.0.0.0:5557"
    WORKER_BROKER=$DISPATCH
    chaos_start_broker --netns "$HEAD" --insecure
    chaos_start_worker far-worker --netns "$NODE"
    local worker=$SPAWNED
    chaos_wait_sink $((ITEMS / 10)) 60
    CHAOS_STEP="cutting the far host off"
    chaos_mark fault "$worker"
    $cut
    chaos_sleep "$CUT_SECONDS"
    CHAOS_STEP="healing"
    chaos_mark heal
    $heal
    chaos_wait_broker 180
    local failures=()
    [ "$BROKER_STATUS" = 0 ] || failures+=(--fail "broker exited with status $BROKER_STATUS")
    local detect=()
    [ "${MUST_DETECT:-1}" = 1 ] && detect=(--must-detect)
    chaos_report "${detect[@]}" "${failures[@]}"
}
