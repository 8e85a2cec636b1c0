# Sourced by run-all and ci: runs scenarios one after the other, keeps their summary lines,
# and prints them again at the end with one count line.

chaos_suite() {
    set -u
    if [ -z "${LANCOMPUTE:-}" ]; then
        (cd ../.. && swift build --product lancompute >/dev/null) || { echo "chaos: swift build failed"; exit 2; }
        export LANCOMPUTE="$(cd ../.. && pwd)/.build/debug/lancompute"
    fi
    local passed=0 failed=0 skipped=0 lines=() scenario output status
    for scenario in "$@"; do
        output=$(./"$scenario" 2>&1)
        status=$?
        printf '%s\n' "$output"
        case $status in
            0) passed=$((passed + 1)) ;;
            77) skipped=$((skipped + 1)) ;;
            *) failed=$((failed + 1)); output="$output (exit $status)" ;;
        esac
        lines+=("$(printf '%s\n' "$output" | grep -E '^chaos [^ ]+: (in=|SKIPPED|FAIL)' | tail -1)")
    done
    echo "--- chaos summary"
    printf '%s\n' "${lines[@]}"
    echo "chaos: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" = 0 ]
}
