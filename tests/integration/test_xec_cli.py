"""xec and xec-vm as subprocesses (the installed console scripts) against services on a real
dbus-daemon: the EchoService with an extra object of scalar methods, and a fake xenmgr
exporting the interfaces of rpc/idl. Output is compared byte for byte with the formats of
openxt-manager.md §1.4-§1.6; error paths check stream, text and exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import actors
from rpc.dbus import BusService, Call, dbus_getter, dbus_method, start_bus
from rpc.idl import package_interface, parse_node
from tests.integration.dbus_test_service import EchoService

pytestmark = pytest.mark.integration

SERVICE = "org.test.XecService"
OBJECT = "/org/test/Object"
SCALARS = "/org/test/Scalars"
SCALARS_XML = b"""<node><interface name="org.test.Scalars">
  <method name="echo_scalars">
    <arg name="y" type="y"/><arg name="b" type="b"/><arg name="n" type="n"/>
    <arg name="q" type="q"/><arg name="i" type="i"/><arg name="u" type="u"/>
    <arg name="x" type="x"/><arg name="t" type="t"/><arg name="d" type="d"/>
    <arg name="s" type="s"/><arg name="o" type="o"/>
    <arg type="y" direction="out"/><arg type="b" direction="out"/><arg type="n" direction="out"/>
    <arg type="q" direction="out"/><arg type="i" direction="out"/><arg type="u" direction="out"/>
    <arg type="x" direction="out"/><arg type="t" direction="out"/><arg type="d" direction="out"/>
    <arg type="s" direction="out"/><arg type="o" direction="out"/>
  </method>
  <method name="echo_bytes"><arg name="data" type="ay"/><arg type="ay" direction="out"/></method>
  <method name="variants"><arg name="map" type="a{sv}" direction="out"/></method>
  <method name="signature"><arg type="g" direction="out"/></method>
  <property name="scalar-prop" type="d" access="read"/>
