#!/usr/bin/env bash
# The real-stack tier's virtual machine: Debian 12's own kernel (its bluetooth and hci_vhci
# modules), bluetoothd 5.66 and btvirt's emulated LE controllers, under qemu.
#
#   tests/realstack/vm.sh prepare            installs the packages, builds the initramfs (cached)
#   tests/realstack/vm.sh run OUT SCRIPT     boots, runs SCRIPT (sh, as /mnt/job.sh) inside the
#                                            guest, powers off
#
# The guest's root is this host's root, shared read-only over 9p, so the guest runs the very
# binaries built here; OUT is shared writable (the guest sees it as /mnt) for logs and results.
# The guest's writable places (/tmp, /run, /var/lib/bluetooth) are tmpfs. Exit status: SCRIPT's,
# or 125 when the VM could not start (said so on stderr), so that a caller never mistakes a
# machine that did not boot for a passing run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BLUPOW_VM_CACHE:-$root/build/realstack}
packages=(qemu-system-x86 linux-image-amd64 busybox-static bluez bluez-test-tools cpio apparmor jq e2fsprogs)
# BLUPOW_VM_KERNEL: empty for Debian 12's own kernel (installed on this host with the packages
# above); or a suite of Debian's archive (trixie-backports), whose linux-image-amd64 is fetched
# with apt from this host's own Debian mirror and unpacked into the cache, never installed here:
# the AppArmor test's D-Bus half needs a kernel with AppArmor's D-Bus mediation (Linux 6.17 and
# later), which Debian 12's 6.1 does not have. The guest's userspace stays this host's.
suite=${BLUPOW_VM_KERNEL:-}

die_vm() {
	echo "realstack: the VM could not start: $*" >&2
	exit 125
}

# Sets kv (the kernel's release), vmlinuz and modbase (the root under which lib/modules/$kv
# holds its modules: / for the host's kernel, the unpacked tree for a suite's).
select_kernel() {
	if [ -z "$suite" ]; then
		# The newest Debian kernel installed (linux-image-amd64 depends on it), not the running one.
		kv=$(find /lib/modules -maxdepth 1 -name '*-amd64' -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
		vmlinuz=/boot/vmlinuz-$kv
		modbase=/
	else
		modbase=$cache/kernel-$suite/tree/usr
		kv=$(find "$modbase/lib/modules" -maxdepth 1 -name '*-amd64' -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
		vmlinuz=$modbase/lib/modules/$kv/vmlinuz
	fi
}

# A private apt (its own lists and cache, this host's Debian mirror, the suite's codename) that
# downloads linux-image-amd64's kernel and modules packages; dpkg-deb unpacks them.
fetch_kernel() {
	local dir=$cache/kernel-$suite
	[ ! -f "$dir/stamp" ] || return 0
	local codename uri
	# shellcheck disable=SC1091
	codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
	# shellcheck disable=SC2016 # apt's own $(FIELD) placeholders
	uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' |
		awk -v c="$codename" '$2 == c { print $1; exit }')
	[ -n "$uri" ] || die_vm "no apt source for Debian $codename to fetch the $suite kernel from"
	rm -rf "$dir"
	mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/tree"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" > "$dir/sources.list"
	local apt=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir" -o Dir::Cache::archives="$dir/archives"
		-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
		-o Dir::State::status=/dev/null -o APT::Sandbox::User=root -qq)
	echo "realstack: fetching linux-image-amd64 from $suite"
	apt-get "${apt[@]}" update || die_vm "apt could not read $suite"
	# linux-image-amd64 -> linux-image-KV -> linux-binary-KV (vmlinuz) and linux-modules-KV.
	local image pkgs
	image=$(apt-cache "${apt[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
	[ -n "$image" ] || die_vm "$suite has no linux-image-amd64"
	pkgs=$(apt-cache "${apt[@]}" depends "$image" | awk '/Depends: linux-(binary|modules)-/ { print $2 }')
	[ -n "$pkgs" ] || pkgs=$image
	# shellcheck disable=SC2086
	(cd "$dir/archives" && apt-get "${apt[@]}" download $pkgs) || die_vm "apt could not download $pkgs"
	local deb
	for deb in "$dir"/archives/*.deb; do
		dpkg-deb -x "$deb" "$dir/tree"
	done
	local k
	k=$(find "$dir/tree/usr/lib/modules" -maxdepth 1 -name '*-amd64' -printf '%f\n' | sort -V | tail -n 1)
	if [ -z "$k" ] || [ ! -f "$dir/tree/usr/lib/modules/$k/vmlinuz" ]; then
		die_vm "no vmlinuz in $pkgs"
	fi
	depmod -b "$dir/tree/usr" "$k" 2>/dev/null
	rm -rf "$dir/archives" "$dir/lists"
	touch "$dir/stamp"
}

prepare() {
	local missing=() p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "realstack: installing ${missing[*]}"
		local sudo=""
		[ "$(id -u)" -eq 0 ] || sudo=sudo
		export DEBIAN_FRONTEND=noninteractive
		$sudo apt-get update -qq
		$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
	fi
	[ -z "$suite" ] || fetch_kernel
	select_kernel
	if [ -z "$kv" ] || [ ! -f "$vmlinuz" ]; then
		die_vm "no kernel ${suite:-in /boot (linux-image-amd64)}"
	fi
	local stamp="$cache/initramfs-$kv.stamp"
	if [ -f "$stamp" ] && [ "$stamp" -nt "$here/vm.sh" ]; then
		return 0
	fi
	mkdir -p "$cache"
	local work
	work=$(mktemp -d)
	mkdir -p "$work/bin" "$work/proc" "$work/sys" "$work/dev" "$work/newroot" "$work/lib/modules"
	cp /usr/bin/busybox "$work/bin/busybox"
	# Only what mounting the 9p root needs, in dependency order (modprobe tells it; what the kernel
	# has built in it skips), uncompressed for busybox's insmod; everything else (bluetooth,
	# hci_vhci) is loaded from the modules' place once the root is mounted.
	local m ko
	for m in virtio_pci 9pnet_virtio 9p; do
		# A suite's unpacked tree has no modules.builtin: a built-in module is "not found" there.
		modprobe -d "$modbase" -S "$kv" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }' || true
	done | awk '!seen[$0]++' | while read -r ko; do
		m=$(basename "$ko")
		m=${m%.xz}
		m=${m%.zst}
		case "$ko" in
		*.xz) xz -dc "$ko" > "$work/lib/modules/$m" ;;
		*.zst) zstd -qdc "$ko" > "$work/lib/modules/$m" ;;
		*) cp "$ko" "$work/lib/modules/$m" ;;
		esac
		echo "${m%.ko}" >> "$work/lib/modules/order"
	done
	cat > "$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /lib/modules/order 2>/dev/null); do
	/bin/busybox insmod /lib/modules/$m.ko || echo "initramfs: insmod $m failed"
done
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /newroot ||
	{ echo "initramfs: cannot mount the host's root"; /bin/busybox poweroff -f; }
exec /bin/busybox switch_root /newroot /bin/sh "$(/bin/busybox sed -n 's/.*blupow.init=\([^ ]*\).*/\1/p' /proc/cmdline)"
INIT
	chmod +x "$work/init"
	(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initramfs-$kv.img"
	rm -rf "$work"
	touch "$stamp"
	echo "realstack: initramfs for $kv in $cache"
}

# KVM where it works; on hosts whose nested KVM cannot boot this kernel (qemu aborts at once with
# "failed to set MSR"), TCG, which boots the guest in seconds anyway.
accel_args() {
	case "${BLUPOW_VM_ACCEL:-auto}" in
	tcg) echo "-accel tcg" ;;
	kvm) echo "-accel kvm -cpu host" ;;
	auto)
		if [ -w /dev/kvm ] && timeout 10 qemu-system-x86_64 -accel kvm -cpu host -display none \
			-no-reboot -kernel /dev/null -m 64 > /dev/null 2>&1; then
			echo "-accel kvm -cpu host"
		else
			echo "-accel tcg"
		fi
		;;
	esac
}

