#!/usr/bin/env bash
# Builds the libmicrohttpd that blupowd links: Debian 12's own source (0.9.75), static, without
# HTTPS. Debian's shared libmicrohttpd12 links GnuTLS and initialises it when it loads; its pages
# were 2.3 MiB of the daemon's 8.5 MiB RSS, for a daemon that never speaks TLS (Home Assistant's
# ingress and the LAN API are plain HTTP). Built from the tarball Debian ships, checked against the
# hash in Debian's .dsc. Debian's one patch (0001-PostProcessor-DoS) touches only the POST
# processor, which is not built here. The source comes through apt (a deb-src list made from this
# machine's own sources), so it is fetched from whatever mirror the machine already uses.
# Idempotent: does nothing when the library of this version is already in place.
#   scripts/build-libmicrohttpd.sh [PREFIX]     (default: deps/libmicrohttpd in the source tree)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-$root/deps/libmicrohttpd}
version=0.9.75
sha256=796e7e217a4802679fcac667a4e98501c53185dcf50ca0583870e84192620131
stamp="$prefix/.blupow-$version-$sha256"

[ -f "$stamp" ] && [ -f "$prefix/lib/libmicrohttpd.a" ] && exit 0

work=$(mktemp -d /tmp/blupow-mhd.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A private apt state: the machine's sources as deb-src, nothing changed in /etc/apt.
apt=$work/apt
mkdir -p "$apt/lists/partial" "$apt/parts" "$apt/cache/archives/partial" "$work/dl"
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && sed 's/^Types:.*/Types: deb-src/' "$f" > "$apt/parts/$(basename "$f")"
done
[ -f /etc/apt/sources.list ] && sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$apt/parts/sources.list"
aptopts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/parts" -o "Dir::State::Lists=$apt/lists"
	-o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
echo "build-libmicrohttpd: fetching Debian's libmicrohttpd $version source with apt"
fetched() {
	apt-get "${aptopts[@]}" update -qq > "$work/apt.log" 2>&1 &&
		(cd "$work/dl" && apt-get "${aptopts[@]}" source --download-only -qq "libmicrohttpd=$version-6") >> "$work/apt.log" 2>&1
}
if ! fetched; then
	tail -20 "$work/apt.log" >&2
	echo "build-libmicrohttpd: apt could not fetch the source (a deb-src of bookworm is needed)" >&2
	exit 1
fi
mv "$work/dl/libmicrohttpd_$version.orig.tar.xz" "$work/src.tar.xz"
echo "$sha256  $work/src.tar.xz" | sha256sum -c --quiet - || {
	echo "build-libmicrohttpd: the source apt fetched does not match the pinned sha256" >&2
	exit 1
}
tar -xJf "$work/src.tar.xz" -C "$work"
cd "$work/libmicrohttpd-$version"
# Only what blupowd uses: external epoll loop, suspend/resume, memory and fd responses.
# Hardening flags as Debian builds it; -ffunction-sections so the link keeps only what is called.
./configure --prefix="$prefix" --disable-shared --enable-static --with-pic \
	--disable-https --without-gnutls --disable-dauth --disable-bauth --disable-postprocessor \
	--disable-httpupgrade --disable-curl --disable-doc --disable-examples --disable-nls \
	CFLAGS="-O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2 -ffunction-sections -fdata-sections" \
	> "$work/configure.log" 2>&1 || {
	tail -30 "$work/configure.log" >&2
	exit 1
}
make -j"$(nproc)" > "$work/make.log" 2>&1 || {
	tail -30 "$work/make.log" >&2
	exit 1
}
rm -rf "$prefix"
make install > /dev/null
touch "$stamp"
echo "build-libmicrohttpd: installed $version (static, no HTTPS) in $prefix"
