#!/bin/bash
# The project's real-Xen lab: Xen 4.17 + a Debian 12 dom0 booted in QEMU, running the xc
# backend's, the xenstore client's, our PV builder's and oxt-supervisor's tests inside that
# dom0. See docs/xenlab.md.
#
#   tests/xenlab/lab.sh [test]   build what is missing or stale, boot, run the dom0 tests (default)
#   tests/xenlab/lab.sh build    only build/refresh the cached artefacts
#   tests/xenlab/lab.sh shell    boot to an interactive dom0 shell (the checkout is at /mnt/oxt-src)
#   tests/xenlab/lab.sh clean    remove the cache
#
# Exit status of `test`: 0 when dom0 reported OXT-XENLAB-RESULT: PASS, 1 on FAIL, 2 when no
# result came (boot failure, crash, timeout); the serial log names what happened.
#
# Environment (all optional):
#   XENLAB_CACHE=/var/cache/oxt-xenlab  artefacts (debs, rootfs, kernel, xen, initramfs) + runs/
#   XENLAB_SRC=<this checkout>          the tree dom0 tests (9p, read-only)
#   XENLAB_ACCEL=auto|kvm|tcg           auto: kvm only if a plain Linux boots under it (probe cached)
#   XENLAB_TIMEOUT=3000                 seconds for boot + tests before QEMU is killed
#   XENLAB_BOOT_STALL=300               seconds for dom0 to reach userspace; past them QEMU is
#                                       killed and the boot tried once more (an emulated boot
#                                       that stalls before any of our code runs, docs/xenlab.md)
#   XENLAB_SMP=2  XENLAB_MEM=3072  XENLAB_DOM0_MEM=1024   vcpus, QEMU RAM (MiB), dom0 RAM (MiB)
#   XENLAB_PYTEST_ARGS="..."            extra pytest arguments inside dom0 (e.g. -x, -k name)
#   XENLAB_BENCH=1                      also run benchmarks/xenlab_lifecycle.py after the tests
#                                       (our stack vs xl; opt-in: several more minutes)
#   XENLAB_BENCH_ARGS="..."             its arguments (--rounds N, --pairs bare,devices)
#   XENLAB_PYTHON=<python with pip>     installs the dom0's Python packages (default: .venv/bin/python)
# Needs root (debootstrap, chroot, apt-get) and a Debian 12 host whose apt sources reach the
# Debian archive; installs qemu-system-x86, debootstrap, cpio, busybox-static if missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=${XENLAB_SRC:-$(cd "$HERE/../.." && pwd)}
CACHE=${XENLAB_CACHE:-/var/cache/oxt-xenlab}
ACCEL=${XENLAB_ACCEL:-auto}
TIMEOUT=${XENLAB_TIMEOUT:-3000}
BOOT_STALL=${XENLAB_BOOT_STALL:-300}
SMP=${XENLAB_SMP:-2}
MEM=${XENLAB_MEM:-3072}
DOM0_MEM=${XENLAB_DOM0_MEM:-1024}
MODE=${1:-test}
export DEBIAN_FRONTEND=noninteractive

# Packages of the dom0 root filesystem (Debian's). Python packages come from PyPI (see pylib).
ROOTFS_DEBS="xen-utils-4.17 xenstore-utils python3 busybox kmod dbus-daemon dbus-system-bus-common iproute2"
HOST_DEBS="qemu-system-x86 debootstrap cpio busybox-static"

say() { printf '[xenlab %(%T)T] %s\n' -1 "$*"; }
die() { say "ERROR: $*" >&2; exit 2; }
# a short content hash of files and strings, to know when a cached layer is stale
key() { { for a in "$@"; do if [ -f "$a" ]; then sha256sum <"$a"; else echo "$a"; fi; done; } |
        sha256sum | cut -c1-16; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and apt-get need it)"
case "$MODE" in test|build|shell|clean) ;; *) sed -n '2,25p' "$0"; exit 2 ;; esac
if [ "$MODE" = clean ]; then say "removing $CACHE"; rm -rf "$CACHE"; exit 0; fi

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -w 1800 9 || die "another lab run holds $CACHE/lock"
cd "$CACHE"

# ------------------------------------------------------------------------ host tools
host_tools() {
  local missing=""
  for p in $HOST_DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return
  say "installing host packages:$missing"
  apt-get update -qq && apt-get install -y -qq $missing >/dev/null
}

