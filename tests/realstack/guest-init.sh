#!/bin/sh
# PID 1 of the real-stack VM, on the host's root (read-only). Makes the writable places, loads
# the Bluetooth modules' place, and runs the host's job (/mnt/job.sh); its exit status goes to
# /mnt/guest-status. Then the machine powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sys /sys 2>/dev/null
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
for d in /tmp /run /var/lib/bluetooth /var/tmp /dev/shm; do
	mount -t tmpfs -o mode=1777 tmpfs "$d"
done
# A kernel other than the host's brings its modules from where vm.sh unpacked them.
modules=$(sed -n 's/.*blupow.modules=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -z "$modules" ] || mount --bind "$modules" /lib/modules
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /mnt
: > /mnt/guest-booted
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
hostname blupow-vm
ip link set lo up 2>/dev/null
echo "guest: running the job"
cd /mnt && sh /mnt/job.sh > /mnt/guest.log 2>&1
echo $? > /mnt/guest-status
sync
echo "guest: done ($(cat /mnt/guest-status))"
echo o > /proc/sysrq-trigger
sleep 10
