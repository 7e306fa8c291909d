"""Domain builders: what turns a created, empty domain into one that can run, or saves it.

A :class:`Builder` does the three things that need the guest's memory (libxenguest's job on
real Xen):

* :meth:`~Builder.build` loads a :class:`BootImage` (kernel or hvmloader, ramdisk, command
  line) into a domain created and sized by the ``build-pre`` plan, and returns the store and
  console rings (:class:`~xen.xenops._plan.BuildResult`) that ``plan_build_post`` writes;
* :meth:`~Builder.save` writes a domain's memory image to a stream. It calls ``suspend()``
  (which asks the guest to suspend and returns once it has) when the domain must stop
  running, as ``xc_domain_save`` calls its suspend callback; a builder that cannot save raises
  ``Unsupported`` *before* calling it, so a refused save never touches the guest;
* :meth:`~Builder.restore` reads such an image into a freshly created domain instead of
  building it, and returns the rings like :meth:`~Builder.build`.

:meth:`~Builder.check_file` says why a boot file cannot be loaded (None when it can), so a
caller can refuse a config before it creates anything (a stub domain's kernel, say).

The stream is the builder's own section of a save file: the caller writes whatever precedes
it (the toolstack's header) and positions the stream at the start of the section for a
restore.

:class:`SimBuilder` serves the simulated host, where a domain's memory exists from its creation
and there is nothing to load or save (it ships OpenXT's stub-domain kernel and ramdisk at
their default paths, as an OpenXT dom0 does; any other file must exist): rings get stable
numbers derived from the domid and the memory section is empty (a restore refuses a section
that is not).

:class:`XcBuilder` is real Xen's: it builds **PV** and **PVH** guests (``BootImage.pvh``: the
kernel booted straight in an HVM container, no firmware, no ACPI tables) with libxenguest's
``xc_dom_*`` through the xc backend (``xen.xc.XcBackend.build_guest``: two unbound event
channels for xenstored and xenconsoled in dom0, the kernel and ramdisk loaded,
``memory.build_start_mib`` populated, the grant entries of both rings seeded) and returns the
rings' frames and ports. Both builders refuse a PVH image for a domain sized as PV. It opens
its own libxenctrl handle on first use (``open_backend``, by default ``xen.xc.XcBackend()``;
cffi is loaded only then) and serialises builds on it. What it does not do raises
``Unsupported`` naming what is missing, before touching the domain: HVM guests (hvmloader,
ACPI tables and a device model), save and restore (``xc_domain_save`` /
``xc_domain_restore`` are not bound).

:class:`UnsupportedBuilder` refuses everything (a host where nothing may be built); domains
started by ``xl`` can still be adopted and managed. The real builders' ``check_file`` is the
dom0 file check (:func:`file_problem`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from xen.hypervisor import InvalidArgument, Unsupported
from xen.xenops._plan import BuildResult

if TYPE_CHECKING:
    from xen.xenops._memory import BuildMemory

__all__ = [
    "SIM_SHIPPED_IMAGES",
    "BootImage",
    "Builder",
    "SimBuilder",
    "UnsupportedBuilder",
    "XcBuilder",
    "file_problem",
]

#: Boot files the simulated host has without them existing on disk: OpenXT's stub-domain
#: images at their default paths (xen.xenvm's defaults for stubdom-kernel/-initrd).
SIM_SHIPPED_IMAGES = frozenset({"/usr/lib/xen/boot/stubdomain-bzImage",
                                "/usr/lib/xen/boot/stubdomain-initramfs"})


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a boot file on this host (None: it can)."""
    if not os.path.exists(path):
        return "does not exist"
    if not os.path.isfile(path):
        return "is not a file"
    if not os.access(path, os.R_OK):
        return "is not readable"
    return None
logger = logging.getLogger("xenops.build")


@dataclass(frozen=True, slots=True)
class BootImage:
    """What a build loads: the kernel (hvmloader for an HVM guest), ramdisk, command line;
    ``pvh`` for a PVH guest's kernel, booted straight in an HVM container (no firmware)."""

    kernel: str
    ramdisk: str | None = None
    cmdline: str = ""
    pvh: bool = False


def _check_container(image: BootImage, memory: BuildMemory) -> None:
    """Refuse (`InvalidArgument`) a PVH image for a domain sized as PV: a PVH guest is built
    into an HVM container."""
    if image.pvh and not memory.hvm:
        raise InvalidArgument("a PVH guest is built into an HVM domain (this one is PV)")


class Builder(Protocol):
    """Builds, saves and restores domains (see the module docstring)."""

    def build(self, domid: int, image: BootImage, memory: BuildMemory) -> BuildResult:
        """Load ``image`` into the created domain ``domid``; its rings."""
        ...

    def save(self, domid: int, out: IO[bytes], suspend: Callable[[], None]) -> None:
        """Write the memory image of ``domid`` to ``out``, calling ``suspend()`` once."""
        ...

    def check_file(self, path: str) -> str | None:
        """Why the boot file ``path`` cannot be loaded (None: it can)."""
        ...

    def restore(self, domid: int, source: IO[bytes], memory: BuildMemory) -> BuildResult:
        """Read a memory image from ``source`` into the created domain ``domid``; its rings."""
        ...


