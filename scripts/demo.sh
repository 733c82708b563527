#!/usr/bin/env bash
# The demo: a private bus, blupow-sim with the demo scenario, and blupowd serving the status
# page on http://localhost:8099/. Ctrl-C stops everything.
#   scripts/demo.sh [BUILD_DIR]   BUILD_DIR relative to the source tree or absolute (default build);
#   BLUPOW_DEMO_PORT (8099) and BLUPOW_DEMO_DIR (.demo, where the history is kept) change the rest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case "$build" in
/*) ;;
*) build=$root/$build ;;
esac
port=${BLUPOW_DEMO_PORT:-8099}
work=${BLUPOW_DEMO_DIR:-$root/.demo}
for exe in "$build/sim/blupow-sim" "$build/src/blupowd"; do
	if [ ! -x "$exe" ]; then
		echo "demo: $exe is missing: build first (make)" >&2
		exit 1
	fi
done
mkdir -p "$work/data"
eval "$("$root/scripts/test-bus.sh" --env)"
cleanup() {
	kill "${daemon_pid:-}" "${sim_pid:-}" 2>/dev/null || true
	wait 2>/dev/null || true
	kill "$BLUPOW_BUS_PID" 2>/dev/null || true
	rm -rf "$BLUPOW_BUS_DIR" # the bus's socket directory, made by test-bus.sh
}
trap cleanup EXIT INT TERM
"$build/sim/blupow-sim" --scenario "$root/scenarios/demo.json" &
sim_pid=$!
sleep 0.5
"$build/src/blupowd" --options "$root/scenarios/demo.options.json" --data-dir "$work/data" \
	--web-dir "$root/web" --port "$port" --bind 127.0.0.1 &
daemon_pid=$!
echo "BluPow demo: status page on http://localhost:$port/ (API: curl localhost:$port/api/v1/devices)"
echo "Simulator control: DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS busctl --system call org.blupow.Sim / org.blupow.Sim1 ..."
wait "$daemon_pid"
