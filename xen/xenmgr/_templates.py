"""VM templates: parsing and checking one, the lists xenmgr answers, service and child VMs.

A template is a JSON object shaped like a VM's db subtree (``/vm/<uuid>``): string values and
nested objects only (see :mod:`xen.xenmgr._jsontree` for the bounds). Its name is its file name
without ``.json``. Besides the shape, a template is checked where a wrong value would only show
up much later: ``uuid`` a canonical lower-case uuid, ``slot`` an integer, ``ui-selectable`` a
db boolean, ``config/virt-type`` one of ``hvm pvh pv``, ``config/memory`` a positive integer
(MiB); a ``service-<tag>`` template must carry a ``uuid`` (the service VM's fixed identity);
only a ``child-<tag>`` template may have a ``parent-override`` object.

A :class:`TemplateSet` is what a directory scan produced: the templates that parsed and, for
files that did not, a :class:`TemplateProblem` under the same name. A broken file shadows a good
one of the same name in a lower layer (an administrator's broken override is reported, not
silently replaced by the shipped template) and asking for it raises :class:`TemplateError` with
the parse error.

The rules, as the original's (names sorted here; the original listed in directory order):

* :func:`list_templates`: every name not starting with ``service-`` (broken ones included, so
  the administrator sees them; ``child-*`` names appear too).
* :func:`list_ui_templates`: ``{template, description}`` of the templates whose
  ``ui-selectable`` is true (description ``""`` when absent).
* :func:`list_child_service_vm_templates`: ``child-<tag>`` -> ``<tag>``.
* :func:`select_service_vms`: the ``service-<tag>`` templates, keeping ``ndvm-<mode>`` only
  when ``<mode>`` is the db's ``/xenmgr/ndvm-mode`` (default ``hvm``) and ``usbvm`` only when
  ``/xenmgr/usbvm-enable`` is true (default false). Each is written at every start when its
  ``/xenmgr/overwrite-<tag>-settings`` is true (default; every ``ndvm-*`` uses tag ``ndvm``)
  or when the VM does not exist (:func:`plan_service_vm_exports`).
* :func:`export_tree`: the subtree to inject at ``/vm/<uuid>``: the template with ``uuid`` set,
  keeping the existing ``config/disk/<n>/sha1sum`` of every disk the template also has.
* :func:`instantiate_child`: a child template's own subtree, and its ``parent-override``
  section with ``${UUID}`` (the child) and ``${PARENT_UUID}`` substituted in its strings; the
  caller deep-merges that into the parent VM. Other ``${...}`` text is left as it is.
* :func:`merge_json`: the ``..._and_json`` merge: a blank text changes nothing, otherwise the
  client's object is deep-merged over the template (integers and booleans accepted as their
  text, as the db would read them back).

Failure: :class:`TemplateError` (a ValueError) naming the template or file, the key and the
problem; :class:`~xen.xenmgr._jsontree.TreeError` from :func:`merge_json` naming ``json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from xen.xenmgr._jsontree import (
    EMPTY_TREE,
    TreeError,
    TreeView,
    deep_merge,
    get_leaf,
    get_node,
    map_strings,
    parse_db_bool,
    parse_tree,
    with_leaf,
)
from xen.xenmgr._uuids import is_canonical_uuid

__all__ = [
    "CHILD_PREFIX",
    "DEFAULT_NDVM_MODE",
    "DEFAULT_USBVM_ENABLE",
    "NDVM_MODE_PATH",
    "PARENT_OVERRIDE",
    "SERVICE_PREFIX",
    "TEMPLATE_SUFFIX",
    "USBVM_ENABLE_PATH",
    "ChildParts",
    "ServiceExport",
    "ServiceVm",
    "Template",
    "TemplateError",
    "TemplateProblem",
    "TemplateSet",
    "check_template_name",
    "export_tree",
    "instantiate_child",
    "list_child_service_vm_templates",
    "list_templates",
    "list_ui_templates",
    "merge_json",
    "overwrite_setting_path",
    "parse_template",
    "plan_service_vm_exports",
    "resolve_template",
    "select_service_vms",
    "template_from_tree",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

TEMPLATE_SUFFIX = ".json"
SERVICE_PREFIX = "service-"
CHILD_PREFIX = "child-"
PARENT_OVERRIDE = "parent-override"
NDVM_MODE_PATH = "/xenmgr/ndvm-mode"
DEFAULT_NDVM_MODE = "hvm"
USBVM_ENABLE_PATH = "/xenmgr/usbvm-enable"
DEFAULT_USBVM_ENABLE = False

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_INT = re.compile(r"-?[0-9]{1,9}")
_VIRT_TYPES = ("hvm", "pvh", "pv")
_STRINGS = ("uuid", "name", "description", "slot", "type", "ui-selectable")
_OBJECTS = ("config", "config/disk", "config/nic", "config/pci", "argo-firewall-rules",
            "rpc-firewall-rules", PARENT_OVERRIDE)


class TemplateError(ValueError):
    """A template is missing, malformed, or breaks a template rule; the message says which."""


@dataclass(frozen=True, slots=True)
class Template:
    """One template: its name, its (read-only) tree and the file it came from."""

    name: str
    tree: TreeView = field(hash=False)
    source: str = ""

    @property
    def uuid(self) -> str | None:
        """The fixed uuid the template carries, if any (service VMs have one)."""
        return get_leaf(self.tree, "uuid") or None

    @property
    def description(self) -> str:
        return get_leaf(self.tree, "description") or ""

    @property
    def ui_selectable(self) -> bool:
        value = get_leaf(self.tree, "ui-selectable")
        return value is not None and parse_db_bool(value, what="ui-selectable")


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """A template file that could not be used, and why."""

    name: str
    source: str
    message: str


def check_template_name(name: str) -> str:
    """``name`` if it can name a template file; TemplateError otherwise (so a client's name can
    never reach outside the template directories)."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise TemplateError(f"{name!r} is not a template name (a letter or digit, then up to "
                            f"99 letters, digits or . _ + -, no '..')")
    return name


