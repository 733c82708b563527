#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 20) on a copy of its seed corpus.
# Fails on the first finding (crash, sanitizer report, leak, timeout) and keeps its input in
# build-fuzz/findings/. By hand, for long runs: ./scripts/fuzz.sh build-fuzz 0 -runs=10000000
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-20}
shift 2 || true
root=$(cd "$(dirname "$0")/.." && pwd)
findings="$build/findings"
mkdir -p "$findings"
# Sanitizer reports are findings: stop at the first one instead of printing and going on.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
for target in "$build"/tests/fuzz-*; do
	if [ ! -f "$target" ] || [ ! -x "$target" ]; then continue; fi
	name=$(basename "$target" | sed 's/^fuzz-//')
	work=$(mktemp -d)
	cp -r "$root/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
	args=(-max_len=4096 -print_final_stats=1 -artifact_prefix="$findings/$name-")
	[ "$seconds" != 0 ] && args+=(-max_total_time="$seconds")
	echo "fuzz: $name"
	status=0
	"$target" "${args[@]}" "$@" "$work" >"$work.log" 2>&1 || status=$?
	grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|runtime error|Test unit written' "$work.log" || true
	rm -rf "$work" "$work.log"
	if [ "$status" -ne 0 ]; then
		echo "fuzz: $name failed (exit status $status); the input is in $findings/"
		exit 1
	fi
done