</interface></node>"""
SCALARS_INTERFACES = list(parse_node(SCALARS_XML, source="scalars").interfaces)


class Scalars:
    """Methods returning values of every basic type (EchoService's echo_basic takes a ``g``,
    which xec cannot write)."""

    @dbus_method("org.test.Scalars", "echo_scalars")
    def echo_scalars(self, _call: Call, *values: Any) -> tuple[Any, ...]:
        return values

    @dbus_method("org.test.Scalars", "echo_bytes")
    def echo_bytes(self, _call: Call, data: bytes) -> bytes:
        return data

    @dbus_method("org.test.Scalars", "variants")
    def variants(self, _call: Call) -> dict[str, tuple[str, Any]]:
        return {"n": ("i", 3), "s": ("s", "t"), "l": ("as", ["x", "y"]), "b": ("b", False)}

    @dbus_method("org.test.Scalars", "signature")
    def signature(self, _call: Call) -> str:
        return "sai"

    @dbus_getter("org.test.Scalars", "scalar-prop")
    def scalar_prop(self, _call: Call) -> float:
        return 0.001


class XecEcho(EchoService):
    """The EchoService under its own name, plus the scalars object."""

    bus_names = (SERVICE,)

    def setup(self) -> None:
        super().setup()
        self.export(SCALARS, SCALARS_INTERFACES, Scalars())


# -- a fake xenmgr: list_vms at /, VM objects with disks and nics ---------------------------------

XENMGR = "com.citrix.xenclient.xenmgr"
VM = "com.citrix.xenclient.xenmgr.vm"
DISK = "com.citrix.xenclient.vmdisk"
NIC = "com.citrix.xenclient.vmnic"


class FakeVm(NamedTuple):
    uuid: str
    name: str
    domid: int
    state: str

    @property
    def path(self) -> str:
        return "/vm/" + self.uuid.replace("-", "_")


# In list_vms order: the table sorts them by domid, stopped ones last in this order.
VMS = [
    FakeVm("00000000-0000-0000-0000-00000000000c", "stopped-one", -1, "stopped"),
    FakeVm("00000000-0000-0000-0000-00000000000a", "uivm", 1, "running"),
    FakeVm("00000000-0000-0000-0000-00000000000d", "a-very-long-vm-name-indeed", -1, "stopped"),
    FakeVm("00000000-0000-0000-0000-00000000000e", "Network", 12, "running"),
    FakeVm("00000000-0000-0000-0000-00000000000b", "syncvm", 3, "paused"),
]
UIVM = VMS[1]


class VmObject:
    def __init__(self, vm: FakeVm) -> None:
        self.vm = vm

    @dbus_getter(VM, "name")
    def name(self, _call: Call) -> str:
        return self.vm.name

    @dbus_getter(VM, "uuid")
    def uuid(self, _call: Call) -> str:
        return self.vm.uuid

    @dbus_getter(VM, "domid")
    def domid(self, _call: Call) -> int:
        return self.vm.domid

    @dbus_getter(VM, "state")
    def state(self, _call: Call) -> str:
        return self.vm.state

    @dbus_method(VM, "list_disks")
    def list_disks(self, _call: Call) -> list[str]:
        return [self.vm.path + "/disk/0"]

    @dbus_method(VM, "list_nics")
    def list_nics(self, _call: Call) -> list[str]:
        return [self.vm.path + "/nic/0"]


class DiskObject:
    @dbus_getter(DISK, "devtype")
    def devtype(self, _call: Call) -> str:
        return "disk"


class NicObject:
    @dbus_getter(NIC, "mac")
    def mac(self, _call: Call) -> str:
        return "00:16:3e:00:00:01"


class FakeXenmgr(BusService):
    bus_names = (XENMGR,)

    def setup(self) -> None:
        self.export("/", [package_interface(XENMGR)])
        for vm in VMS:
            self.export(vm.path, [package_interface(VM)], VmObject(vm))
            self.export(vm.path + "/disk/0", [package_interface(DISK)], DiskObject())
            self.export(vm.path + "/nic/0", [package_interface(NIC)], NicObject())

    @dbus_method(XENMGR, "list_vms")
    def list_vms(self, _call: Call) -> list[str]:
        return [vm.path for vm in VMS]


def _serve(service: type[BusService], address: str) -> Iterator[None]:
    ref = service.start(address)
    actor = actors.actor_of(ref)
    assert actor.wait_started(5), actor.exit_reason
    yield
    ref.stop(block=True, timeout=5)


@pytest.fixture
def echo(bus_address: str) -> Iterator[None]:
    yield from _serve(XecEcho, bus_address)


@pytest.fixture
def xenmgr(bus_address: str) -> Iterator[None]:
    yield from _serve(FakeXenmgr, bus_address)


# -- running the console scripts -----------------------------------------------------------------


class Run(NamedTuple):
    out: str
    err: str
    rc: int


def _script(name: str) -> list[str]:
    script = Path(sys.executable).parent / name  # the console script, else python -m
    module = {"xec": "rpc.xec._cli", "xec-vm": "rpc.xec._vmcli"}[name]
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


def run(tool: str, *args: str, address: str) -> Run:
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
    done = subprocess.run([*_script(tool), *args], capture_output=True, env=env, timeout=20)
    return Run(done.stdout.decode("utf-8", "surrogateescape"),
               done.stderr.decode("utf-8", "surrogateescape"), done.returncode)


@pytest.fixture
def xec(bus_address: str, echo: None) -> Any:
    def call(*args: str, obj: str = OBJECT) -> Run:
        return run("xec", "-q", "-s", SERVICE, "-o", obj, *args, address=bus_address)
    return call


def ok(result: Run) -> str:
    assert (result.rc, result.err) == (0, ""), result
    return result.out


def local_error(result: Run) -> str:
    assert result.rc == 1 and result.out == "", result
    return result.err


def bus_error(result: Run) -> str:
    assert result.rc == 1 and result.err == "", result
    return result.out


# -- xec: values ---------------------------------------------------------------------------------


def test_scalars(xec: Any) -> None:
    out = ok(xec("echo-scalars", "255", "true", "-3", "65535", "-5", "-1", "-9",
                 "18446744073709551615", "1.5", "a b 'c'", "/a/b", obj=SCALARS))
    assert out == "255\ntrue\n-3\n65535\n-5\n4294967295\n-9\n18446744073709551615\n1.5\n" \
                  "a b 'c'\n/a/b\n"
    out = ok(xec("echo_scalars", "0", "0", "0", "0", "0", "0", "0", "0", "0.01", "", "/",
                 obj=SCALARS))
    assert out == "0\nfalse\n0\n0\n0\n0\n0\n0\n1.0e-2\n\n/\n"


@pytest.mark.parametrize(("given", "shown"), [("1", "1.0"), ("12345678", "1.2345678e7"),
                                              ("-0.5", "-0.5"), ("1234567.5", "1234567.5")])
def test_doubles_print_as_haskell_shows_them(xec: Any, given: str, shown: str) -> None:
    out = ok(xec("echo-scalars", "0", "1", "0", "0", "0", "0", "0", "0", given, "s", "/",
                 obj=SCALARS))
    assert out.split("\n")[8] == shown


def test_arrays_dicts_structs_and_bytes(xec: Any) -> None:
    out = ok(xec("echo-containers", '["a", \'b c\']', '{"k": "v", "key2": "w"}', "{}",
                 '[1, "two", false]', "[[1, 2], [], [3]]", "[0, 255, 65]"))
    assert out == ('a\nb c\n'
                   '{\n'
                   '  "k"                            = v\n'
                   '  "key2"                         = w\n'
                   '}\n'
                   '{\n}\n'
                   '1\ntwo\nfalse\n'
                   '1\n2\n\n3\n'  # nesting flattens; the empty inner array is an empty line
                   '"\\NUL\\255A"\n')
    out = ok(xec("echo-containers", "[]", "{}", "{}", "[0, '', true]", "[]", "[]"))
    assert out == "\n{\n}\n{\n}\n0\n\ntrue\n\n\"\"\n"


def test_byte_arrays_variants_and_signatures(xec: Any) -> None:
    assert ok(xec("echo-bytes", "[9, 10, 34, 92, 200, 49]", obj=SCALARS)) == \
        '"\\t\\n\\"\\\\\\200\\&1"\n'
    assert ok(xec("variants", obj=SCALARS)) == (
        '{\n'
        '  "n"                            = 3\n'
        '  "s"                            = t\n'
        '  "l"                            = x\ny\n'
        '  "b"                            = false\n'
        '}\n')
    assert ok(xec("signature", obj=SCALARS)) == "[SigString,SigArray SigInt32]\n"


def test_method_names_strings_and_interfaces(xec: Any) -> None:
    assert ok(xec("echo-s", "")) == "\n"
    assert ok(xec("echo_s", 'x "y" \\z')) == 'x "y" \\z\n'
    assert ok(xec("echo-s", "héllo")) == "héllo\n"
    assert ok(xec("-i", "org.test.Second", "echo-s", "a")) == "second:a\n"
    assert ok(xec("only-here")) == "2\n"
    assert ok(xec("divmod", "17", "5")) == "3\n2\n"
    assert ok(xec("nothing")) == ""


# -- xec: properties -----------------------------------------------------------------------------


def test_get_and_set_properties(xec: Any) -> None:
    assert ok(xec("get", "read-only-prop")) == "fixed\n"
    assert ok(xec("-g", "read-only-prop")) == "fixed\n"
    assert ok(xec("-i", "org.test.Iface", "get", "plain_name")) == "a\n"
    assert ok(xec("set", "read-write-prop", "42")) == ""
    assert ok(xec("get", "read-write-prop")) == "42\n"
    assert ok(xec("-x", "plain_name", '["p", "q"]')) == ""
    assert ok(xec("-i", "org.test.Iface", "get", "plain_name")) == "p\nq\n"
    assert ok(xec("-i", "org.test.Iface", "set", "read-write-prop", "-7")) == ""
    assert ok(xec("-g", "read-write-prop")) == "-7\n"
    assert ok(xec("get", "scalar-prop", obj=SCALARS)) == "1.0e-3\n"


def test_property_errors(xec: Any) -> None:
    assert bus_error(xec("set", "read-only-prop", "x")) == \
        "org.freedesktop.DBus.Error.PropertyReadOnly: property read-only-prop is read-only\n"
    assert bus_error(xec("get", "not-implemented")) == \
        "org.freedesktop.DBus.Error.NotSupported: not implemented: " \
        "org.test.Iface.not-implemented\n"
    assert bus_error(xec("-i", "org.test.Iface", "get", "nope")).startswith(
        "org.freedesktop.DBus.Error.UnknownProperty: ")
    assert local_error(xec("get", "nope")) == \
        "xec: property nope not found in any of the interfaces\n"
    assert local_error(xec("set", "nope", "1")) == \
        "xec: property nope not found in any of the interfaces\n"
    assert local_error(xec("-i", "org.test.Second", "set", "read-write-prop", "1")) == \
        "xec: property org.test.Second.read-write-prop not found\n"
    assert local_error(xec("-i", "org.test.Nope", "set", "read-write-prop", "1")) == \
        "xec: interface org.test.Nope not found\n"
    assert local_error(xec("set", "read-write-prop", "12abc")).startswith(
        "xec: error parsing argument 1: ")


def test_getall(xec: Any) -> None:
    ok(xec("set", "read-write-prop", "7"))
    ok(xec("set", "plain_name", '["a"]'))
    block = ('org.test.Iface\n'
             '{\n'
             '  "read-only-prop"                    = fixed\n'
             '  "read-write-prop"                   = 7\n'
             '  "plain_name"                        = a\n'
             '}\n')
    assert ok(xec("getall")) == block  # Second has no properties, standard ones answer {}
    assert ok(xec("-i", "org.test.Iface", "getall")) == block
    assert ok(xec("-i", "org.test.Second", "getall")) == ""
    assert ok(xec("getall", obj=SCALARS)) == ('org.test.Scalars\n{\n'
                                              '  "scalar-prop"                       = 1.0e-3\n'
                                              '}\n')
    assert bus_error(xec("-i", "org.test.Nope", "getall")) == \
        f"org.freedesktop.DBus.Error.UnknownInterface: {OBJECT} has no interface org.test.Nope\n"


# -- xec: introspection --------------------------------------------------------------------------

def test_introspection_listing(xec: Any) -> None:
    out = ok(xec(obj=SCALARS))
    head = """\