def parse_template(name: str, text: str | bytes, *, source: str) -> Template:
    """Parse and check the text of template ``name`` read from ``source``."""
    check_template_name(name)
    try:
        tree = parse_tree(text, source=source)
    except TreeError as e:
        raise TemplateError(f"template {name!r}: {e}") from None
    return template_from_tree(name, tree, source=source)


def template_from_tree(name: str, tree: TreeView, *, source: str) -> Template:
    """Check an already-parsed tree against the template rules (module docstring)."""
    check_template_name(name)

    def bad(key: str, reason: str) -> TemplateError:
        return TemplateError(f"template {name!r} ({source}): key {key!r}: {reason}")

    for key in _STRINGS:
        if key in tree and get_leaf(tree, key) is None:
            raise bad(key, "must be a string, not an object")
    for key in _OBJECTS:
        if get_leaf(tree, key) is not None:
            raise bad(key, "must be an object, not a string")
    uuid = get_leaf(tree, "uuid")
    if uuid and not is_canonical_uuid(uuid):
        raise bad("uuid", f"{uuid!r} is not a canonical lower-case uuid")
    if name.startswith(SERVICE_PREFIX) and not uuid:
        raise bad("uuid", "a service template must carry the service VM's fixed uuid")
    slot = get_leaf(tree, "slot")
    if slot and not _INT.fullmatch(slot):
        raise bad("slot", f"{slot!r} is not an integer")
    selectable = get_leaf(tree, "ui-selectable")
    if selectable is not None:
        try:
            parse_db_bool(selectable, what="the value")
        except ValueError as e:
            raise bad("ui-selectable", str(e)) from None
    virt = get_leaf(tree, "config/virt-type")
    if virt is not None and virt not in _VIRT_TYPES:
        raise bad("config/virt-type", f"{virt!r} is not one of {', '.join(_VIRT_TYPES)}")
    memory = get_leaf(tree, "config/memory")
    if memory is not None and (not memory.isascii() or not memory.isdigit()
                               or int(memory) <= 0):
        raise bad("config/memory", f"{memory!r} is not a positive number of MiB")
    if PARENT_OVERRIDE in tree and not name.startswith(CHILD_PREFIX):
        raise bad(PARENT_OVERRIDE, f"only {CHILD_PREFIX}<tag> templates have one")
    return Template(name, tree, source)


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """Templates by name, and the problems of the files that did not load."""

    templates: Mapping[str, Template] = field(
        default_factory=lambda: MappingProxyType({}), hash=False)
    problems: Mapping[str, TemplateProblem] = field(
        default_factory=lambda: MappingProxyType({}), hash=False)

    @staticmethod
    def of(templates: Iterable[Template] = (),
           problems: Iterable[TemplateProblem] = ()) -> TemplateSet:
        """A set from templates and problems; a name given twice is a caller's bug."""
        good = {t.name: t for t in templates}
        bad = {p.name: p for p in problems}
        both = sorted(set(good) & set(bad))
        if both:
            raise ValueError(f"names both loaded and broken: {both}")
        return TemplateSet(MappingProxyType(good), MappingProxyType(bad))

    def overlay(self, upper: TemplateSet) -> TemplateSet:
        """This set with every name of ``upper`` (good or broken) replacing this one's."""
        good = {n: t for n, t in self.templates.items() if n not in upper.problems}
        good.update(upper.templates)
        bad = {n: p for n, p in self.problems.items() if n not in upper.templates}
        bad.update(upper.problems)
        return TemplateSet(MappingProxyType(good), MappingProxyType(bad))

    def names(self) -> list[str]:
        return sorted({*self.templates, *self.problems})

    def get(self, name: str) -> Template:
        """The template ``name``; TemplateError if there is none or its file is broken."""
        template = self.templates.get(name)
        if template is not None:
            return template
        problem = self.problems.get(name)
        if problem is not None:
            raise TemplateError(f"template {name!r} cannot be used: {problem.message}")
        check_template_name(name)
        raise TemplateError(f"no template named {name!r}")