# ------------------------------------------------------------------------ xen + dom0 kernel
xen_and_kernel() {
  [ -s boot/xen ] && [ -s boot/vmlinuz ] && [ -s boot/KVER ] && return
  say "downloading the Xen 4.17 hypervisor and the Debian kernel"
  rm -rf debs x boot && mkdir -p debs x boot
  local kpkg
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
  (cd debs && apt-get download -qq xen-hypervisor-4.17-amd64 "$kpkg" 2>&1 |
     grep -v -e unsandboxed -e '^$' || true)
  dpkg-deb -x debs/xen-hypervisor-4.17-amd64_*.deb x
  dpkg-deb -x debs/"$kpkg"_*.deb x
  # the hypervisor is a multiboot1 ELF once unpacked: QEMU's -kernel boots it directly
  zcat x/boot/xen-4.17-amd64.gz >boot/xen
  cp x/boot/vmlinuz-"${kpkg#linux-image-}" boot/vmlinuz
  dpkg-deb -f debs/xen-hypervisor-4.17-amd64_*.deb Version >boot/XEN_VERSION
  echo "${kpkg#linux-image-}" >boot/KVER
}

# ------------------------------------------------------------------------ dom0 root filesystem
apt_mirror() {
  local m=""
  [ -f /etc/apt/sources.list.d/debian.sources ] &&
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  [ -n "$m" ] || m=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$m" ] || die "no Debian mirror in this host's apt sources"
  echo "$m"
}

rootfs() {
  local want; want=$(key "$ROOTFS_DEBS")
  [ "$(cat rootfs/.oxt-key 2>/dev/null)" = "$want" ] && return
  say "debootstrap bookworm (minbase) + $ROOTFS_DEBS"
  rm -rf rootfs
  debootstrap --variant=minbase bookworm rootfs "$(apt_mirror)" >debootstrap.log 2>&1 ||
    die "debootstrap failed, see $CACHE/debootstrap.log"
  # the host's suites (bookworm, -updates, -security): xen-utils then matches the hypervisor
  rm -f rootfs/etc/apt/sources.list
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources rootfs/etc/apt/sources.list.d/
  else
    cp /etc/apt/sources.list rootfs/etc/apt/sources.list
  fi
  printf '#!/bin/sh\nexit 101\n' >rootfs/usr/sbin/policy-rc.d   # no daemons start in the chroot
  chmod +x rootfs/usr/sbin/policy-rc.d
  chroot rootfs sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      $ROOTFS_DEBS && apt-get clean" >rootfs-apt.log 2>&1 ||
    die "apt-get in the rootfs failed, see $CACHE/rootfs-apt.log"
  echo "$want" >rootfs/.oxt-key
}

# ------------------------------------------------------------------------ dom0 Python packages
pylib() {
  local py=${XENLAB_PYTHON:-$SRC/.venv/bin/python}
  [ -x "$py" ] || py=python3
  local pins="" want
  # the same versions as the project's venv when there is one
  pins=$("$py" -m pip freeze --exclude-editable 2>/dev/null | grep '==' || true)
  want=$(key "$HERE/dom0-requirements.txt" "$pins")
  [ "$(cat pylib/.oxt-key 2>/dev/null)" = "$want" ] && return
  say "installing the dom0's Python packages (pip --target, $py)"
  rm -rf pylib && mkdir -p pylib
  printf '%s\n' "$pins" >pylib-constraints.txt
  local plat=()
  if [ "$("$py" -c 'import sys; print(sys.version_info[:2] == (3, 11))')" != True ]; then
    # the dom0 runs Debian's python3.11: ask for its wheels explicitly
    plat=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311
          --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux_2_28_x86_64)
  fi
  "$py" -m pip install -q --disable-pip-version-check --no-compile --target pylib \
      -c pylib-constraints.txt -r "$HERE/dom0-requirements.txt" "${plat[@]}" >pylib.log 2>&1 ||
    die "pip install for the dom0 failed, see $CACHE/pylib.log"
  rm -rf pylib/bin
  echo "$want" >pylib/.oxt-key
}

