"""docs/xenmgr-coverage.md, generated from the interface files and the service's handlers.

``python -m xen.xenmgr.coverage`` prints the page; ``--write`` writes it to
``docs/xenmgr-coverage.md`` (a test checks the committed page is up to date). Every member of
every xenmgr interface is listed, object by object, in the interface files' order:

* a method is *real* when the service has a handler for it, else *not implemented* (the bus
  answers ``NotSupported`` "not implemented: <interface>.<member>") with the reason;
* a property is *real* with where its value comes from (a database key, a rule, what the
  service computes, a constant);
* a signal is *sent* (and when) or *never sent*, with the reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rpc.idl import load_package
from xen.xenmgr._binding import Binding, Computed, Derived, Fixed, Stored, Unsupported
from xen.xenmgr._properties import BINDINGS

__all__ = ["render"]

OBJECTS = (("/", "xenmgr", "RootObject"), ("/host", "xenmgr_host", "HostObject"),
           ("/vm/<uuid_>", "xenmgr_vm", "VmObject"),
           ("/vm/<uuid_>/disk/<id>", "vm_disk", "DiskObject"),
           ("/vm/<uuid_>/nic/<id>", "vm_nic", "NicObject"))

SENT = {
    "notify": "every monitor notification: `vm:state:<internal>` (and `error:crashed`)",
    "vm_state_changed": "every state change of a VM, in order, with the public state",
    "vm_config_changed": "a setter wrote a VM's settings (0.5 s after the last change)",
    "vm_created": "a create call finished (after `run-post-create`)",
    "vm_deleted": "a VM was deleted",
    "vm_name_changed": "`name` was set to a new value",
    "vm_transfer_changed": "`download-progress` was set",
    "config_changed": "a host-wide setting was set",
    "language_changed": "`language` was set (it cannot be yet: never in practice)",
}

#: Why a group of members is not implemented yet (by interface, then by member).
WHY = {
    "com.citrix.xenclient.policy": "policy documents are not stored yet",
    "com.citrix.xenclient.xenmgr.diag": "status reports and their upload need the diagnostic "
                                        "tools of a dom0",
    "com.citrix.xenclient.xenmgr.testing": "the UI test queue is not built yet",
    "com.citrix.xenclient.xenmgr.guestreq": "guest requests need the guest agents' bus",
    "com.citrix.xenclient.xenmgr.host": "host power, CD, GPU, sound and PCI inventory need "
                                        "a dom0's devices and daemons",
    "com.citrix.xenclient.xenmgr.installer": "the installer's state is not kept yet",
    "com.citrix.xenclient.xenmgr.powersettings": "power settings need xcpmd",
    "com.citrix.xenclient.xenmgr.vm.auth": "authentication needs the input daemon",
    "com.citrix.xenclient.xenmgr.vm.pci": "PCI passthrough rules are not edited here yet",
    "com.citrix.xenclient.xenmgr.vm.product": "OVF product properties are not kept yet",
    "com.citrix.xenclient.vmdisk": "disk encryption and mounting need vhd-util and tapdisk",
    "com.citrix.xenclient.vmnic": "",
}
WHY_MEMBER = {
    "list_extension_packs": "extension packs are not supported",
    "add_argo_firewall_rule": "Argo firewall rules are not applied yet (no viptables)",
    "delete_argo_firewall_rule": "Argo firewall rules are not applied yet (no viptables)",
    "list_argo_firewall_rules": "Argo firewall rules are not applied yet (no viptables)",
    "add_net_firewall_rule": "network firewall rules need the network daemon",
    "delete_net_firewall_rule": "network firewall rules need the network daemon",
    "list_net_firewall_rules": "network firewall rules need the network daemon",
    "create_child_service_vm": "no child service VM template is shipped yet",
    "resume_from_file": "restoring from an arbitrary file is not offered yet",
    "suspend_to_file": "saving to an arbitrary file is not offered yet",
    "start_internal": "the original's internal start is the same as start here",
    "switch": "switching the display needs the input daemon",
}


def _handled(class_name: str) -> set[tuple[str, str]]:
    import xen.xenmgr._root as root
    import xen.xenmgr._vm_object as vm_object
    klass = getattr(root, class_name, None) or getattr(vm_object, class_name)
    found: set[tuple[str, str]] = set()
    for base in klass.__mro__:
        for attr in vars(base).values():
            for kind, iface, member in getattr(attr, "_dbus", ()):
                if kind == "method":
                    found.add((iface, member))
    return found


def _source(b: Binding) -> str:
    s = b.source
    if isinstance(s, Stored):
        return f"db `{s.key}`"
    if isinstance(s, Derived):
        return f"derived: {s.doc}"
    if isinstance(s, Computed):
        return f"computed: {s.needs}"
    if isinstance(s, Fixed):
        return f"fixed: `{s.value!r}`"
    if isinstance(s, Unsupported):
        return f"unsupported: {s.reason}"
    return "?"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The page (see the module docstring)."""
    nodes = load_package()
    out = ["# xenmgr: what is implemented", "",
           "Generated by `python -m xen.xenmgr.coverage --write` from the interface files "
           "(`rpc/idl/`) and the service's handlers; do not edit. Not implemented methods "
           "answer `org.freedesktop.DBus.Error.NotSupported` \"not implemented: "
           "<interface>.<member>\". Computed properties whose source this host does not have "
           "answer fixed values (docs/xenmgr.md, \"Properties\").", ""]
    totals = {"real": 0, "missing": 0}
    for path, stem, class_name in OBJECTS:
        handled = _handled(class_name)
        out += [f"## `{path}`", ""]
        for iface in nodes[stem].interfaces:
            out += [f"### `{iface.name}`", "", "| member | kind | status |", "|---|---|---|"]
            for method in iface.methods:
                if (iface.name, method.name) in handled:
                    status = "real"
                    totals["real"] += 1
                else:
                    why = WHY_MEMBER.get(method.name) or WHY.get(iface.name) or "not built yet"
                    status = f"not implemented: {why}"
                    totals["missing"] += 1
                out.append(f"| `{method.name}` | method | {_cell(status)} |")
            for prop in iface.properties:
                b = BINDINGS.get((iface.name, prop.name))
                status = ("real (" + ("read/write" if prop.writable else "read-only") +
                          f"): {_source(b)}") if b is not None else "no binding"
                out.append(f"| `{prop.name}` | property | {_cell(status)} |")
            for sig in iface.signals:
                status = (f"sent: {SENT[sig.name]}" if sig.name in SENT and path == "/"
                          else "never sent: nothing here causes it yet")
                out.append(f"| `{sig.name}` | signal | {_cell(status)} |")
            out.append("")
    out += [f"Methods: {totals['real']} real, {totals['missing']} not implemented.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the page, or write it with ``--write``."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args == ["--write"]:
        target = Path(__file__).resolve().parents[2] / "docs" / "xenmgr-coverage.md"
        target.write_text(text)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