def list_templates(templates: TemplateSet) -> list[str]:
    return [n for n in templates.names() if not n.startswith(SERVICE_PREFIX)]


def list_ui_templates(templates: TemplateSet) -> list[dict[str, str]]:
    return [{"template": t.name, "description": t.description}
            for n in sorted(templates.templates)
            if not n.startswith(SERVICE_PREFIX)
            and (t := templates.templates[n]).ui_selectable]


def list_child_service_vm_templates(templates: TemplateSet) -> list[str]:
    return [n[len(CHILD_PREFIX):] for n in templates.names()
            if n.startswith(CHILD_PREFIX) and len(n) > len(CHILD_PREFIX)]


def resolve_template(templates: TemplateSet, name: str) -> Template:
    """The template a create call names: a blank name is the empty template."""
    if not name.strip():
        return Template("", EMPTY_TREE, "(blank template name: the empty template)")
    return templates.get(name)


@dataclass(frozen=True, slots=True)
class ServiceVm:
    """A service VM to configure at start: its tag, the tag of its overwrite setting, and the
    template it is written from."""

    tag: str
    overwrite_tag: str
    template: Template

    @property
    def uuid(self) -> str:
        uuid = self.template.uuid
        if uuid is None:  # template_from_tree refuses a service template without one
            raise TemplateError(f"service template {self.template.name!r} has no uuid")
        return uuid


def overwrite_setting_path(tag: str) -> str:
    """The db key saying whether service VM ``tag`` is rewritten from its template at start."""
    return f"/xenmgr/overwrite-{tag}-settings"


