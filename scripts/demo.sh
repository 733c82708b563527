#!/usr/bin/env bash
# The demo: a private bus, blupow-sim with the demo scenario, and blupowd serving the status
# page on http://localhost:8099/. Ctrl-C stops everything.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
port=${BLUPOW_DEMO_PORT:-8099}
work=$root/.demo
mkdir -p "$work/data"
eval "$("$root/scripts/test-bus.sh" --env)"
cleanup() {
	kill "${daemon_pid:-}" "${sim_pid:-}" 2>/dev/null || true
	wait 2>/dev/null || true
	kill "$BLUPOW_BUS_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
"$root/$build/tests/sim/blupow-sim" --scenario "$root/scenarios/demo.json" &
sim_pid=$!
sleep 0.5
"$root/$build/src/blupowd" --options "$root/scenarios/demo.options.json" --data-dir "$work/data" \
	--web-dir "$root/web" --port "$port" --bind 127.0.0.1 &
daemon_pid=$!
echo "BluPow demo: status page on http://localhost:$port/ (API: curl localhost:$port/api/v1/devices)"
echo "Simulator control: DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS busctl --system call org.blupow.Sim / org.blupow.Sim1 ..."
wait "$daemon_pid"
