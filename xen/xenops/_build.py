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
that is not). :class:`UnsupportedBuilder` stands for real Xen until libxenguest is bound:
every method raises ``Unsupported`` naming what is missing (domains started by ``xl`` can
still be adopted and managed; its check_file is the dom0 file check).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

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


@dataclass(frozen=True, slots=True)
class BootImage:
    """What a build loads: the kernel (hvmloader for an HVM guest), ramdisk, command line."""

    kernel: str
    ramdisk: str | None = None
    cmdline: str = ""


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
    """Real Xen until libxenguest is bound (see the module docstring)."""

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
