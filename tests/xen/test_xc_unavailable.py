"""The xc backend on a host without Xen: one clear `Unavailable` naming /dev/xen/privcmd (and
the library when it is missing), never a cffi traceback; and the plumbing that works without
Xen (dummy open/close, closed handle)."""

from __future__ import annotations

import ast
import errno
import os
from pathlib import Path

import pytest

from xen.hypervisor import InvalidArgument, Unavailable
from xen.xc import XcBackend
from xen.xc._cdefs import PRIVCMD

ROOT = Path(__file__).resolve().parents[2]
HAVE_XEN = os.path.exists(PRIVCMD)
no_xen = pytest.mark.skipif(HAVE_XEN, reason=f"{PRIVCMD} exists: this host runs Xen")


def _libxenctrl_loads() -> bool:
    from xen.xc._xc import ffi
    try:
        ffi.dlopen("libxenctrl.so.4.17")
    except OSError:
        return False
    return True


needs_lib = pytest.mark.skipif(not _libxenctrl_loads(),
                               reason="libxenctrl.so.4.17 absent (apt-get install libxen-dev)")


@no_xen
def test_no_privcmd_is_one_clear_unavailable() -> None:
    with pytest.raises(Unavailable) as err:
        XcBackend()
    message = str(err.value)
    assert PRIVCMD in message and "does not exist" in message
    assert err.value.__cause__ is None and err.value.__context__ is None


@no_xen
def test_missing_library_is_named_too() -> None:
    with pytest.raises(Unavailable) as err:
        XcBackend(library="libxenctrl.so.0.0-absent")
    assert PRIVCMD in str(err.value)
    assert "libxenctrl.so.0.0-absent cannot be loaded" in str(err.value)


def test_missing_library_with_privcmd_present_names_the_library(tmp_path: Path) -> None:
    fake = tmp_path / "privcmd"
    fake.touch()
    with pytest.raises(Unavailable, match=r"cannot load libxenctrl\.so\.0\.0-absent") as err:
        XcBackend(library="libxenctrl.so.0.0-absent", privcmd=str(fake))
    assert PRIVCMD in str(err.value)


@no_xen
@needs_lib
def test_open_failure_reports_errno_and_device(tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "privcmd"
    fake.touch()  # passes our check; libxencall still opens the real /dev/xen/privcmd
    with pytest.raises(Unavailable) as err:
        XcBackend(privcmd=str(fake))
    assert err.value.errno == errno.ENOENT
    assert f"cannot open Xen control through {PRIVCMD}" in str(err.value)
    assert "ENOENT" in str(err.value)
    assert capfd.readouterr().err == ""  # libxenctrl's own stderr logging is silenced


@needs_lib
def test_dummy_handle_opens_and_closes_and_closed_calls_fail() -> None:
    backend = XcBackend(open_flags=1)  # XC_OPENFLAG_DUMMY: no hypervisor needed
    with pytest.raises(InvalidArgument, match="not a DomainSpec"):
        backend.create(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="not a GuestImage"):
        backend.build_guest(1, None)  # type: ignore[arg-type]
    backend.close()
    backend.close()
    with pytest.raises(Unavailable, match="closed"):
        backend.version()
    with pytest.raises(Unavailable, match="closed"):
        backend.pause(1)


def test_cffi_is_imported_only_under_xen_xc() -> None:
    offenders = []
    for pkg in ("actors", "supervision", "xen", "rpc", "persistence"):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("xen", "xc"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n == "cffi" or n.startswith("cffi.") for n in names):
                    offenders.append(str(rel))
    assert not offenders, f"cffi imported outside xen/xc: {offenders}"
