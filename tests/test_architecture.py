"""The architecture, enforced: layers, public surfaces, pure cores (docs/architecture.md).

1. **Layers.** Every import (module level, function level or type-only) follows the allowed
   package graph: ``actors`` <- the supervision library <- ``rpc`` <- ``persistence`` and
   ``xen`` <- the dom0 application (``supervision.dom0``). Nothing imports a layer above its
   own, so no function-level import can hide a cycle; the graph of subpackages has no cycle
   either.
2. **Public surfaces.** A private module (``_name``) is imported only from its own package or
   from a package below it in the same component (the dom0 application is a component of its
   own: it uses the supervision library's public names); everything else goes through the
   package's public names.
3. **Pure cores.** A module that declares ``__pure__ = True`` imports nothing of
   :data:`FORBIDDEN` (at any level) and no project module that is not itself pure; imported
   alone in a fresh interpreter where sockets, threads and subprocesses are blocked, it loads
   none of the I/O modules in :data:`IO_MODULES`.
4. **Each Xen concept in one place.** Production code never imports the simulator
   (``xen.sim``); the backend interface, its values, errors and wire protocol live in
   ``xen.hypervisor``; there is one ``ShutdownReason``.

Each rule also runs against a planted violation, so a broken checker cannot pass silently.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("actors", "supervision", "rpc", "persistence", "xen")

#: What a pure core may not import, directly or through a project module.
FORBIDDEN = frozenset({
    "socket", "ssl", "selectors", "select", "threading", "_thread", "asyncio", "subprocess",
    "multiprocessing", "concurrent", "signal", "termios", "tty", "readline", "ctypes", "shutil",
    "tempfile", "logging", "cffi", "pykka", "pyxs", "jeepney.io",
})
#: Modules that must stay unloaded after importing a pure core alone. ``socket`` and
#: ``threading`` are not among them (jeepney's package root loads ``socket``, ``logging`` loads
#: ``threading``): there, creating a socket or starting a thread is what is refused.
IO_MODULES = frozenset({
    "asyncio", "subprocess", "multiprocessing", "concurrent.futures", "termios", "tty",
    "readline", "ctypes", "cffi", "pykka", "pyxs", "jeepney.io",
})

#: Components of the layer graph and what each may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "actors": frozenset(),
    "supervision": frozenset({"actors"}),
    "rpc": frozenset({"actors", "supervision"}),
    "persistence": frozenset({"actors", "supervision", "rpc"}),
    "xen": frozenset({"actors", "supervision", "rpc"}),
    "dom0": frozenset({"actors", "supervision", "rpc", "persistence", "xen"}),
}


# ------------------------------------------------------------------ the import model


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module name, where it appears and how."""

    importer: str  # dotted module name
    module: str  # the module named by the import
    names: tuple[str, ...]  # for ``from m import a, b``
    line: int
    type_only: bool


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str, path: Path) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to itself)."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _type_checking_ids(tree: ast.Module) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                ids.update(id(n) for n in ast.walk(child))
    return ids


