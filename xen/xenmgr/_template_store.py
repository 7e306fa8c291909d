"""The template directories on disk: the shipped set, and an administrator's additions.

:class:`TemplateStore` reads its directories in order, each later one adding templates and
replacing those of the same name (the shipped ``templates/<flavour>`` of this package first,
then the administrator's directory, by default :data:`DEFAULT_ADMIN_DIR`). A template is a
file ``<name>.json``; other files (hidden ones, editor backups, names that are not template
names) are ignored. Every :meth:`TemplateStore.load` reads the directories again, so an
edited or added file counts from the next call on; nothing is cached.

Bounds: a file is at most ``max_bytes`` (read through a bounded read, so a file that grows while
it is read is still refused), a directory at most ``max_files`` template files (the rest are
reported and ignored); only regular files are read (a FIFO or device cannot block the caller).

Failure: a missing administrator directory is no templates; a missing shipped directory (a
broken installation) raises :class:`~xen.xenmgr._templates.TemplateError`. A file that cannot
be read or does not parse becomes a :class:`~xen.xenmgr._templates.TemplateProblem` (logged
once per load as a warning) and shadows a template of the same name from an earlier directory:
asking for it raises TemplateError with the reason.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from xen.xenmgr._jsontree import MAX_TREE_BYTES
from xen.xenmgr._templates import (
    TEMPLATE_SUFFIX,
    Template,
    TemplateError,
    TemplateProblem,
    TemplateSet,
    check_template_name,
    parse_template,
)

__all__ = [
    "DEFAULT_ADMIN_DIR",
    "DEFAULT_FLAVOUR",
    "MAX_TEMPLATE_FILES",
    "TemplateStore",
    "shipped_templates_dir",
]

log = logging.getLogger(__name__)

DEFAULT_FLAVOUR = "default"
#: Where an administrator puts extra or replacement templates (persistent configuration).
DEFAULT_ADMIN_DIR = Path("/config/xenmgr/templates")
MAX_TEMPLATE_FILES = 256
_SHIPPED_ROOT = Path(__file__).resolve().parent / "templates"


def shipped_templates_dir(flavour: str = DEFAULT_FLAVOUR) -> Path:
    """The directory of the templates this package ships for ``flavour``."""
    check_template_name(flavour)
    return _SHIPPED_ROOT / flavour


def _is_template_name(name: str) -> bool:
    try:
        check_template_name(name)
    except TemplateError:
        return False  # not a template file (a hidden file, "x y.json"): ignored
    return True


class TemplateStore:
    """Reads template directories into a :class:`TemplateSet` (see the module docstring)."""

    def __init__(self, *, shipped: Path | None = None,
                 admin: Path | None = DEFAULT_ADMIN_DIR,
                 max_bytes: int = MAX_TREE_BYTES,
                 max_files: int = MAX_TEMPLATE_FILES) -> None:
        self._shipped = shipped if shipped is not None else shipped_templates_dir()
        self._admin = admin
        self._max_bytes = max_bytes
        self._max_files = max_files

    @property
    def directories(self) -> Sequence[Path]:
        return (self._shipped,) if self._admin is None else (self._shipped, self._admin)

    def load(self) -> TemplateSet:
        """Read every directory now; later directories override earlier ones."""
        if not self._shipped.is_dir():
            raise TemplateError(f"the shipped template directory {self._shipped} is missing "
                                f"(broken installation?)")
        result = self._load_dir(self._shipped)
        if self._admin is not None:
            result = result.overlay(self._load_dir(self._admin))
        for problem in result.problems.values():
            log.warning("template %s unusable: %s", problem.name, problem.message)
        return result

    def _load_dir(self, directory: Path) -> TemplateSet:
        try:
            with os.scandir(directory) as listing:
                entries = sorted(e.name for e in listing)
        except FileNotFoundError:
            return TemplateSet()
        except OSError as e:
            raise TemplateError(f"cannot list template directory {directory}: "
                                f"{e.strerror}") from None
        names = [n[:-len(TEMPLATE_SUFFIX)] for n in entries
                 if n.endswith(TEMPLATE_SUFFIX) and _is_template_name(n[:-len(TEMPLATE_SUFFIX)])]
        templates: list[Template] = []
        problems: list[TemplateProblem] = []
        for index, name in enumerate(names):
            path = directory / (name + TEMPLATE_SUFFIX)
            if index >= self._max_files:
                problems.append(TemplateProblem(
                    name, str(path), f"ignored: {directory} has more than {self._max_files} "
                                     f"template files"))
                continue
            try:
                templates.append(parse_template(name, self._read(path), source=str(path)))
            except TemplateError as e:
                problems.append(TemplateProblem(name, str(path), str(e)))
            except OSError as e:
                problems.append(TemplateProblem(name, str(path),
                                                f"cannot read {path}: {e.strerror or e}"))
        return TemplateSet.of(templates, problems)

    def _read(self, path: Path) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            chunks: list[bytes] = []
            size = 0
            while size <= self._max_bytes:
                chunk = os.read(fd, self._max_bytes + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > self._max_bytes:
                raise OSError(errno.EFBIG, f"larger than {self._max_bytes} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)
