"""rpc.idl and rpc.xec are pure: no I/O imports, everything in __all__ resolves."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import rpc

RPC_DIR = Path(rpc.__file__).parent
PURE_PACKAGES = ("idl", "xec")
FORBIDDEN = {
    "socket", "selectors", "select", "threading", "asyncio", "subprocess", "pykka",
    "jeepney", "pyxs", "cffi",
}  # fmt: skip


# The xec command-line glue does I/O on purpose; everything else in these packages is pure.
IO_MODULES = {"xec/_bus.py", "xec/_cli.py", "xec/_vmcli.py"}


def _modules() -> list[Path]:
    return sorted(p for pkg in PURE_PACKAGES for p in (RPC_DIR / pkg).glob("*.py")
                  if f"{pkg}/{p.name}" not in IO_MODULES)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path} has no module docstring"
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if path.name.startswith("_"):
                own = f"rpc.{path.parent.name}"
                assert node.module != own, f"{path} imports from its own package root"
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path} imports {name}"


@pytest.mark.parametrize("package", [f"rpc.{p}" for p in PURE_PACKAGES])
def test_all_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name}"
    for path in (RPC_DIR / package.split(".")[1]).glob("_*.py"):
        sub = importlib.import_module(f"{package}.{path.stem}")
        for name in getattr(sub, "__all__", ()):
            assert hasattr(sub, name), f"{sub.__name__}.{name}"


@pytest.mark.parametrize("package", [f"rpc.{p}" for p in PURE_PACKAGES])
def test_lazy_exports_match_all(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module._SOURCES) == sorted(module.__all__)
    for name, source in module._SOURCES.items():
        assert name in importlib.import_module(source).__all__, f"{source}.{name}"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = module.nope


def test_option_parser_needs_no_idl() -> None:
    """``xec -h`` must not pay for the XML loader: _options imports only the stdlib."""
    tree = ast.parse((RPC_DIR / "xec" / "_options.py").read_text())
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
    assert "re" in modules
    assert not [m for m in modules if m.startswith("rpc")]
