#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 20) on a copy of its seed corpus.
# By hand, for long runs: ./scripts/fuzz.sh build-fuzz 0 -runs=10000000
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-20}
shift 2 || true
root=$(cd "$(dirname "$0")/.." && pwd)
for target in "$build"/tests/fuzz-*; do
	if [ ! -f "$target" ] || [ ! -x "$target" ]; then continue; fi
	name=$(basename "$target" | sed 's/^fuzz-//')
	work=$(mktemp -d)
	cp -r "$root/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
	args=(-max_len=4096 -print_final_stats=1)
	[ "$seconds" != 0 ] && args+=(-max_total_time="$seconds")
	echo "fuzz: $name"
	"$target" "${args[@]}" "$@" "$work" 2>&1 | grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|crash-' || true
	status=${PIPESTATUS[0]}
	rm -rf "$work"
	[ "$status" -eq 0 ] || { echo "fuzz: $name failed"; exit 1; }
done