run() {
	local out=$1 script=$2
	prepare
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	rm -f "$out/guest-status" "$out/guest-booted"
	# Copied in: the guest's /tmp is its own.
	cp "$script" "$out/job.sh"
	local accel disk=() modules=""
	# The guest finds a suite kernel's modules where they were unpacked (guest-init.sh binds them).
	[ -z "$suite" ] || modules="blupow.modules=$modbase/lib/modules"
	accel=$(accel_args)
	# A disk of its own (the power-cut test): raw, virtio, no host cache, so that what the guest
	# was told is written is in the image, and a killed qemu is a power cut.
	[ -z "${BLUPOW_VM_DISK:-}" ] || disk=(-drive "file=$BLUPOW_VM_DISK,format=raw,if=virtio,cache=none")
	echo "realstack: booting $kv ($accel)"
	# shellcheck disable=SC2086
	timeout "${BLUPOW_VM_TIMEOUT:-1200}" qemu-system-x86_64 $accel -m 2048 -smp 2 \
		-nographic -no-reboot -monitor none -serial "file:$out/console.log" \
		-kernel "$vmlinuz" -initrd "$cache/initramfs-$kv.img" \
		-append "console=ttyS0 panic=-1 loglevel=4 apparmor=1 security=apparmor blupow.init=$here/guest-init.sh $modules" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs local,path="$out",mount_tag=out,security_model=none \
		"${disk[@]}" < /dev/null || true
	[ -f "$out/guest-booted" ] || {
		tail -n 30 "$out/console.log" >&2 || true
		die_vm "the guest never reached its init (console: $out/console.log)"
	}
	[ -f "$out/guest-status" ] || {
		tail -n 30 "$out/console.log" >&2 || true
		echo "realstack: the guest stopped before its script finished (console: $out/console.log)" >&2
		exit 1
	}
	return "$(cat "$out/guest-status")"
}

case "${1:-}" in
prepare) prepare ;;
run) [ $# -eq 3 ] || { echo "usage: $0 run OUT SCRIPT" >&2; exit 2; }; run "$2" "$3" ;;
*) echo "usage: $0 prepare | run OUT SCRIPT" >&2; exit 2 ;;
esac
