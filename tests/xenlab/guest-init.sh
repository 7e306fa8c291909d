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
#
# Devices, when the command line asks (the supervisor test's VM): oxt.disk=<name> loads the PV
# block frontend, waits for /dev/<name>, prints its size and the first line of its first sector
# and writes a line to its second sector; oxt.nic=<name> loads the PV network frontend, waits
# for the interface, prints its MAC; with oxt.ip=<addr/len> and oxt.ping=<addr> it configures
# the interface and pings that address. One line each, "OXT-XENLAB-GUEST: disk ..." / "net ...".
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t sysfs sys /sys
echo 1 >/proc/sys/kernel/sysrq
echo -1 >/proc/sys/kernel/panic
/bin/busybox mkdir -p /sbin
printf '#!/bin/busybox sh\necho "OXT-XENLAB-GUEST: poweroff requested" >/dev/console\nexec /bin/busybox poweroff -f\n' >/sbin/poweroff
/bin/busybox chmod 0755 /sbin/poweroff
echo "OXT-XENLAB-GUEST: PV domU up after $(/bin/busybox cut -d' ' -f1 /proc/uptime) s, kernel $(/bin/busybox uname -r)"

arg() {  # arg NAME: the value of NAME=... on the kernel command line
  for a in $(/bin/busybox cat /proc/cmdline); do
    case "$a" in "$1"=*) echo "${a#*=}"; return ;; esac
  done
}
wait_path() {  # wait_path PATH: up to 60 s
  i=0
  while [ ! -e "$1" ] && [ $i -lt 120 ]; do /bin/busybox usleep 500000; i=$((i + 1)); done
  [ -e "$1" ]
}
disk=$(arg oxt.disk)
nic=$(arg oxt.nic)
if [ -n "$disk" ]; then
  /bin/busybox insmod /lib/modules/xen-blkfront.ko
  if wait_path "/sys/block/$disk"; then
    first=$(/bin/busybox dd if="/dev/$disk" bs=512 count=1 2>/dev/null | /bin/busybox tr -d '\000' |
            /bin/busybox head -n 1)
    printf 'OXT-GUEST-WROTE %s\n' "$(/bin/busybox cut -d' ' -f1 /proc/uptime)" |
      /bin/busybox dd of="/dev/$disk" bs=512 seek=1 conv=sync 2>/dev/null && /bin/busybox sync
    echo "OXT-XENLAB-GUEST: disk $disk $(/bin/busybox cat /sys/block/$disk/size) sectors," \
         "read-only $(/bin/busybox cat /sys/block/$disk/ro), first sector: $first"
  else
    echo "OXT-XENLAB-GUEST: disk $disk missing; block devices: $(/bin/busybox ls /sys/block)"
  fi
fi
if [ -n "$nic" ]; then
  /bin/busybox insmod /lib/modules/xen-netfront.ko
  if wait_path "/sys/class/net/$nic"; then
    line="net $nic mac $(/bin/busybox cat /sys/class/net/$nic/address)"
    ip=$(arg oxt.ip)
    peer=$(arg oxt.ping)
    if [ -n "$ip" ]; then
      /bin/busybox ip addr add "$ip" dev "$nic"
      /bin/busybox ip link set "$nic" up
      line="$line, address $ip"
    fi
    if [ -n "$peer" ]; then
      got=$(/bin/busybox ping -c 3 -w 20 "$peer" 2>&1 | /bin/busybox grep -o '[0-9]* packets received')
      line="$line, ping $peer: ${got:-no reply}"
    fi
    echo "OXT-XENLAB-GUEST: $line"
  else
    echo "OXT-XENLAB-GUEST: net $nic missing; interfaces: $(/bin/busybox ls /sys/class/net)"
  fi
fi
while :; do /bin/busybox sleep 3600; done