def imports_of(text: str, importer: str) -> Iterator[Import]:
    tree = ast.parse(text)
    typed = _type_checking_ids(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(importer, alias.name, (), node.lineno, id(node) in typed)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(a.name for a in node.names)
            yield Import(importer, node.module, names, node.lineno, id(node) in typed)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            if "__pycache__" not in path.parts:
                out[module_name(path, root)] = path
    return out


def component(module: str) -> str | None:
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    if module == "supervision.dom0" or module.startswith("supervision.dom0."):
        return "dom0"
    return top


def public_package(module: str) -> str:
    """The package whose public names a module stands behind: the part before the first
    private segment (``xen.xenops._plan`` -> ``xen.xenops``)."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_"):
            return ".".join(parts[:i])
    return module


# ------------------------------------------------------------------ the rules, as functions


def layer_violations(imports: Iterable[Import]) -> list[str]:
    out = []
    for imp in imports:
        src, dst = component(imp.importer), component(imp.module)
        if src is None or dst is None or src == dst:
            continue
        if dst not in ALLOWED[src]:
            out.append(f"{imp.importer}:{imp.line} imports {imp.module} ({src} -> {dst} "
                       f"is not in the allowed graph)")
    return out


def private_violations(imports: Iterable[Import], packages: dict[str, str]) -> list[str]:
    """``packages`` maps each importer to its package."""
    out = []
    for imp in imports:
        if component(imp.module) is None:
            continue
        owner = public_package(imp.module)
        if owner == imp.module:
            continue
        pkg = packages[imp.importer]
        inside = pkg == owner or pkg.startswith(owner + ".")
        if not inside or component(imp.importer) != component(imp.module):
            out.append(f"{imp.importer}:{imp.line} imports private {imp.module} "
                       f"(use `from {owner} import ...`)")
    return out


def subpackage_cycles(imports: Iterable[Import], packages: dict[str, str]) -> list[list[str]]:
    """Cycles in the graph of packages (each module counted in its package)."""
    graph: dict[str, set[str]] = {}
    known = set(packages.values())
    for imp in imports:
        if component(imp.module) is None:
            continue
        src = packages[imp.importer]
        dst = public_package(imp.module)
        while dst not in known and "." in dst:
            dst = dst.rpartition(".")[0]
        if dst != src and not src.startswith(dst + ".") and not dst.startswith(src + "."):
            graph.setdefault(src, set()).add(dst)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def declares_pure(text: str) -> bool:
    for node in ast.parse(text).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "__pure__"
                and isinstance(node.value, ast.Constant) and node.value.value is True):
            return True
    return False


def forbidden_in(imports: Iterable[Import]) -> list[str]:
    return [f"{imp.importer}:{imp.line} imports {imp.module}" for imp in imports
            if not imp.type_only and any(imp.module == f or imp.module.startswith(f + ".")
                                          for f in FORBIDDEN)]


# ------------------------------------------------------------------ the project's facts

MODULES = project_modules()
PACKAGE_OF = {name: package_of(name, path) for name, path in MODULES.items()}
IMPORTS = [imp for name, path in MODULES.items() for imp in imports_of(path.read_text(), name)]
PURE = sorted(name for name, path in MODULES.items() if declares_pure(path.read_text()))


def test_every_import_follows_the_layer_graph() -> None:
    assert layer_violations(IMPORTS) == []


def test_private_modules_are_imported_only_from_their_own_package() -> None:
    assert private_violations(IMPORTS, PACKAGE_OF) == []


def test_the_package_graph_has_no_cycle() -> None:
    assert subpackage_cycles(IMPORTS, PACKAGE_OF) == []


def test_production_code_never_imports_the_simulator() -> None:
    bad = [f"{imp.importer}:{imp.line} imports {imp.module}" for imp in IMPORTS
           if (imp.module == "xen.sim" or imp.module.startswith("xen.sim."))
           and not (imp.importer == "xen.sim" or imp.importer.startswith("xen.sim."))]
    assert bad == []


def test_cffi_is_imported_only_by_the_xc_backend() -> None:
    bad = [f"{imp.importer}:{imp.line}" for imp in IMPORTS
           if imp.module.split(".")[0] == "cffi" and not imp.importer.startswith("xen.xc.")]
    assert bad == []


def test_one_shutdown_reason() -> None:
    defined = [name for name, path in MODULES.items()
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef) and node.name == "ShutdownReason"]
    assert defined == ["xen.hypervisor._values"]


def test_the_core_modules_declare_themselves_pure() -> None:
    expected = {
        "actors._codec", "actors._exits", "actors._frames",
        "supervision._spec", "supervision._intensity", "supervision._strategy",
        "supervision.control._proto",
        "rpc.dbus._messages", "rpc.dbus._wire", "rpc.dbus._marshal", "rpc.dbus._errors",
        "rpc.idl._model", "rpc.idl._signature",
        "rpc.proxy._options", "rpc.proxy._argo_sim", "rpc.proxy._limits", "rpc.proxy._signature",
        "rpc.proxy._header", "rpc.proxy._message", "rpc.proxy._frames",
        "rpc.proxy._auth", "rpc.proxy._calls", "rpc.proxy._names", "rpc.proxy._security",
        "rpc.proxy._json", "rpc.proxy._jsonvalues", "rpc.proxy._jsonstream",
        "rpc.proxy._websocket",
        "persistence._tree", "persistence._jsonfmt", "persistence._limits",
        "persistence._walcodec",
        "xen.hypervisor._interface", "xen.hypervisor._values", "xen.hypervisor._errors",
        "xen.hypervisor.wire", "xen.xenstore._wire", "xen.xenstore._requests",
        "xen.xenops._atomics", "xen.xenops._plan", "xen.xenops._teardown",
        "xen.xenvm._lifecycle", "xen.xenvm._tasks", "xen.xenvm._config",
        "xen.xenvm._reconcile", "xen.sim.xenstored._store", "xen.sim.hypervisor._model",
        "xen.xenmgr._errors", "xen.xenmgr._states", "xen.xenmgr._dbview", "xen.xenmgr._codecs",
        "xen.xenmgr._schema", "xen.xenmgr._devices", "xen.xenmgr._binding",
        "xen.xenmgr._vm_properties", "xen.xenmgr._object_properties", "xen.xenmgr._properties",
        "xen.xenmgr._readers",
        "xen.xenmgr._vmconfig", "xen.xenmgr._vmconfig_keys", "xen.xenmgr._autostart_plan",
        "rpc.proxy._rules_model", "rpc.proxy._rules_parse", "rpc.proxy._rules_format",
        "rpc.proxy._rules_eval",
    }
    assert expected - set(PURE) == set()


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    mine = [imp for imp in IMPORTS if imp.importer == module]
    assert forbidden_in(mine) == []
    impure = sorted({imp.module for imp in mine if not imp.type_only
                     and imp.module in MODULES and imp.module not in PURE
                     and not MODULES[imp.module].name == "__init__.py"})
    assert impure == [], f"{module} imports modules that are not pure: {impure}"


_ISOLATED = textwrap.dedent("""
    import _thread, importlib, importlib.abc, socket, sys
    forbidden = set(sys.argv[2].split(","))
    preloaded = set(sys.modules)

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in forbidden or any(name.startswith(f + ".") for f in forbidden):
                raise ImportError(f"{name} is blocked in a pure import")
            return None

    class NoSocket(socket.socket):
        def __init__(self, *_a, **_k):
            raise RuntimeError("a pure module opened a socket at import")

    def refuse(*_a, **_k):
        raise RuntimeError("a pure module started a thread at import")

    _thread.start_new_thread = refuse  # before anything imports threading
    socket.socket = NoSocket
    sys.meta_path.insert(0, Block())  # subprocess, pykka, cffi ... cannot load
    importlib.import_module(sys.argv[1])
    loaded = sorted(m for m in set(sys.modules) - preloaded
                    if m in forbidden or any(m.startswith(f + ".") for f in forbidden))
    print(",".join(loaded))
""")


def _import_alone(module: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _ISOLATED, module, ",".join(IO_MODULES)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.integration
@pytest.mark.parametrize("module", PURE)
def test_pure_module_loads_no_io_module_when_imported_alone(module: str) -> None:
    done = _import_alone(module)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


# ------------------------------------------------------------------ planted violations


def _planted(tmp_path: Path, files: dict[str, str]) -> tuple[list[Import], dict[str, str]]:
    imports: list[Import] = []
    packages: dict[str, str] = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        name = module_name(path, tmp_path)
        packages[name] = package_of(name, path)
        imports += list(imports_of(text, name))
    return imports, packages


def test_a_planted_upward_import_is_caught(tmp_path: Path) -> None:
    imports, _ = _planted(tmp_path, {
        "actors/_x.py": "def f():\n    from supervision import Supervisor\n",
        "rpc/_y.py": "from xen.xenvm import VmMonitor\n",
        "xen/_z.py": "from supervision.dom0 import main\n",
        "supervision/dom0/_ok.py": "from xen.tree import xen_spec\n",
    })
    found = layer_violations(imports)
    assert len(found) == 3
    assert any("actors._x:2" in v for v in found)


def test_a_planted_private_import_is_caught(tmp_path: Path) -> None:
    imports, packages = _planted(tmp_path, {
        "xen/xenvm/_m.py": "from xen.xenops._plan import Plan\nfrom xen.xenvm._n import X\n",
        "xen/sim/xenstored/_s.py": "from xen.sim._serving import serve\n",
        "supervision/dom0/_t.py": "from supervision._spec import ChildSpec\n",
    })
    found = private_violations(imports, packages)
    assert found == ["xen.xenvm._m:1 imports private xen.xenops._plan "
                     "(use `from xen.xenops import ...`)",
                     "supervision.dom0._t:1 imports private supervision._spec "
                     "(use `from supervision import ...`)"]


def test_a_planted_cycle_is_caught(tmp_path: Path) -> None:
    imports, packages = _planted(tmp_path, {
        "xen/a/__init__.py": "", "xen/b/__init__.py": "",
        "xen/a/_m.py": "from xen.b import X\n",
        "xen/b/_n.py": "def f():\n    from xen.a import Y\n",
    })
    assert subpackage_cycles(imports, packages) == [["xen.a", "xen.b", "xen.a"]]


def test_a_planted_impure_import_is_caught(tmp_path: Path) -> None:
    text = "__pure__ = True\n\ndef f():\n    import socket\n"
    imports, _ = _planted(tmp_path, {"xen/_p.py": text})
    assert declares_pure(text)
    assert forbidden_in(imports) == ["xen._p:4 imports socket"]


def test_a_planted_transitive_io_import_is_caught(tmp_path: Path) -> None:
    (tmp_path / "plantedpkg").mkdir()
    (tmp_path / "plantedpkg" / "__init__.py").write_text("")
    (tmp_path / "plantedpkg" / "core.py").write_text("__pure__ = True\nimport plantedpkg.io\n")
    (tmp_path / "plantedpkg" / "io.py").write_text("import json\nimport subprocess\n")
    done = subprocess.run([sys.executable, "-c", _ISOLATED, "plantedpkg.core",
                           ",".join(IO_MODULES)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode != 0
    assert "subprocess is blocked" in done.stderr
