#!/bin/busybox sh
# /init of the lab's PV guest (busybox only): say hello on the console, then idle until the
# toolstack under test pauses, shuts down or destroys the domain. It never powers off by itself,
# so every shutdown the tests see is the one they asked for.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
echo "OXT-XENLAB-GUEST: PV domU up after $(/bin/busybox cut -d' ' -f1 /proc/uptime) s, kernel $(/bin/busybox uname -r)"
while :; do /bin/busybox sleep 3600; done
