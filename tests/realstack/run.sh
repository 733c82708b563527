#!/usr/bin/env bash
# The real-stack tier: boots the VM (vm.sh) and runs the real-stack tests inside it against the
# build in BUILD. Logs of bluetoothd, btvirt, blupow-sim and blupowd land in BUILD/realstack/out
# (out-SUITE with BLUPOW_VM_KERNEL=SUITE: the guest then boots that suite's kernel, see vm.sh).
#   tests/realstack/run.sh [BUILD] [TEST ...]     (TEST: unittest names, default all)
# Exits 77 (meson's "skipped") only with BLUPOW_REALSTACK=skip; a VM that cannot start fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shift || true
if [ "${BLUPOW_REALSTACK:-}" = skip ]; then
	echo "realstack: skipped (BLUPOW_REALSTACK=skip)"
	exit 77
fi
[ "$(id -u)" -eq 0 ] || { echo "realstack: needs root (qemu's 9p share of / and apt)" >&2; exit 1; }
# A run on another kernel (BLUPOW_VM_KERNEL, see vm.sh) keeps its logs apart.
out=$build/realstack/out${BLUPOW_VM_KERNEL:+-$BLUPOW_VM_KERNEL}
rm -rf "$out"
mkdir -p "$out/logs"
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(discover -s "$here" -p 'test_*.py' -v)
job=$(mktemp)
trap 'rm -f "$job"' EXIT
{
	echo "export BLUPOW_SOURCE_ROOT='$root' BLUPOW_BUILD_ROOT='$build' BLUPOW_REALSTACK_LOGS=/mnt/logs"
	echo "export PYTHONDONTWRITEBYTECODE=1"
	# apparmor_rules.py's choice of rules, when one is made
	[ -z "${BLUPOW_RULES:-}" ] || printf "export BLUPOW_RULES='%s'\n" "$BLUPOW_RULES"
	echo "cd '$here'"
	printf '/usr/bin/python3 -m unittest'
	printf " '%s'" "${tests[@]}"
	echo
} > "$job"
status=0
BLUPOW_VM_CACHE=$build/realstack "$here/vm.sh" run "$out" "$job" || status=$?
cat "$out/guest.log" 2>/dev/null || true
if [ "$status" -eq 125 ]; then
	echo "realstack: FAILED: the VM did not start; nothing was tested on the real stack" >&2
	exit 1
fi
exit "$status"
