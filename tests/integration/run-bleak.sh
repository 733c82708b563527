#!/usr/bin/env bash
# bleak (a BlueZ client nobody here wrote) against blupow-sim on a private bus.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BLUPOW_BUILD_ROOT:-$root/build}
eval "$("$root/scripts/test-bus.sh" --env)"
"$build/sim/blupow-sim" --scenario "$root/scenarios/demo.json" > /dev/null 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; kill "$BLUPOW_BUS_PID" 2>/dev/null' EXIT
for _ in $(seq 50); do
	busctl --system status org.bluez > /dev/null 2>&1 && break
	sleep 0.1
done
if timeout 60 /usr/bin/python3 "$root/tests/integration/bleak_client.py"; then
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
	exit 1
fi
