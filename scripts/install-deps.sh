#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and the demo need.
# Idempotent: prints nothing and touches nothing when every package is present.
set -euo pipefail

packages=(
	build-essential meson ninja-build pkg-config clang lld
	libsystemd-dev libmicrohttpd-dev libjansson-dev libsqlite3-dev check
	dbus python3-bleak python3-jinja2 python3-yaml yamllint shellcheck
	sqlite3 curl python3-jsonschema
)
if [ "${BLUPOW_DEPS:-}" = "full" ]; then
	packages+=(libclang-rt-14-dev valgrind wrk nginx-light chromium)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
