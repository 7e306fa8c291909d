"""rpc.idl and rpc.xec export what they declare, lazily; xec's option parser stays light
(purity: tests/test_architecture.py)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import rpc

RPC_DIR = Path(rpc.__file__).parent
PURE_PACKAGES = ("idl", "xec")
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
