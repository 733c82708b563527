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

die_vm() {
	echo "realstack: the VM could not start: $*" >&2
	exit 125
}

kernel_version() {
	# The newest Debian kernel installed (linux-image-amd64 depends on it), not the running one.
	find /lib/modules -maxdepth 1 -name '*-amd64' -printf '%f\n' | sort -V | tail -n 1
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
	local kv
	kv=$(kernel_version)
	if [ -z "$kv" ] || [ ! -f "/boot/vmlinuz-$kv" ]; then
		die_vm "no Debian kernel in /boot (linux-image-amd64)"
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
	# Only what mounting the 9p root needs, in dependency order; everything else (bluetooth,
	# hci_vhci) is loaded from the host's /lib/modules once the root is mounted.
	local m
	for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
		drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci fs/netfs/netfs \
		fs/fscache/fscache net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p; do
		cp "/lib/modules/$kv/kernel/$m.ko" "$work/lib/modules/"
		basename "$m" >> "$work/lib/modules/order"
	done
	cat > "$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /lib/modules/order); do
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
	local kv
	kv=$(kernel_version)
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	rm -f "$out/guest-status" "$out/guest-booted"
	# Copied in: the guest's /tmp is its own.
	cp "$script" "$out/job.sh"
	local accel disk=()
	accel=$(accel_args)
	# A disk of its own (the power-cut test): raw, virtio, no host cache, so that what the guest
	# was told is written is in the image, and a killed qemu is a power cut.
	[ -z "${BLUPOW_VM_DISK:-}" ] || disk=(-drive "file=$BLUPOW_VM_DISK,format=raw,if=virtio,cache=none")
	echo "realstack: booting $kv ($accel)"
	# shellcheck disable=SC2086
	timeout "${BLUPOW_VM_TIMEOUT:-1200}" qemu-system-x86_64 $accel -m 2048 -smp 2 \
		-nographic -no-reboot -monitor none -serial "file:$out/console.log" \
		-kernel "/boot/vmlinuz-$kv" -initrd "$cache/initramfs-$kv.img" \
		-append "console=ttyS0 panic=-1 loglevel=4 apparmor=1 security=apparmor blupow.init=$here/guest-init.sh" \
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
