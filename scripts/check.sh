#!/usr/bin/env bash
# The README's test command (`make check`): every suite of BUILD. The real-stack tier (a VM
# under TCG, which mostly waits on its emulated radio: about a fifth of two cores) runs beside
# the other suites instead of after them; its output follows theirs. With meson test arguments
# of its own (TEST_ARGS), one meson test run with them.
#     scripts/check.sh BUILD [MESON-TEST-ARGS...]
set -uo pipefail
build=$1
shift
common=(-C "$build" --no-rebuild --verbose --print-errorlogs --num-processes 2)
if [ $# -gt 0 ]; then
	exec meson test "${common[@]}" "$@"
fi
out="$build/meson-logs/realstack-check.out"
mkdir -p "$build/meson-logs"
meson test "${common[@]}" --suite realstack --logbase realstack-testlog >"$out" 2>&1 &
realstack=$!
echo "check: the real-stack suite runs beside the others (its output at the end; $out)"
meson test "${common[@]}" --no-suite realstack
status=$?
wait "$realstack"
realstack_status=$?
echo "== the real-stack suite"
cat "$out"
[ "$status" -eq 0 ] && [ "$realstack_status" -eq 0 ]