/------- org.test.Scalars
|     -  scalar-prop                  read:d
|     +  echo-scalars                 ( y:y, b:b, n:n, q:q, i:i, u:u, x:x, t:t, d:d, s:s, o:o, \
OUT :y, OUT :b, OUT :n, OUT :q, OUT :i, OUT :u, OUT :x, OUT :t, OUT :d, OUT :s, OUT :o )
|     +  echo-bytes                   ( data:ay, OUT :ay )
|     +  variants                     ( OUT map:a{sv} )
|     +  signature                    ( OUT :g )

/------- org.freedesktop.DBus.Introspectable
|     +  Introspect                   ( OUT xml_data:s )

"""
    assert out.startswith(head)
    assert out.endswith(" )\n\n")
    blocks = out[:-2].split("\n\n")
    assert [b.split("\n")[0] for b in blocks] == [
        "/------- org.test.Scalars", "/------- org.freedesktop.DBus.Introspectable",
        "/------- org.freedesktop.DBus.Properties", "/------- org.freedesktop.DBus.Peer"]
    assert "|     +  GetAll                       ( interface_name:s, OUT props:a{sv} )" in out


def test_list_options(xec: Any) -> None:
    interfaces = ("org.test.Iface\norg.test.Second\norg.freedesktop.DBus.Introspectable\n"
                  "org.freedesktop.DBus.Properties\norg.freedesktop.DBus.Peer\n")
    assert ok(xec("--list-interfaces")) == interfaces
    assert ok(xec("-i", "org.test.Second", "--list-methods")) == "echo-s\nonly-here\n"
    assert ok(xec("--list-methods", "-i", "org.test.Second")) == "echo-s\nonly-here\n"
    every = ok(xec("--list-methods"))
    assert every.startswith("echo-s\necho-basic\necho-containers\ndivmod\n")
    assert every.endswith("echo-s\nonly-here\nIntrospect\nGet\nGetAll\nSet\nPing\n"
                          "GetMachineId\n")
    assert ok(xec("-i", "org.test.Nope", "--list-methods")) == every
    assert ok(xec("-i", "org.test.Iface", "--list-properties")) == \
        "read-only-prop\nread-write-prop\nplain_name\nnot-implemented\n"
    assert ok(xec("-i", "org.test.Second", "--list-properties")) == ""
    # precedence: --list-interfaces before the others, before a method
    assert ok(xec("--list-properties", "--list-interfaces", "divmod", "1", "2")) == interfaces


# -- xec: errors ---------------------------------------------------------------------------------


def test_method_errors(xec: Any) -> None:
    assert local_error(xec("nosuch")) == "xec: method nosuch not found in any of the interfaces\n"
    assert local_error(xec("-i", "org.test.Nope", "divmod", "1", "2")) == \
        "xec: interface org.test.Nope not found\n"
    assert local_error(xec("-i", "org.test.Second", "divmod", "1", "2")) == \
        "xec: method org.test.Second.divmod not found\n"
    assert local_error(xec("divmod", "1")) == \
        "xec: method divmod expects 2 args, but 1 were given\n"
    assert local_error(xec("nothing", "x")) == \
        "xec: method nothing expects 0 args, but 1 were given\n"
    assert local_error(xec("divmod", "1", "x")).startswith("xec: error parsing argument 2: ")
    assert local_error(xec("divmod", "12abc", "1")).startswith("xec: error parsing argument 1: ")
    assert local_error(xec("divmod", "1", "2147483648")).startswith(
        "xec: error parsing argument 2: ")
    assert local_error(xec("echo-containers", "[]", "{}", "{'a': 1}", "[1, '', true]", "[]",
                           "[]")).startswith("xec: error parsing argument 3: ")


def test_dbus_errors_go_to_stdout(xec: Any) -> None:
    assert bus_error(xec("fail-plain", "it broke")) == \
        "org.freedesktop.DBus.Error.Failed: it broke\n"
    assert bus_error(xec("fail_named", "why")) == "org.test.Error.Custom: why\n"
    assert bus_error(xec("unimplemented")) == \
        "org.freedesktop.DBus.Error.NotSupported: not implemented: org.test.Iface.unimplemented\n"
    assert bus_error(xec("divmod", obj="/org/test/Nowhere")) == \
        "org.freedesktop.DBus.Error.UnknownObject: no object at /org/test/Nowhere\n"


def test_local_failures(bus_address: str, tmp_path: Path) -> None:
    assert local_error(run("xec", "-q", "-t", "3", "list-vms", address=bus_address)) == \
        "xec: not implemented: -t (Argo transport)\n"
    assert local_error(run("xec", "-q", "-t", "5x", "list-vms", address=bus_address)) == \
        "xec: invalid target domid '5x': expected an integer\n"
    assert local_error(run("xec", "-q", "-s", address=bus_address)) == \
        "xec: option -s (-s/--service) requires an argument\n"
    assert local_error(run("xec", "-q", "-o", "no/path", "x", address=bus_address)) == \
        "xec: invalid object path 'no/path'\n"
    assert bus_error(run("xec", "-q", "-s", "org.test.Nobody", "x", address=bus_address)) \
        .startswith("org.freedesktop.DBus.Error.ServiceUnknown: ")
    missing = f"unix:path={tmp_path}/no-bus"
    assert local_error(run("xec", "-q", "list-vms", address=missing)).startswith(
        f"xec: cannot connect to the bus at {missing}: ")


def test_help_needs_no_bus_and_syslog_never_fails(tmp_path: Path) -> None:
    missing = f"unix:path={tmp_path}/no-bus"
    for tool, usage in (("xec", "Usage: xec "), ("xec-vm", "Usage: xec-vm ")):
        for args in (["-h"], ["-q", "--help"], ["-h", "-n", "x"]):
            result = run(tool, *args, address=missing)
            assert result.rc == 0 and result.err == "" and result.out.startswith(usage), result


def test_invocation_is_logged_to_syslog_unless_q(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import syslog

    from rpc.xec._cli import main
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *a: calls.append(("openlog", *a)))
    monkeypatch.setattr(syslog, "syslog", lambda *a: calls.append(("syslog", *a)))
    monkeypatch.setattr(syslog, "closelog", lambda: None)
    assert main(["-h", "extra", "words"]) == 0
    assert calls == [("openlog", "xec", 0, syslog.LOG_USER),
                     ("syslog", syslog.LOG_INFO, "invoked with: -h extra words")]
    calls.clear()
    assert main(["-q", "-h"]) == 0
    assert calls == []

    def broken(*_a: Any) -> None:
        raise OSError("no syslog here")
    monkeypatch.setattr(syslog, "syslog", broken)
    assert main(["-h"]) == 0
    assert capsys.readouterr().out.startswith("Usage: xec ")


# -- xec-vm --------------------------------------------------------------------------------------


@pytest.fixture
def xec_vm(bus_address: str, xenmgr: None) -> Any:
    def call(*args: str) -> Run:
        return run("xec-vm", *args, address=bus_address)
    return call


def test_vm_table(xec_vm: Any) -> None:
    assert ok(xec_vm()) == (
        " ID  | Name               | UUID                                 | State     \n"
        "-----+--------------------+--------------------------------------+--------\n"
        "   1 | uivm               | 00000000-0000-0000-0000-00000000000a | running   \n"
        "   3 | syncvm             | 00000000-0000-0000-0000-00000000000b | paused    \n"
        "  12 | Network            | 00000000-0000-0000-0000-00000000000e | running   \n"
        "     | stopped-one        | 00000000-0000-0000-0000-00000000000c | stopped   \n"
        "     | a-very-long-vm-name-indeed | 00000000-0000-0000-0000-00000000000d | stopped   \n")
    assert ok(xec_vm("-q", "getall")) == ok(xec_vm())  # no VM selected: the table


@pytest.mark.parametrize("selector", [["-n", "uivm"], ["--name", "uivm"],
                                      ["-u", UIVM.uuid], ["-d", "1"], ["--domid", "1"],
                                      ["-o", UIVM.path], ["--path", UIVM.path]])
def test_vm_selection(xec_vm: Any, selector: list[str]) -> None:
    assert ok(xec_vm(*selector, "-q", "-g", "name")) == "uivm\n"


def test_vm_selection_precedence_and_not_found(xec_vm: Any) -> None:
    assert ok(xec_vm("-q", "-d", "3", "-n", "Network", "get", "uuid")) == \
        "00000000-0000-0000-0000-00000000000e\n"  # name before domid
    assert ok(xec_vm("-q", "-n", "Network", "-o", UIVM.path, "get", "name")) == "uivm\n"
    assert local_error(xec_vm("-n", "nobody", "get", "name")) == "xec-vm: vm 'nobody' not found\n"
    assert local_error(xec_vm("-d", "01", "get", "name")) == "xec-vm: vm '01' not found\n"
    # the value is compared as xec prints it: -1 is the first stopped VM
    assert ok(xec_vm("-q", "-d", "-1", "get", "name")) == "stopped-one\n"


def test_disks_nics_and_forwarding(xec_vm: Any) -> None:
    assert ok(xec_vm("-n", "uivm", "--list-disks")) == UIVM.path + "/disk/0\n"
    assert ok(xec_vm("-n", "uivm", "--list-nics")) == UIVM.path + "/nic/0\n"
    assert ok(xec_vm("-q", "-n", "uivm", "-k", "0", "get", "devtype")) == "disk\n"
    assert ok(xec_vm("-q", "-c", "0", "-n", "uivm", "-g", "mac")) == "00:16:3e:00:00:01\n"
    listing = ok(xec_vm("-q", "-n", "uivm", "-k", "0"))
    assert listing.startswith("/------- com.citrix.xenclient.vmdisk\n|     -  backend-name ")
    assert ok(xec_vm("-q", "-u", UIVM.uuid, "--list-interfaces")).startswith(
        "com.citrix.xenclient.xenmgr.vm\norg.freedesktop.DBus.Introspectable\n")
    # errors of the forwarded xec are xec's
    assert local_error(xec_vm("-q", "-n", "uivm", "nosuch")) == \
        "xec: method nosuch not found in any of the interfaces\n"
    assert bus_error(xec_vm("-q", "-n", "uivm", "start")) == \
        f"org.freedesktop.DBus.Error.NotSupported: not implemented: {VM}.start\n"
    assert local_error(xec_vm("-n")) == "xec-vm: option -n (-n/--name) requires an argument\n"


def test_xec_vm_without_xenmgr(tmp_path: Path) -> None:
    proc, address = start_bus(tmp_path)
    try:
        assert bus_error(run("xec-vm", address=address)).startswith(
            f"org.freedesktop.DBus.Error.ServiceUnknown: The name {XENMGR} ")
        assert bus_error(run("xec-vm", "-n", "uivm", "get", "name", address=address)) \
            .startswith("org.freedesktop.DBus.Error.ServiceUnknown: ")
        # -o needs no lookup: the error comes from the forwarded xec
        assert bus_error(run("xec-vm", "-q", "-o", UIVM.path, "get", "name",
                             address=address)).startswith(
            "org.freedesktop.DBus.Error.ServiceUnknown: ")
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
    missing = f"unix:path={tmp_path}/no-bus"
    assert local_error(run("xec-vm", address=missing)).startswith(
        f"xec-vm: cannot connect to the bus at {missing}: ")