def _sim_rings(domid: int) -> BuildResult:
    base = 0x10000 + domid * 16
    return BuildResult(store_mfn=base + 1, store_port=1, console_mfn=base + 2, console_port=2)


class SimBuilder:
    """The simulated host's builder (see the module docstring)."""

    def build(self, domid: int, image: BootImage, memory: BuildMemory) -> BuildResult:
        """Hand out the store and console rings of ``domid``."""
        _check_container(image, memory)
        return _sim_rings(domid)

    def save(self, domid: int, out: IO[bytes], suspend: Callable[[], None]) -> None:
        """Suspend the guest; its memory section is empty."""
        suspend()

    def check_file(self, path: str) -> str | None:
        """The shipped stub-domain images are there; any other file must exist."""
        return None if path in SIM_SHIPPED_IMAGES else file_problem(path)

    def restore(self, domid: int, source: IO[bytes], memory: BuildMemory) -> BuildResult:
        """Check that the memory section is empty; the rings of ``domid``."""
        if source.read(1):
            raise InvalidArgument("the image carries a memory section, which the simulated "
                                  "host never writes")
        return _sim_rings(domid)


class UnsupportedBuilder:
    """A host where nothing may be built (see the module docstring)."""

    def build(self, domid: int, image: BootImage, memory: BuildMemory) -> BuildResult:
        """Refuse clearly."""
        raise Unsupported("not implemented: building a domain on the xc backend needs "
                          "libxenguest; start the VM with xl and let the monitor adopt it")

    def check_file(self, path: str) -> str | None:
        """The dom0 file check."""
        return file_problem(path)

    def save(self, domid: int, out: IO[bytes], suspend: Callable[[], None]) -> None:
        """Refuse clearly, before the guest is asked anything."""
        raise Unsupported("not implemented: saving a domain on the xc backend needs "
                          "libxenguest")

    def restore(self, domid: int, source: IO[bytes], memory: BuildMemory) -> BuildResult:
        """Refuse clearly."""
        raise Unsupported("not implemented: restoring a domain on the xc backend needs "
                          "libxenguest")


def _open_xc() -> Any:
    from xen.xc import XcBackend  # cffi and libxenctrl only when a real build is asked for

    return XcBackend()


class XcBuilder:
    """Real Xen's builder: PV guests through libxenguest (see the module docstring)."""

    def __init__(self, open_backend: Callable[[], Any] = _open_xc) -> None:
        self._open = open_backend
        self._backend: Any = None
        self._lock = threading.Lock()

    def build(self, domid: int, image: BootImage, memory: BuildMemory) -> BuildResult:
        """Load the PV or PVH ``image`` into ``domid``; its rings (machine frames and ports
        for PV, guest frames for PVH)."""
        if memory.hvm and not image.pvh:
            raise Unsupported("not implemented: building an HVM guest on the xc backend "
                              "(hvmloader, ACPI tables and a device model in dom0); PV and "
                              "PVH guests only")
        _check_container(image, memory)
        from xen.xc import GuestImage

        guest = GuestImage(kernel=image.kernel, ramdisk=image.ramdisk, cmdline=image.cmdline,
                           memory_mib=memory.build_start_mib, vcpus=memory.vcpus,
                           pvh=image.pvh)
        t0 = time.monotonic()
        with self._lock:
            if self._backend is None:
                self._backend = self._open()
            rings = self._backend.build_guest(domid, guest)
        logger.info("built %s domain %d from %s (%d MiB, %d vcpus) in %.2f s: store mfn %#x "
                    "port %d, console mfn %#x port %d", "PVH" if image.pvh else "PV", domid,
                    image.kernel,
                    memory.build_start_mib, memory.vcpus, time.monotonic() - t0,
                    rings.store_mfn, rings.store_port, rings.console_mfn, rings.console_port)
        return BuildResult(store_mfn=rings.store_mfn, store_port=rings.store_port,
                           console_mfn=rings.console_mfn, console_port=rings.console_port)

    def check_file(self, path: str) -> str | None:
        """The dom0 file check."""
        return file_problem(path)

    def save(self, domid: int, out: IO[bytes], suspend: Callable[[], None]) -> None:
        """Refuse clearly, before the guest is asked anything."""
        raise Unsupported("not implemented: saving a domain on the xc backend "
                          "(xc_domain_save is not bound)")

    def restore(self, domid: int, source: IO[bytes], memory: BuildMemory) -> BuildResult:
        """Refuse clearly."""
        raise Unsupported("not implemented: restoring a domain on the xc backend "
                          "(xc_domain_restore is not bound)")

    def close(self) -> None:
        """Close the builder's libxenctrl handle, if it opened one."""
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
