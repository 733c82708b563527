#!/usr/bin/env bash
# Starts a private dbus-daemon that behaves like the system bus and prints three lines:
# its address (for DBUS_SYSTEM_BUS_ADDRESS), its pid and the directory of its socket (for the
# caller to remove once the bus is stopped). With "deny", the bus refuses
# every message to org.bluez, as an AppArmor or bus-policy denial does.
#   eval "$(scripts/test-bus.sh --env)"   exports DBUS_SYSTEM_BUS_ADDRESS, BLUPOW_BUS_PID and BLUPOW_BUS_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
conf="$root/tests/data/system-bus.conf"
env_out=0
for arg in "$@"; do
	case "$arg" in
	deny) conf="$root/tests/data/system-bus-deny.conf" ;;
	--env) env_out=1 ;;
	*) echo "usage: $0 [deny] [--env]" >&2; exit 2 ;;
	esac
done
dir=$(mktemp -d /tmp/blupow-bus.XXXXXX)
out=$(dbus-daemon --config-file="$conf" --address="unix:path=$dir/system_bus_socket" \
	--fork --print-address=1 --print-pid=1 2>/dev/null)
addr=$(echo "$out" | sed -n 1p)
pid=$(echo "$out" | sed -n 2p)
if [ "$env_out" = 1 ]; then
	echo "export DBUS_SYSTEM_BUS_ADDRESS='$addr' BLUPOW_BUS_PID=$pid BLUPOW_BUS_DIR='$dir'"
else
	echo "$addr"
	echo "$pid"
	echo "$dir"
fi
