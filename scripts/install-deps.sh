#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and the demo need, then builds the
# HTTPS-less static libmicrohttpd that blupowd links (scripts/build-libmicrohttpd.sh).
# Idempotent: prints nothing and touches nothing when everything is present.
set -euo pipefail

# BLUPOW_DEPS=build: only what compiling needs (the add-on image's build stage).
# Default: building, the tests and the demo. BLUPOW_DEPS=full: also the benchmarks' peers
# and CI's sanitizer runtime.
mode=${BLUPOW_DEPS:-test}
packages=(
	build-essential meson ninja-build pkg-config curl xz-utils
	libsystemd-dev libjansson-dev libsqlite3-dev
)
if [ "$mode" != build ]; then
	packages+=(clang lld check dbus python3-bleak python3-jinja2 python3-yaml yamllint shellcheck
		sqlite3 python3-jsonschema chromium jq)
	# The status page test drives Chromium with playwright-core (Node.js 20 or newer).
	command -v node > /dev/null || packages+=(nodejs npm)
fi
if [ "$mode" = full ]; then
	packages+=(libclang-rt-14-dev valgrind wrk nginx-light)
fi
root=$(cd "$(dirname "$0")/.." && pwd)
ui_deps() {
	[ "$mode" = build ] && return 0
	[ -d "$root/tests/ui/node_modules/playwright-core" ] && return 0
	echo "install-deps: installing the status page test's npm packages"
	npm ci --prefix "$root/tests/ui" --no-audit --no-fund --loglevel=error > /dev/null
}

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	"$root/scripts/build-libmicrohttpd.sh"
	ui_deps
	exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
"$root/scripts/build-libmicrohttpd.sh"
ui_deps
