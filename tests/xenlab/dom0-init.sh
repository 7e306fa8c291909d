#!/bin/sh
# /init of the lab's dom0 initramfs (Debian 12 minbase + xen-utils-4.17 + the Python packages
# of tests/xenlab/dom0-requirements.txt). Brings up the Xen userspace (modules, xenfs,
# oxenstored, xen-init-dom0, xenconsoled), mounts the two 9p shares of tests/xenlab/lab.sh
# (oxtsrc: the checkout, read-only; oxtout: this run's results directory) and then, by the
# kernel command line:
#   oxt.mode=test   runs tests/xenlab/in-dom0.sh from the checkout and powers off;
#   oxt.mode=shell  gives an interactive shell on the console.
# Lines for the host start with OXT-XENLAB; the last two are RESULT (PASS/FAIL) and DONE.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
XENBIN=/usr/lib/xen-4.17/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
exec </dev/hvc0 >/dev/hvc0 2>&1

uptime_s() { cut -d' ' -f1 /proc/uptime; }
note() { echo "OXT-XENLAB: $*"; }
bad=""
need() {  # need <what> <command...>: run it; remember a failure by name
  what=$1; shift
  if "$@"; then return 0; fi
  echo "OXT-XENLAB-FAIL: $what"; bad="$bad $what"; return 1
}
finish() {
  if [ -z "$bad" ] && [ "${1:-1}" = 0 ]; then echo "OXT-XENLAB-RESULT: PASS"
  else echo "OXT-XENLAB-RESULT: FAIL${bad:+ (bring-up:$bad)}"; fi
  echo "OXT-XENLAB-DONE at $(uptime_s) s dom0 uptime"
  sync
  busybox poweroff -f
}

MODE=test
for arg in $(cat /proc/cmdline); do
  case "$arg" in oxt.mode=*) MODE=${arg#oxt.mode=} ;; esac
done
note "dom0 userspace at $(uptime_s) s; $(cat /sys/hypervisor/type 2>/dev/null)" \
     "$(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)$(cat /sys/hypervisor/version/extra 2>/dev/null); mode $MODE"
sed 's/^/OXT-XENLAB: built from /' /xenlab/VERSIONS

# --- Xen drivers and xenfs
for m in xenfs xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xen-blkback xen-netback; do
  modprobe "$m" 2>/dev/null || note "modprobe $m failed"
done
mkdir -p /proc/xen
need xenfs mount -t xenfs xenfs /proc/xen
need control_d grep -q control_d /proc/xen/capabilities

# --- xenstored (the OCaml one, Debian's default), dom0 in xenstore, console daemon
mkdir -p /run/xenstored /run/xen /var/log/xen/console /var/lib/xen /var/lib/xenstored
export XENSTORED_ROOTDIR=/run/xenstored
need oxenstored "$XENBIN/oxenstored" --pid-file /run/xenstored.pid
i=0
while ! xenstore-read -s / >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 120 ] && break; sleep 0.5
done
need xenstore-up xenstore-read -s / >/dev/null
need xen-init-dom0 "$XENBIN/xen-init-dom0" >/dev/null
need xenconsoled "$XENBIN/xenconsoled" --pid-file /run/xenconsoled.pid --log=guest \
    --log-dir=/var/log/xen/console
note "Xen userspace up at $(uptime_s) s"

# --- the shares
for m in virtio_pci 9pnet_virtio 9p; do modprobe "$m" 2>/dev/null; done
mkdir -p /mnt/oxt-src /mnt/oxt-out
need share-src mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro oxtsrc /mnt/oxt-src
need share-out mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 oxtout /mnt/oxt-out

if [ "$MODE" = shell ]; then
  note "interactive dom0 shell: xl, xenstore-*, python3; checkout at /mnt/oxt-src;" \
       "tests: sh /mnt/oxt-src/tests/xenlab/in-dom0.sh; 'busybox poweroff -f' ends the lab"
  setsid sh -c 'exec sh -i </dev/hvc0 >/dev/hvc0 2>&1'
  busybox poweroff -f
fi

[ -n "$bad" ] && finish 1
RUNNER=/mnt/oxt-src/tests/xenlab/in-dom0.sh
[ -f "$RUNNER" ] || { echo "OXT-XENLAB-FAIL: $RUNNER missing"; bad="$bad runner"; finish 1; }
sh "$RUNNER"
finish $?
