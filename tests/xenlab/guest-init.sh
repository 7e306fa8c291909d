#!/bin/busybox sh
# /init of the lab's PV guest (busybox only): say hello on the console, then idle until the
# toolstack under test pauses, shuts down or destroys the domain. It never powers off by itself,
# so every shutdown the tests see is the one they asked for.
#
# Clean shutdown requests (control/shutdown) are handled by the Linux kernel itself: "poweroff"
# runs the kernel's poweroff helper, /sbin/poweroff (provided here: `poweroff -f`, which ends in
# SCHEDOP_shutdown(poweroff)); "reboot" is ctrl-alt-del, which restarts at once (this init
# never turns ctrl-alt-del off, so no signal reaches it). A crash on request: control/sysrq =
# "c" panics the kernel (every sysrq key is enabled here: Debian's default mask refuses "c"),
# and a panic reboots at once, which a Xen PV kernel reports as SHUTDOWN_crash.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
echo 1 >/proc/sys/kernel/sysrq
echo -1 >/proc/sys/kernel/panic
/bin/busybox mkdir -p /sbin
printf '#!/bin/busybox sh\necho "OXT-XENLAB-GUEST: poweroff requested" >/dev/console\nexec /bin/busybox poweroff -f\n' >/sbin/poweroff
/bin/busybox chmod 0755 /sbin/poweroff
echo "OXT-XENLAB-GUEST: PV domU up after $(/bin/busybox cut -d' ' -f1 /proc/uptime) s, kernel $(/bin/busybox uname -r)"
while :; do /bin/busybox sleep 3600; done
