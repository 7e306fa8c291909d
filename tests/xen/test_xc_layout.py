"""Our cffi declarations against Debian's libxen-dev 4.17 headers: gcc compiles a C file that
prints sizeof and offsetof of every field we declare (each must equal cffi's figures) and the
value of every header constant we copy (`CONSTANTS`, `xen.hypervisor.HvmParam`); every function
we declare is redeclared, with cffi's own signature, after ``#include <xenctrl.h>`` and
``<xenguest.h>`` (gcc refuses conflicting types) and must resolve in the installed library
through ``ffi.dlopen``. A struct we declare only in part (``struct xc_dom_image``) carries
``_pad*`` byte arrays between the fields we use: those are not C fields and are skipped, every
other field is checked, and so is the total size.

Skipped (with the reason) only when the headers, gcc or (for the symbols) the libraries are
absent (``apt-get install libxen-dev``; `make debs` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from xen.hypervisor import HvmParam
from xen.xc._cdefs import CDEFS, CONSTANTS, FUNCTIONS, STRUCTS
from xen.xc._xc import ffi

HEADER = Path("/usr/include/xenctrl.h")

pytestmark = [
    pytest.mark.skipif(not HEADER.exists(),
                       reason=f"{HEADER} absent: install Debian's libxen-dev (Xen 4.17 headers)"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc absent"),
]


def cffi_layout(ctype: Any, prefix: str = "", base: int = 0) -> list[tuple[str, int, int]]:
    """(field path, offset, size) of every field, nested structs walked."""
    out: list[tuple[str, int, int]] = []
    for name, field in ctype.fields:
        if name.startswith("_pad"):
            continue  # our filler between the fields we use (see the module docstring)
        path = f"{prefix}{name}"
        offset = base + field.offset
        out.append((path, offset, ffi.sizeof(field.type)))
        if field.type.kind == "struct":
            out += cffi_layout(field.type, f"{path}.", offset)
    return out


def c_program(structs: dict[str, list[tuple[str, int, int]]]) -> str:
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <xenctrl.h>",
             "#include <xenguest.h>", "int main(void) {"]
    for struct, fields in structs.items():
        label = struct.replace(" ", "_")
        lines.append(f'  printf("{label} sizeof %zu\\n", sizeof({struct}));')
        for path, _, _ in fields:
            lines.append(
                f'  printf("{label} {path} %zu %zu\\n", offsetof({struct}, {path}),'
                f" sizeof((({struct} *)0)->{path}));")
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


def test_declared_structs_match_the_xen_headers(tmp_path: Path) -> None:
    structs = {name: cffi_layout(ffi.typeof(name)) for name in STRUCTS}
    source = tmp_path / "layout.c"
    source.write_text(c_program(structs))
    binary = tmp_path / "layout"
    compiled = subprocess.run(["gcc", "-o", str(binary), str(source)],
                              capture_output=True, text=True, timeout=30)
    assert compiled.returncode == 0, f"gcc failed:\n{compiled.stderr}"
    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=10, check=True)
    from_c: dict[tuple[str, str], tuple[int, ...]] = {}
    for line in ran.stdout.splitlines():
        struct, path, *numbers = line.split()
        from_c[struct, path] = tuple(int(n) for n in numbers)
    mismatches = []
    for struct, fields in structs.items():
        label = struct.replace(" ", "_")
        if from_c[label, "sizeof"] != (ffi.sizeof(struct),):
            mismatches.append(f"sizeof({struct}): C {from_c[label, 'sizeof'][0]}, "
                              f"cffi {ffi.sizeof(struct)}")
        for path, offset, size in fields:
            if from_c[label, path] != (offset, size):
                mismatches.append(f"{struct}.{path}: C offset/size {from_c[label, path]}, "
                                  f"cffi {(offset, size)}")
    assert not mismatches, "\n".join(mismatches)


def compile_and_run(tmp_path: Path, source: str) -> str:
    (tmp_path / "check.c").write_text(source)
    binary = tmp_path / "check"
    compiled = subprocess.run(["gcc", "-o", str(binary), str(tmp_path / "check.c")],
                              capture_output=True, text=True, timeout=30)
    assert compiled.returncode == 0, f"gcc failed:\n{compiled.stderr}"
    return subprocess.run([str(binary)], capture_output=True, text=True, timeout=10,
                          check=True).stdout


def test_copied_constants_and_hvm_param_numbers_match_the_headers(tmp_path: Path) -> None:
    ours = dict(CONSTANTS) | {f"HVM_PARAM_{p.name}": p.value for p in HvmParam}
    lines = ["#include <stdio.h>", "#include <xenctrl.h>", "#include <xenguest.h>",
             "int main(void) {"]
    lines += [f'  printf("{name} %lld\\n", (long long)({name}));' for name in ours]
    lines += ["  return 0;", "}"]
    out = compile_and_run(tmp_path, "\n".join(lines) + "\n")
    from_c = {name: int(value) for name, value in (line.split() for line in out.splitlines())}
    assert from_c == ours


def _prototype(lib: Any, name: str) -> str:
    """The C declaration of ``name`` as cffi understood our cdef (const restored where our
    cdef has it, on a pointer return type or parameter: cffi drops it)."""
    cname = ffi.typeof(getattr(lib, name)).cname  # e.g. "int(*)(xc_interface *, uint32_t)"
    returns, _, params = cname.partition("(*)")
    const = "const " if re.search(rf"const\s+\w+\s*\*\s*{name}\s*\(", CDEFS) else ""
    ours = re.search(rf"\b{name}\s*\(([^)]*)\)", CDEFS)
    assert ours is not None, name
    cffi_params = params.strip()[1:-1].split(",") if params.strip() != "()" else []
    our_params = ours.group(1).split(",")
    if len(cffi_params) == len(our_params):
        params = "(" + ", ".join(
            ("const " + p.strip()) if o.strip().startswith("const") else p.strip()
            for p, o in zip(cffi_params, our_params, strict=True)) + ")"
    return f"{const}{returns} {name}{params};"


def test_declared_functions_resolve_and_match_the_header_prototypes(tmp_path: Path) -> None:
    declarations = []
    for library, names in FUNCTIONS.items():
        try:
            lib = ffi.dlopen(library)
        except OSError as exc:
            pytest.skip(f"{library} cannot be loaded ({exc}); install libxenctrl4.17")
        missing = []
        for name in names:
            try:
                declarations.append(_prototype(lib, name))
            except AttributeError:
                missing.append(name)
        assert not missing, f"{library} lacks {missing}"
    assert set(re.findall(r"\b(\w+)\s*\(", CDEFS)) >= {
        n for names in FUNCTIONS.values() for n in names}
    # A redeclaration with another signature is a hard error ("conflicting types").
    source = "\n".join(["#include <stdio.h>", "#include <xenctrl.h>", "#include <xenguest.h>",
                        *declarations,
                        'int main(void) { puts("ok"); return 0; }']) + "\n"
    assert compile_and_run(tmp_path, source).strip() == "ok"


def test_every_declared_function_is_listed() -> None:
    declared = set(re.findall(r"^[\w ]+?\**\s*\**(\w+)\(", CDEFS, flags=re.M))
    assert declared == {n for names in FUNCTIONS.values() for n in names}


def test_the_known_sizes() -> None:
    # Xen 4.17 x86-64: 112-byte getdomaininfo (arch_config at 104), 112-byte physinfo.
    assert ffi.sizeof("xc_domaininfo_t") == 112
    assert ffi.offsetof("xc_domaininfo_t", "arch_config") == 104
    assert ffi.sizeof("xc_physinfo_t") == 112
    # createdomain of XEN_DOMCTL_INTERFACE_VERSION 0x15: 64 bytes, the arch config at 56;
    # libxenguest 4.17's xc_dom_image: 1952 bytes, max_vcpus last at 1944.
    assert ffi.sizeof("struct xen_domctl_createdomain") == 64
    assert ffi.offsetof("struct xen_domctl_createdomain", "arch") == 56
    assert ffi.sizeof("struct xc_dom_image") == 1952
    assert ffi.offsetof("struct xc_dom_image", "max_vcpus") == 1944