def select_service_vms(templates: TemplateSet, *, ndvm_mode: str = DEFAULT_NDVM_MODE,
                       usbvm_enable: bool = DEFAULT_USBVM_ENABLE) -> list[ServiceVm]:
    """The service VMs this host runs, by tag. Broken service templates are skipped (they are
    in ``templates.problems``); two selected templates with one uuid are a TemplateError."""
    out: list[ServiceVm] = []
    owners: dict[str, str] = {}
    for name in sorted(templates.templates):
        if not name.startswith(SERVICE_PREFIX) or len(name) == len(SERVICE_PREFIX):
            continue
        tag = name[len(SERVICE_PREFIX):]
        if tag.startswith("ndvm-") and tag != f"ndvm-{ndvm_mode}":
            continue
        if tag == "usbvm" and not usbvm_enable:
            continue
        service = ServiceVm(tag, "ndvm" if tag.startswith("ndvm-") else tag,
                            templates.templates[name])
        other = owners.setdefault(service.uuid, name)
        if other != name:
            raise TemplateError(f"service templates {other!r} and {name!r} both carry uuid "
                                f"{service.uuid}")
        out.append(service)
    return out


@dataclass(frozen=True, slots=True)
class ServiceExport:
    """A service VM's subtree to inject at ``/vm/<uuid>`` at start."""

    tag: str
    uuid: str
    tree: TreeView = field(hash=False)


def plan_service_vm_exports(selected: Iterable[ServiceVm], *,
                            existing: Mapping[str, TreeView],
                            overwrite: Mapping[str, bool]) -> list[ServiceExport]:
    """Which service VMs to (re)write: those whose overwrite setting is true (missing means
    true) and those that do not exist yet. ``existing`` maps the uuids of the VMs in the db to
    their subtrees (only the service VMs' are looked at)."""
    out = []
    for service in selected:
        current = existing.get(service.uuid)
        if current is None or overwrite.get(service.overwrite_tag, True):
            out.append(ServiceExport(service.tag, service.uuid,
                                     export_tree(service.template.tree, service.uuid, current)))
    return out


def export_tree(tree: TreeView, uuid: str, existing: TreeView | None = None) -> TreeView:
    """``tree`` with ``uuid`` set and, for every disk it has, the ``sha1sum`` the VM already
    had kept (a measured VM keeps its recorded hashes across a template rewrite)."""
    out = with_leaf(tree, "uuid", uuid)
    disks = get_node(tree, "config/disk")
    old = None if existing is None else get_node(existing, "config/disk")
    if disks is None or old is None:
        return out
    for disk_id in disks:
        kept = get_leaf(old, f"{disk_id}/sha1sum")
        if kept is not None and get_node(disks, disk_id) is not None:
            out = with_leaf(out, f"config/disk/{disk_id}/sha1sum", kept)
    return out


@dataclass(frozen=True, slots=True)
class ChildParts:
    """A child template instantiated: the child VM's own subtree and the override for its
    parent (both with the placeholders substituted where the rules say)."""

    tree: TreeView = field(hash=False)
    parent_override: TreeView = field(hash=False)


def instantiate_child(template: Template, *, uuid: str, parent_uuid: str) -> ChildParts:
    """Split a ``child-<tag>`` template into the child's tree and the parent's override."""
    if not template.name.startswith(CHILD_PREFIX):
        raise TemplateError(f"template {template.name!r} is not a {CHILD_PREFIX}<tag> template")
    own = {k: v for k, v in template.tree.items() if k != PARENT_OVERRIDE}
    override = get_node(template.tree, PARENT_OVERRIDE) or EMPTY_TREE

    def substitute(text: str) -> str:
        return text.replace("${UUID}", uuid).replace("${PARENT_UUID}", parent_uuid)

    return ChildParts(MappingProxyType(own), map_strings(override, substitute))


def merge_json(tree: TreeView, text: str, *, source: str = "json") -> TreeView:
    """The ``..._and_json`` merge of a client's JSON object over ``tree``."""
    if not text.strip():
        return tree
    return deep_merge(tree, parse_tree(text, source=source, coerce_scalars=True))