# ------------------------------------------------------------------------ the PV guest
vmlinux_of() {  # vmlinux_of BZIMAGE: its payload (x86 boot protocol >= 2.08), unpacked, on stdout
  local setup offset length
  setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$1" | tr -d ' ')
  [ "$setup" = 0 ] && setup=4
  read -r offset length < <(od -An -tu4 -j $((0x248)) -N8 "$1")
  [ -n "$length" ] && [ "$length" -gt 0 ] || return 1
  tail -c +$(( (setup + 1) * 512 + offset + 1 )) "$1" | head -c "$length" >vmlinux.payload
  xz -dc --single-stream vmlinux.payload >vmlinux.elf 2>/dev/null ||
    zcat vmlinux.payload >vmlinux.elf 2>/dev/null || zstd -dcq vmlinux.payload >vmlinux.elf
  local ok=1
  [ "$(head -c 4 vmlinux.elf | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && cat vmlinux.elf && ok=0
  rm -f vmlinux.payload vmlinux.elf
  return $ok
}

guest() {
  local want; want=$(key "$HERE/guest-init.sh" boot/vmlinuz /bin/busybox vmlinux-elf)
  [ "$(cat guest/.oxt-key 2>/dev/null)" = "$want" ] && return
  say "building the PV guest (Debian kernel + busybox initramfs)"
  rm -rf guest ginit && mkdir -p guest ginit/bin ginit/proc ginit/sys ginit/dev ginit/lib/modules
  cp /bin/busybox ginit/bin/busybox
  # the PV block and network frontends (modules in Debian's kernel): the init loads them
  local m kmods=x/lib/modules/$(cat boot/KVER)/kernel
  for m in block/xen-blkfront net/xen-netfront; do
    cp "$kmods/drivers/$m.ko" ginit/lib/modules/
  done
  install -m 0755 "$HERE/guest-init.sh" ginit/init
  (cd ginit && find . | cpio -o -H newc --quiet | gzip -9) >guest/initrd.gz
  rm -rf ginit
  # the kernel as the ELF inside the bzImage (its xz payload, unpacked once here): a domain
  # builder (libxenguest, ours and xl's alike) then loads it as it is instead of unpacking
  # 8 MB of xz to 66 MB at every build, seconds under QEMU's emulation
  if ! vmlinux_of boot/vmlinuz >guest/vmlinux; then
    say "could not unpack the kernel's payload: the guests boot the bzImage (slower builds)"
    cp boot/vmlinuz guest/vmlinux
  fi
  echo "$want" >guest/.oxt-key
}

# ------------------------------------------------------------------------ dom0 initramfs
dom0_initramfs() {
  local kver want
  kver=$(cat boot/KVER)
  want=$(key rootfs/.oxt-key pylib/.oxt-key guest/.oxt-key "$HERE/dom0-init.sh" \
             "$HERE/guest.cfg" "$HERE/guest-pvh.cfg" boot/KVER "$HERE/lab.sh")
  [ -s boot/dom0.cpio ] && [ "$(cat boot/dom0.key 2>/dev/null)" = "$want" ] && return
  say "packing the dom0 initramfs"
  rm -rf stage && cp -a rootfs stage
  rm -rf stage/usr/share/{doc,man,info,locale} stage/var/lib/apt/lists/* \
         stage/var/cache/apt/* stage/usr/lib/python3.11/{test,ensurepip} stage/.oxt-key
  local kmods=x/lib/modules/$kver smods=stage/lib/modules/$kver d
  # Xen drivers (xenfs, evtchn, privcmd, gntdev, backends) and virtio + 9p for the shares
  # plus loop (file-backed disks) and the bridge (vifs), for the guests' devices
  for d in drivers/xen drivers/block/xen-blkback drivers/net/xen-netback drivers/virtio \
           drivers/block/loop.ko net/bridge/bridge.ko net/802/stp.ko net/llc \
           fs/9p fs/netfs fs/fscache net/9p; do
    [ -e "$kmods/kernel/$d" ] || continue
    mkdir -p "$smods/kernel/$(dirname "$d")"
    cp -a "$kmods/kernel/$d" "$smods/kernel/$(dirname "$d")/"
  done
  cp "$kmods"/modules.{builtin,builtin.modinfo,order} "$smods/"
  chroot stage depmod "$kver"
  local site=stage/usr/local/lib/python3.11/dist-packages   # on Debian python3's sys.path
  mkdir -p "$site" && cp -a pylib/. "$site/" && rm -f "$site/.oxt-key"
  # their bytecode, made by the dom0's own python3: without it every Python process in dom0
  # compiles pytest, hypothesis, cffi's pycparser... from source again (seconds each, emulated)
  chroot stage python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /usr/local/lib/python3.11/dist-packages >/dev/null || say "WARNING: compileall failed"
  mkdir -p stage/xenlab
  cp -a guest stage/xenlab/guest && rm -f stage/xenlab/guest/.oxt-key
  cp "$HERE/guest.cfg" "$HERE/guest-pvh.cfg" stage/xenlab/guest/
  install -m 0755 "$HERE/dom0-init.sh" stage/init
  { echo "xen-hypervisor $(cat boot/XEN_VERSION)"
    echo "xen-utils $(chroot rootfs dpkg-query -W -f '${Version}' xen-utils-4.17)"
    echo "kernel $kver"; } >boot/VERSIONS
  cp boot/VERSIONS stage/xenlab/VERSIONS
  (cd stage && find . | cpio -o -H newc --quiet) >boot/dom0.cpio.new
  mv boot/dom0.cpio.new boot/dom0.cpio
  rm -rf stage
  echo "$want" >boot/dom0.key
  say "dom0 initramfs: $(du -h boot/dom0.cpio | cut -f1); $(tr '\n' ' ' <boot/VERSIONS)"
}

build() {
  host_tools
  xen_and_kernel
  rootfs
  pylib
  guest
  dom0_initramfs
  local hv tools
  hv=$(cat boot/XEN_VERSION)
  tools=$(chroot rootfs dpkg-query -W -f '${Version}' xen-utils-4.17)
  [ "$hv" = "$tools" ] || say "WARNING: hypervisor $hv but xen-utils $tools (apt sources moved?" \
                              "'$0 clean' rebuilds both)"
}

# ------------------------------------------------------------------------ boot
pick_accel() {
  if [ "$ACCEL" != auto ]; then echo "$ACCEL"; return; fi
  local boot_id probe=accel.probe
  boot_id=$(cat /proc/sys/kernel/random/boot_id)
  if [ "$(head -1 $probe 2>/dev/null)" != "$boot_id" ]; then
    local got=tcg
    # /dev/kvm may exist and still not run guests (nested, sandboxed): a plain Linux must print
    if [ -c /dev/kvm ] && timeout 20 qemu-system-x86_64 -accel kvm -m 256 -display none \
         -serial stdio -no-reboot -kernel boot/vmlinuz -append "console=ttyS0 panic=-1" \
         </dev/null 2>/dev/null | grep -qa 'Linux version'; then got=kvm; fi
    printf '%s\n%s\n' "$boot_id" "$got" >$probe
  fi
  sed -n 2p $probe
}

boot() {
  local accel cpu run mode=test
  [ "$MODE" = shell ] && mode=shell
  accel=$(pick_accel)
  # qemu64 + npt under TCG (Xen sees HAP); "-cpu max" makes dom0 fault (SMAP) under TCG
  cpu=$([ "$accel" = kvm ] && echo host || echo qemu64,+npt)
  run=$CACHE/runs/$(date +%Y%m%d-%H%M%S)
  mkdir -p "$run/out"
  ln -sfn "$run" "$CACHE/runs/last"
  # the checkout's bytecode, made here in seconds (in-dom0.sh copies it with the sources): the
  # dom0's python3 (3.11, as the venv's) then loads it instead of compiling every module under
  # emulation; a pyc whose source changed since is recompiled there, as anywhere
  local py=${XENLAB_PYTHON:-$SRC/.venv/bin/python}
  [ -x "$py" ] || py=python3
  (cd "$SRC" && "$py" -m compileall -q -j 0 actors supervision xen rpc persistence tests \
     benchmarks >/dev/null 2>&1) || say "compileall of $SRC failed: dom0 compiles the modules"
  # the checkout (uncommitted changes included) as one file for in-dom0.sh to unpack
  [ "$mode" = shell ] || (cd "$SRC" && tar -cf "$run/out/src.tar" --exclude='*.egg-info' --exclude=.pytest_cache \
     setup.cfg pyproject.toml ruff.toml actors supervision xen rpc persistence tests examples \
     benchmarks) || die "cannot pack $SRC"
  printf '%s\n' "${XENLAB_PYTEST_ARGS:-}" >"$run/out/pytest-args"
  printf '%s\n' "${XENLAB_BENCH:-0}" >"$run/out/bench"
  printf '%s\n' "${XENLAB_BENCH_ARGS:-}" >"$run/out/bench-args"
  local args=(-accel "$accel" -cpu "$cpu" -m "$MEM" -smp "$SMP" -nographic -no-reboot
    -virtfs "local,path=$SRC,mount_tag=oxtsrc,security_model=none,readonly=on,id=oxtsrc"
    -virtfs "local,path=$run/out,mount_tag=oxtout,security_model=none,id=oxtout"
    -kernel boot/xen
    -append "console=com1 com1=115200,8n1 dom0_mem=${DOM0_MEM}M,max:${DOM0_MEM}M dom0_max_vcpus=$SMP loglvl=all guest_loglvl=all noreboot"
    -initrd "boot/vmlinuz console=hvc0 earlyprintk=xen rdinit=/init oxt.mode=$mode,boot/dom0.cpio")
  say "booting Xen: accel=$accel cpu=$cpu smp=$SMP mem=${MEM}M dom0=${DOM0_MEM}M; src=$SRC"
  if [ "$mode" = shell ]; then exec qemu-system-x86_64 "${args[@]}"; fi
  say "serial log: $run/serial.log (timeout ${TIMEOUT}s)"
  local t0=$EPOCHREALTIME
  timeout "$TIMEOUT" qemu-system-x86_64 "${args[@]}" </dev/null >"$run/qemu.out" 2>&1 &
  local qpid=$!
  QEMU_PID=$qpid
  trap 'kill "$QEMU_PID" 2>/dev/null || true' EXIT   # never leave QEMU behind (Ctrl-C, errors)
  # stamp every console line with seconds since QEMU started (pure bash: no fork per line)
  stamp() {
    local line us0=${t0/./} us
    while IFS= read -r line; do
      us=$(( ${EPOCHREALTIME/./} - us0 ))
      printf '[%4d.%02d] %s\n' $((us / 1000000)) $((us % 1000000 / 10000)) "${line//$'\r'/}"
    done
  }
  tail -n +1 -F --pid=$qpid "$run/qemu.out" 2>/dev/null | stamp >"$run/serial.log" &
  local tpid=$! done_at="" userspace="" stalled="" started=$SECONDS
  while kill -0 $qpid 2>/dev/null; do
    if [ -z "$done_at" ] && grep -aqE 'OXT-XENLAB-DONE|\(XEN\) Panic on CPU|Kernel panic - not syncing|\(XEN\) Hardware Dom0 crashed' "$run/serial.log"; then
      done_at=$SECONDS
    fi
    if [ -z "$userspace" ] && [ -z "$done_at" ]; then
      if grep -aq 'OXT-XENLAB: dom0 userspace' "$run/serial.log"; then
        userspace=1
      elif [ $((SECONDS - started)) -ge "$BOOT_STALL" ]; then
        say "dom0 did not reach userspace within ${BOOT_STALL} s; its console's last line:"
        tail -n 1 "$run/serial.log"
        stalled=1; kill $qpid 2>/dev/null || true
      fi
    fi
    # dom0's poweroff ends QEMU by itself; after a panic or a hang past DONE, end it here
    if [ -n "$done_at" ] && [ $((SECONDS - done_at)) -ge 15 ]; then kill $qpid 2>/dev/null || true; fi
    sleep 1
  done
  wait $qpid 2>/dev/null || true
  sleep 0.5; kill $tpid 2>/dev/null || true; wait $tpid 2>/dev/null || true
  rm -f "$run/qemu.out"   # serial.log has it all, time-stamped
  # keep the last 10 runs
  ls -1d "$CACHE"/runs/2* 2>/dev/null | sort | head -n -10 | xargs -r rm -rf
  local wall=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000000 ))
  echo "$wall" >"$run/wall-seconds"
  say "boot + tests: ${wall} s wall (accel=$accel)"
  grep -aE 'OXT-XENLAB|\(XEN\) Xen version|\(XEN\) Panic|Kernel panic' "$run/serial.log" || true
  if grep -aq 'OXT-XENLAB-RESULT: PASS' "$run/serial.log"; then return 0; fi
  if grep -aq 'OXT-XENLAB-RESULT: FAIL' "$run/serial.log"; then
    say "FAIL: see $run/serial.log and $run/out/"; return 1
  fi
  if [ -n "$stalled" ]; then say "boot stalled: see $run/serial.log"; return 3; fi
  say "no result from dom0 (boot failure, crash or timeout): see $run/serial.log"; return 2
}

T0=$SECONDS
case "$MODE" in
  build) build; say "built in $((SECONDS - T0)) s; cache: $CACHE" ;;
  shell) build; boot ;;
  test)
    build
    [ $((SECONDS - T0)) -gt 2 ] && say "build/refresh took $((SECONDS - T0)) s"
    rc=0; boot || rc=$?
    if [ "$rc" = 3 ]; then  # stalled before userspace: nothing of ours ran yet; once more
      say "booting again (the first boot stalled before dom0's userspace)"
      rc=0; boot || rc=$?
    fi
    say "total $((SECONDS - T0)) s, exit $rc"
    exit $rc ;;
esac
