#!/bin/sh
# A stand-in platform for the rollout example: it keeps a traffic weight, a
# list of deployments and the metrics its monitoring would report, in files
# under $CAIRN_PLATFORM_STATE (default platform/state, relative to the plan).
# cairn's hooks call it; it reads the hook payload (JSON) on stdin.
#
#   ctl.sh deploy|undeploy ENV   record a deployment to ENV
#   ctl.sh weight PERCENT        send PERCENT of traffic to the new version;
#                                the observed metrics become the change's
#                                metrics.json (above 0; a bundle's "metrics")
#                                or the baseline (0)
#   ctl.sh notify                append the notification to notifications.log
#
# Every run is logged with its idempotency key and attempt in hook-runs.log,
# so a test can count runs. CAIRN_PLATFORM_BROKEN_ROLLBACK=1 makes
# `weight 0` leave the new version's metrics in place (a rollback that does
# not take), for the verification to catch.
set -eu
state="${CAIRN_PLATFORM_STATE:-platform/state}"
here=$(dirname "$0")
mkdir -p "$state"
payload=$(cat)
action="${1:-}"
[ $# -gt 0 ] && shift
printf '%s %s %s %s\n' "${CAIRN_IDEMPOTENCY_KEY:-manual}" "${CAIRN_ATTEMPT:-1}" "$action" "$*" >> "$state/hook-runs.log"

# Replaces $state/metrics.json with $1, atomically.
publish_metrics() {
    cp "$1" "$state/metrics.json.tmp"
    mv "$state/metrics.json.tmp" "$state/metrics.json"
}

case "$action" in
    deploy|undeploy)
        printf '%s %s\n' "$action" "$1" >> "$state/deployments.log"
        ;;
    weight)
        percent="$1"
        change=$(printf '%s' "$payload" | sed -n 's/.*"change":"\([^"]*\)".*/\1/p')
        if [ "$percent" -eq 0 ] && [ "${CAIRN_PLATFORM_BROKEN_ROLLBACK:-}" = 1 ]; then
            echo "ctl.sh: weight 0 acknowledged, but traffic stays on the new version" >&2
            echo "$percent" > "$state/weight"
            exit 0
        fi
        echo "$percent" > "$state/weight"
        if [ "$percent" -gt 0 ] && [ -f "$change/metrics.json" ]; then
            publish_metrics "$change/metrics.json"
        elif [ "$percent" -gt 0 ] && [ -f "$change" ] \
            && python3 -c 'import json, sys; m = json.load(open(sys.argv[1])).get("metrics"); sys.exit(0 if m else 1)' "$change" 2>/dev/null; then
            # A change bundle (a rollout started over HTTP): its "metrics".
            python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["metrics"], sys.stdout)' "$change" > "$state/bundle-metrics.json"
            publish_metrics "$state/bundle-metrics.json"
        else
            publish_metrics "$here/baseline-metrics.json"
        fi
        ;;
    notify)
        printf '%s\n' "$payload" >> "$state/notifications.log"
        ;;
    *)
        echo "ctl.sh: unknown action '$action' (deploy, undeploy, weight, notify)" >&2
        exit 64
        ;;
esac
