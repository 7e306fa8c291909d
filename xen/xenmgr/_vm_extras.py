"""VM and disk methods that need outside parts: focus switching, authentication, disk keys,
mounting.

* ``vm`` ``switch``: asks the input daemon (``com.citrix.xenclient.input``) to give the
  display and input focus to the running VM (``switch_focus(domid, false)``, as the
  original). A VM that does not run is an error; without the input daemon on the bus the
  call answers ``NotSupported`` naming it (this project has no input daemon).
* ``vm.auth`` ``auth``, ``auth_required``: the input daemon's user authentication; not
  supported (``NotSupported`` naming the daemon).
* ``vmdisk`` ``generate_crypto_key(keysize)`` and ``generate_crypto_key_in(keysize, dir)``:
  a new random key of ``keysize`` bits (256 or 512, AES-XTS) for the disk's VHD, written to
  ``<dir>/<vhd name without .vhd>,aes-xts-plain,<keysize>.key`` (mode 0600, never over an
  existing key: that would make the disk unreadable), ``dir`` being the first of the
  platform's key directories (``/xenmgr/platform-crypto-key-dirs``, ``,``-separated) or the
  given absolute directory. A disk that is not a VHD file, a bad size, a missing directory:
  errors naming them. The disk's ``encryption-key-set`` property reads whether such a key
  exists in the VM's or the platform's key directories. The original also wrote the key's
  hash into the VHD with ``vhd-util key``; there is no ``vhd-util`` here (docs/compatibility.md).
* ``vmdisk`` ``mount``, ``umount``: not supported (mounting a VHD in dom0 needs tapdisk, or
  qemu-nbd with the kernel's nbd driver and root; xenmgr uses neither).
"""

from __future__ import annotations

import os

from rpc.dbus import Call, DBusError, RemoteObject, dbus_method
from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_disk
from xen.xenmgr._errors import error, plain
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._properties import Target
from xen.xenmgr._unsupported import not_supported, unsupported_error
from xen.xenmgr._vm_mixin import VmMixin

__all__ = ["DiskKeyMethods", "VmInputMethods", "disk_key_dirs", "key_file_name"]

VM = "com.citrix.xenclient.xenmgr.vm"
AUTH = "com.citrix.xenclient.xenmgr.vm.auth"
VMDISK = "com.citrix.xenclient.vmdisk"
INPUT = "com.citrix.xenclient.input"
_NO_INPUT = (f"needs the input daemon ({INPUT}), which this host does not run")
_NO_MOUNT = ("mounting a disk in dom0 needs tapdisk, or qemu-nbd with the kernel's nbd "
             "driver and root; xenmgr uses neither here")
KEY_SIZES = (256, 512)
PLATFORM_KEY_DIRS = "/xenmgr/platform-crypto-key-dirs"
DEFAULT_PLATFORM_KEY_DIR = "/config/platform-crypto-keys"


def key_file_name(vhd_path: str, keysize: int) -> str:
    """The key file's name for the VHD at ``vhd_path`` (module docstring)."""
    name = os.path.basename(vhd_path)
    if name.endswith(".vhd"):
        name = name[:-4]
    return f"{name},aes-xts-plain,{keysize}.key"


def _split(text: str | None) -> list[str]:
    return [d.strip() for d in (text or "").split(",") if d.strip()]


def disk_key_dirs(platform: str | None, vm_dirs: str | None) -> list[str]:
    """The key directories of a VM's disks: its own ``crypto-key-dirs``, then the
    platform's (default ``/config/platform-crypto-keys``)."""
    return _split(vm_dirs) + (_split(platform) or [DEFAULT_PLATFORM_KEY_DIR])


class VmInputMethods(VmMixin):
    """``switch`` and ``vm.auth`` (module docstring); mixed into the VM object."""

    @dbus_method(VM, "switch")
    def switch(self, call: Call) -> None:
        view = monitor_view(self.uuid)
        if view is None or view.domid < 0:
            raise plain(f"switch: VM {self.uuid} is not running")
        timeout = self.ctx.settings.db_timeout
        if not self.ctx.conn.bus_call("NameHasOwner", "s", (INPUT,), timeout=timeout)[0]:
            raise unsupported_error("switch", _NO_INPUT)
        try:
            RemoteObject(self.ctx.conn, INPUT, "/", timeout=timeout).call(
                INPUT, "switch_focus", "ib", view.domid, False)
        except DBusError as exc:
            raise plain(f"switch: the input daemon refused: {exc.message}") from None

    auth = not_supported(AUTH, "auth", _NO_INPUT)
    auth_required = not_supported(AUTH, "auth_required", _NO_INPUT)


class DiskKeyMethods(VmMixin):
    """The disk key methods, ``mount`` and ``umount`` (module docstring); mixed into the disk
    object (its ``target`` names the disk)."""

    target: Target

    def _vhd(self) -> str:
        disk = read_disk(DbView(self.tree()), self.target.disk or 0)
        if disk is None:
            raise error(206)
        if disk.type != "vhd" or not disk.path or not os.path.isfile(disk.path):
            raise plain(f"disk {disk.id}: not a VHD file that exists (type {disk.type}, "
                        f"path {disk.path!r}): keys are for VHD files")
        return disk.path

    def _generate(self, keysize: int, directory: str) -> None:
        if keysize not in KEY_SIZES:
            raise plain(f"key size {keysize}: not one of {', '.join(map(str, KEY_SIZES))} "
                        "(bits)")
        vhd = self._vhd()
        if not os.path.isabs(directory) or not os.path.isdir(directory):
            raise plain(f"key directory {directory!r}: not an existing absolute directory")
        path = os.path.join(directory, key_file_name(vhd, keysize))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise plain(f"{path}: the disk already has this key (not replaced: the disk "
                        "would become unreadable)") from None
        except OSError as exc:
            raise error(223, f"{path}: {exc.strerror}") from None
        try:
            os.write(fd, os.urandom(keysize // 8))
            os.fsync(fd)
        finally:
            os.close(fd)

    @dbus_method(VMDISK, "generate_crypto_key")
    def generate_crypto_key(self, call: Call, keysize: int) -> None:
        dirs = disk_key_dirs(self.ctx.db.read(PLATFORM_KEY_DIRS), None)
        self._generate(keysize, dirs[0])

    @dbus_method(VMDISK, "generate_crypto_key_in")
    def generate_crypto_key_in(self, call: Call, keysize: int, dirpath: str) -> None:
        self._generate(keysize, dirpath)

    mount = not_supported(VMDISK, "mount", _NO_MOUNT)
    umount = not_supported(VMDISK, "umount", _NO_MOUNT)
