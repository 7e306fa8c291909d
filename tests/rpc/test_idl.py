"""Our interface files: they load, they carry the original names and signatures, they round-trip."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import rpc.idl as idl
from rpc.idl import (
    Access,
    Direction,
    IdlError,
    Interface,
    Method,
    load_file,
    load_package,
    package_interface,
    package_interfaces,
    parse_node,
    render_idl,
    render_introspection,
)

IDL_DIR = Path(idl.__file__).parent

EXPECTED_FILES = {
    "db": ("/", ["com.citrix.xenclient.db"]),
    "toolstack_db": ("/", ["org.openxt.toolstack.DbChanges"]),
    "toolstack_identity": ("/org/openxt/toolstack/identity",
                           ["org.openxt.toolstack.CallerIdentity"]),
    "xenmgr": (
        "/",
        [
            "com.citrix.xenclient.policy",
            "com.citrix.xenclient.xenmgr",
            "com.citrix.xenclient.xenmgr.config",
            "com.citrix.xenclient.xenmgr.config.ui",
            "com.citrix.xenclient.xenmgr.diag",
            "com.citrix.xenclient.xenmgr.guestreq",
            "com.citrix.xenclient.xenmgr.testing",
            "com.citrix.xenclient.xenmgr.unrestricted",
        ],
    ),
    "xenmgr_vm": (
        "/vm/uuid",
        [
            "com.citrix.xenclient.xenmgr.vm",
            "com.citrix.xenclient.xenmgr.vm.auth",
            "com.citrix.xenclient.xenmgr.vm.pci",
            "com.citrix.xenclient.xenmgr.vm.product",
            "com.citrix.xenclient.xenmgr.vm.unrestricted",
        ],
    ),
    "xenmgr_host": (
        "/host",
        [
            "com.citrix.xenclient.xenmgr.host",
            "com.citrix.xenclient.xenmgr.installer",
            "com.citrix.xenclient.xenmgr.powersettings",
        ],
    ),
    "vm_disk": ("/vm/uuid/disk/id", ["com.citrix.xenclient.vmdisk"]),
    "vm_nic": ("/vm/uuid/nic/id", ["com.citrix.xenclient.vmnic"]),
    "rpc_proxy": ("/", ["com.citrix.xenclient.rpc_proxy"]),
    "xenvm": ("/", ["xenvm.signal.notify"]),
}

# (methods, properties, readable-only properties, signals) per interface, from the fact sheet.
COUNTS = {
    "com.citrix.xenclient.db": (8, 0, 0, 0),
    "org.openxt.toolstack.CallerIdentity": (5, 0, 0, 0),
    "org.openxt.toolstack.DbChanges": (0, 0, 0, 1),
    "com.citrix.xenclient.policy": (2, 0, 0, 0),
    "com.citrix.xenclient.xenmgr": (14, 0, 0, 11),
    "com.citrix.xenclient.xenmgr.config": (0, 23, 5, 0),
    "com.citrix.xenclient.xenmgr.config.ui": (0, 20, 1, 0),
    "com.citrix.xenclient.xenmgr.diag": (7, 0, 0, 1),
    "com.citrix.xenclient.xenmgr.guestreq": (1, 0, 0, 1),
    "com.citrix.xenclient.xenmgr.testing": (2, 0, 0, 0),
    "com.citrix.xenclient.xenmgr.unrestricted": (3, 0, 0, 0),
    "com.citrix.xenclient.xenmgr.vm": (30, 145, 15, 0),
    "com.citrix.xenclient.xenmgr.vm.auth": (2, 0, 0, 0),
    "com.citrix.xenclient.xenmgr.vm.pci": (6, 0, 0, 0),
    "com.citrix.xenclient.xenmgr.vm.product": (4, 0, 0, 0),
    "com.citrix.xenclient.xenmgr.vm.unrestricted": (0, 148, 16, 0),
    "com.citrix.xenclient.xenmgr.host": (28, 28, 25, 4),
    "com.citrix.xenclient.xenmgr.installer": (3, 0, 0, 0),
    "com.citrix.xenclient.xenmgr.powersettings": (4, 0, 0, 0),
    "com.citrix.xenclient.vmdisk": (7, 14, 3, 0),
    "com.citrix.xenclient.vmnic": (1, 8, 1, 0),
    "com.citrix.xenclient.rpc_proxy": (6, 0, 0, 0),
    "xenvm.signal.notify": (0, 0, 0, 1),
}


def _method(iface: str, name: str) -> Method:
    method = package_interface(iface).method(name)
    assert method is not None, f"{iface}.{name} missing"
    return method


def _sig(method: Method) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return (
        [(a.name, a.type) for a in method.in_args],
        [(a.name, a.type) for a in method.out_args],
    )


def test_every_file_loads_in_strict_mode() -> None:
    files = sorted(p.stem for p in IDL_DIR.glob("*.xml"))
    assert files == sorted(EXPECTED_FILES)
    for stem in files:
        node = load_file(IDL_DIR / f"{stem}.xml")
        name, interfaces = EXPECTED_FILES[stem]
        assert node.name == name
        assert node.kind == stem
        assert [i.name for i in node.interfaces] == interfaces  # declared order kept


def test_package_loader_matches_file_loader_and_is_cached() -> None:
    nodes = load_package()
    assert list(nodes) == sorted(EXPECTED_FILES)
    assert load_package() is nodes
    assert nodes["db"] == load_file(IDL_DIR / "db.xml")
    with pytest.raises(TypeError):
        nodes["x"] = nodes["db"]  # type: ignore[index]


def test_member_counts_match_the_fact_sheet() -> None:
    interfaces = package_interfaces()
    assert set(interfaces) == set(COUNTS)
    for name, (methods, props, read_only, signals) in COUNTS.items():
        i = interfaces[name]
        got = (
            len(i.methods),
            len(i.properties),
            sum(1 for p in i.properties if p.access is Access.READ),
            len(i.signals),
        )
        assert got == (methods, props, read_only, signals), name
    with pytest.raises(KeyError, match=r"no interface 'nope\.nope'"):
        package_interface("nope.nope")


@pytest.mark.parametrize(
    ("iface", "method", "ins", "outs"),
    [
        ("com.citrix.xenclient.db", "read", [("path", "s")], [("value", "s")]),
        ("com.citrix.xenclient.db", "read_binary", [("path", "s")], [("value", "ay")]),
        ("com.citrix.xenclient.db", "write", [("path", "s"), ("value", "s")], []),
        ("com.citrix.xenclient.db", "exists", [("path", "s")], [("ex", "b")]),
        ("com.citrix.xenclient.xenmgr", "list_vms", [], [("paths", "ao")]),
        ("com.citrix.xenclient.xenmgr", "find_vm_by_domid", [("domid", "i")], [("obj_path", "o")]),
        (
            "com.citrix.xenclient.xenmgr",
            "create_vm_with_ui",
            [("template", "s"), ("name", "s"), ("description", "s"), ("image_path", "s")],
            [("path", "o")],
        ),
        ("com.citrix.xenclient.xenmgr.diag", "gather", [("name", "s"), ("data_", "s")], []),
        ("com.citrix.xenclient.xenmgr.vm", "list_disks", [], [("", "ao")]),
        ("com.citrix.xenclient.xenmgr.vm", "read_icon", [], [("bytes", "ay")]),
        (
            "com.citrix.xenclient.xenmgr.vm",
            "add_net_firewall_rule",
            [("id", "i"), ("direction", "s"), ("remoteip", "s"), ("extra", "s")],
            [],
        ),
        (
            "com.citrix.xenclient.xenmgr.host",
            "get_cd_device_assignment",
            [("devid", "s")],
            [("sticky", "b"), ("vm_uuid", "s")],
        ),
        ("com.citrix.xenclient.xenmgr.powersettings", "get_ac_lid_close_action", [], [("", "s")]),
        ("com.citrix.xenclient.vmdisk", "mount", [("dirpath", "s"), ("readonly", "b")], []),
        (
            "com.citrix.xenclient.rpc_proxy",
            "validate_call",
            [("domain", "i"), ("destination", "s"), ("interface", "s"), ("member", "s")],
            [("r", "b")],
        ),
    ],
)
def test_known_method_signatures(
    iface: str, method: str, ins: list[tuple[str, str]], outs: list[tuple[str, str]]
) -> None:
    assert _sig(_method(iface, method)) == (ins, outs)


def test_method_signature_strings() -> None:
    m = _method("com.citrix.xenclient.xenmgr.host", "assign_cd_device")
    assert (m.in_signature, m.out_signature) == ("sbs", "")
    assert _method("com.citrix.xenclient.xenmgr", "list_ui_templates").out_signature == "aa{ss}"


def test_dashed_and_underscored_property_names_are_kept() -> None:
    vm = package_interface("com.citrix.xenclient.xenmgr.vm")
    acpi = vm.property("acpi-state")
    assert acpi is not None and (acpi.type, acpi.access) == ("i", Access.READ)
    assert not acpi.writable and acpi.readable
    image = vm.property("image_path_vg")
    assert image is not None and image.access is Access.READWRITE and image.writable
    assert vm.property("acpi_state") is None
    unrestricted = package_interface("com.citrix.xenclient.xenmgr.vm.unrestricted")
    stub = unrestricted.property("stub_domid")
    assert stub is not None and stub.access is Access.READ
    assert vm.property("stub_domid") is None
    # every vm property is also on the unrestricted interface, identically
    for prop in vm.properties:
        assert unrestricted.property(prop.name) == prop
    disk = package_interface("com.citrix.xenclient.vmdisk").property("utilization-bytes")
    assert disk is not None and disk.type == "x"
    host = package_interface("com.citrix.xenclient.xenmgr.host").property("build-info")
    assert host is not None and host.type == "a{ss}"
    assert host.annotations[0].name == "org.qtproject.QtDBus.QtTypeName"


def test_signals() -> None:
    xenmgr = package_interface("com.citrix.xenclient.xenmgr")
    changed = xenmgr.signal("vm_state_changed")
    assert changed is not None
    assert [(a.name, a.type) for a in changed.args] == [
        ("uuid", "s"),
        ("obj_path", "o"),
        ("state", "s"),
        ("acpi_state", "i"),
    ]
    assert changed.signature == "sosi"
    assert all(a.direction is Direction.OUT for a in changed.args)
    notify = xenmgr.signal("notify")
    assert notify is not None and [a.name for a in notify.args] == ["uuid", "messsage"]
    assert [s.name for s in package_interface("com.citrix.xenclient.xenmgr.host").signals] == [
        "license_changed",
        "displayhandler_gpu_changed",
        "state_changed",
        "storage_space_low",
    ]
    xenvm = package_interface("xenvm.signal.notify").signal("notify")
    assert xenvm is not None and xenvm.signature == "sis"


def test_enums() -> None:
    xenmgr = load_package()["xenmgr"]
    enums = {e.name: e for e in xenmgr.enums}
    assert list(enums) == ["MANAGED_DISKTYPE", "S3_MODE", "S4_MODE", "VM_STATE"]
    assert enums["MANAGED_DISKTYPE"].as_dict()["NONE"] == ""
    assert list(enums["VM_STATE"].as_dict().values()) == [
        "creating", "running", "stopping", "stopped", "locked", "rebooting", "rebooted",
        "suspending", "suspended", "restoring", "paused",
    ]  # fmt: skip
    virt = load_package()["xenmgr_vm"].all_enums
    assert [(e.name, e.type, e.as_dict()) for e in virt] == [
        ("VIRT_TYPE", "s", {"PV": "pv", "PVH": "pvh", "HVM": "hvm"})
    ]


def test_method_names_have_no_dashes_and_xec_picks_first_interface() -> None:
    for iface in package_interfaces().values():
        names = [m.name for m in iface.methods] + [s.name for s in iface.signals]
        assert not [n for n in names if "-" in n]
    # xec resolves a method by the first interface declaring it: on a VM object `delete` is
    # com.citrix.xenclient.xenmgr.vm's
    node = load_package()["xenmgr_vm"]
    first = next(i for i in node.interfaces if i.method("delete") is not None)
    assert first.name == "com.citrix.xenclient.xenmgr.vm"


@pytest.mark.parametrize("stem", sorted(EXPECTED_FILES))
def test_round_trip_idl_dialect(stem: str) -> None:
    node = load_package()[stem]
    again = parse_node(render_idl(node), source="rendered", kind=stem)
    assert again == node


@pytest.mark.parametrize("stem", sorted(EXPECTED_FILES))
def test_round_trip_introspection(stem: str) -> None:
    node = load_package()[stem]
    xml = render_introspection(node.interfaces, path="/x", children=("a", "b"))
    again = parse_node(xml, strict=True)
    assert again.name == "/x"
    assert again.children == ("a", "b")
    strip = [_undocumented(i) for i in node.interfaces]
    assert list(again.interfaces) == strip
    ET.fromstring(xml.split("\n", 2)[2])  # plain ElementTree accepts it too


def _undocumented(iface: Interface) -> Interface:
    return iface._replace(
        doc="",
        enums=(),
        methods=tuple(m._replace(doc="") for m in iface.methods),
        signals=tuple(s._replace(doc="") for s in iface.signals),
        properties=tuple(p._replace(doc="") for p in iface.properties),
    )


def test_introspection_xml_shape() -> None:
    db = package_interface("com.citrix.xenclient.db")
    xml = render_introspection(
        [db], path="/", standard=["org.freedesktop.DBus.Introspectable",
                                  "org.freedesktop.DBus.Properties"]
    )  # fmt: skip
    assert xml.startswith('<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection')
    root = ET.fromstring(xml.split("\n", 2)[2])
    assert [i.get("name") for i in root.findall("interface")] == [
        "com.citrix.xenclient.db",
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.DBus.Properties",
    ]
    read = root.find("interface/method[@name='read']")
    assert read is not None
    assert [(a.get("name"), a.get("type"), a.get("direction")) for a in read] == [
        ("path", "s", "in"),
        ("value", "s", "out"),
    ]
    changed = root.find("interface/signal[@name='PropertiesChanged']")
    assert changed is not None and [a.get("type") for a in changed] == ["s", "a{sv}", "as"]
    assert '  <interface name="com.citrix.xenclient.db">\n    <method name="dump">\n' in xml


def test_introspection_properties_signals_unnamed_args_and_escaping() -> None:
    vm = package_interface("com.citrix.xenclient.xenmgr.vm")
    xml = render_introspection([vm])
    assert '<property name="acpi-state" type="i" access="read"/>' in xml
    assert '<arg type="ao" direction="out"/>' in xml  # list_disks: unnamed arg
    assert 'value="QList&lt;QMap&lt;QString,QString&gt;&gt;"' in xml
    xenmgr = package_interface("com.citrix.xenclient.xenmgr")
    xml = render_introspection([xenmgr])
    assert '<signal name="vm_created">\n      <arg name="uuid" type="s"/>' in xml
    assert "<node>" in xml
    with pytest.raises(KeyError):
        render_introspection([], standard=["org.example.Nope"])


def test_standard_interface_not_listed_twice() -> None:
    xml = render_introspection(
        [idl.PEER], standard=["org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Peer"]
    )
    assert xml.count('interface name="org.freedesktop.DBus.Peer"') == 1


# -- loader errors -------------------------------------------------------------------------------


def _doc(body: str) -> str:
    return f"<node>{body}</node>"


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<notnode/>", "root element is <notnode>"),
        ("<node><interface/></node>", "<interface> lacks the required 'name'"),
        (_doc('<interface name="a.b"><method name="m"><arg type="q!" /></method></interface>'),
         "a.b: method m: arg 1: invalid DBus signature 'q!'"),
        (_doc('<interface name="a.b"><method name="m"><arg name="x" type="ii"/></method>'
              "</interface>"), "method m: arg 1 (x): invalid DBus signature 'ii'"),
        (_doc('<interface name="a.b"><property name="p" type="s"/></interface>'),
         "property p: <property> lacks the required 'access'"),
        (_doc('<interface name="a.b"><property name="p" type="s" access="rw"/></interface>'),
         "property p: access must be"),
        (_doc('<interface name="a.b"><property name="p" type="" access="read"/></interface>'),
         "property p: invalid DBus signature ''"),
        (_doc('<interface name="a.b"><method name="m"><arg type="s" direction="sideways"/>'
              "</method></interface>"), "direction must be 'in' or 'out'"),
        (_doc('<interface name="a.b"><signal name="s"><arg type="s" direction="in"/>'
              "</signal></interface>"), "signal s: arg 1: a signal arg cannot be 'in'"),
        (_doc('<interface name="nodots"/>'), "invalid interface name 'nodots'"),
        (_doc('<interface name="a.b"><method name="list-vms"/></interface>'),
         "invalid method name 'list-vms'"),
        (_doc('<interface name="a.b"><property name="-x" type="s" access="read"/></interface>'),
         "invalid property name '-x'"),
        (_doc('<interface name="a.b"><method name="m"/><method name="m"/></interface>'),
         "duplicate method 'm'"),
        (_doc('<interface name="a.b"/><interface name="a.b"/>'), "duplicate interface 'a.b'"),
        (_doc('<interface name="a.b"><frobnicate/></interface>'),
         "unexpected element <frobnicate>"),
        (_doc('<interface name="a.b" colour="red"/>'), "unknown attribute 'colour'"),
        ('<node xmlns:tp="http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0">'
         '<tp:enum name="E" type="as"/></node>', "enum E: enum type must be one basic type"),
        ('<node xmlns:tp="http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0">'
         '<tp:enum name="E" type="u"><tp:enumvalue suffix="A" value="-1"/></tp:enum></node>',
         "enum E: value A: '-1' is not a valid 'u' value"),
        ('<node xmlns:tp="http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0">'
         '<tp:enum name="E" type="s"><tp:enumvalue suffix="A"/></tp:enum></node>',
         "lacks the required 'value'"),
        ("<node><interface name='a.b'>", "malformed XML"),
        ('<!DOCTYPE node [<!ENTITY a "aaaa">]><node/>', "entity declarations are not accepted"),
    ],
)  # fmt: skip
def test_loader_errors_name_the_place(xml: str, message: str) -> None:
    with pytest.raises(IdlError) as info:
        parse_node(xml, source="t.xml")
    assert str(info.value).startswith("t.xml: ")
    assert message in str(info.value)


def test_non_strict_mode_tolerates_foreign_introspection() -> None:
    xml = _doc(
        '<interface name="weird"><method name="list-vms" extra="1"><arg type="s"/></method>'
        '<method name="list-vms"/><gadget/></interface><node/>'
    )
    node = parse_node(xml, strict=False)
    iface = node.interfaces[0]
    assert iface.name == "weird"
    assert [m.name for m in iface.methods] == ["list-vms"]
    assert iface.methods[0].args[0].direction is Direction.IN
    with pytest.raises(IdlError, match="invalid DBus signature"):
        parse_node(_doc('<interface name="x"><property name="p" type="a" access="read"/>'
                        "</interface>"), strict=False)  # fmt: skip


def test_documentation_from_comment_or_docstring() -> None:
    xml = (
        '<node xmlns:tp="http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0">'
        '<interface name="a.b"><!--\n    first line\n      second\n  -->'
        '<method name="m"><tp:docstring>Does <b>m</b>.</tp:docstring><!-- ignored --></method>'
        "</interface></node>"
    )
    iface = parse_node(xml).interfaces[0]
    assert iface.doc == "first line\n  second"
    assert iface.methods[0].doc == "Does m."


def test_size_bound_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(IdlError, match="more than"):
        parse_node(b"<node>" + b" " * idl.MAX_XML_BYTES + b"</node>")
    with pytest.raises(IdlError, match="cannot read"):
        load_file(tmp_path / "missing.xml")


def test_load_directory(tmp_path: Path) -> None:
    (tmp_path / "b.xml").write_text(_doc('<interface name="b.b"/>'))
    (tmp_path / "a.xml").write_text(_doc('<interface name="a.a"/>'))
    (tmp_path / "notes.txt").write_text("not xml")
    nodes = idl.load_directory(tmp_path)
    assert list(nodes) == ["a", "b"]
    assert nodes["a"].kind == "a"
    assert nodes["a"].interfaces[0].name == "a.a"


def test_all_exports_resolve() -> None:
    for name in idl.__all__:
        assert getattr(idl, name) is not None
