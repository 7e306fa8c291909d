"""xec output, byte for byte, in the formats of the fact sheet (openxt-manager.md §1.4, §1.6)."""

from __future__ import annotations

from typing import Any

import pytest

from rpc.idl import Access, Arg, Direction, Interface, Method, Property, package_interface
from rpc.xec import (
    VmRow,
    format_error,
    format_getall,
    format_interface_names,
    format_introspection,
    format_method_names,
    format_property_names,
    format_reply,
    format_value,
    format_vm_table,
    show_signature,
)


@pytest.mark.parametrize(
    ("value", "sig", "text"),
    [
        (42, "i", "42"),
        (-7, "x", "-7"),
        (255, "y", "255"),
        (2**64 - 1, "t", "18446744073709551615"),
        (3, "h", "3"),
        (True, "b", "true"),
        (False, "b", "false"),
        (1.0, "d", "1.0"),
        (0.01, "d", "1.0e-2"),
        (-2.5, "d", "-2.5"),
        (3, "d", "3.0"),
        ("raw text, no quotes", "s", "raw text, no quotes"),
        ("", "s", ""),
        ("/vm/abc", "o", "/vm/abc"),
        (("i", 5), "v", "5"),
        (("as", ["a", "b"]), "v", "a\nb"),
        (("v", ("s", "deep")), "v", "deep"),
        ("a{sv}i", "g", "[SigArray (SigDict SigString SigVariant),SigInt32]"),
        ("", "g", "[]"),
        ([], "as", ""),
        (["a", "b", "c"], "as", "a\nb\nc"),
        ([[1, 2], [], [3]], "aai", "1\n2\n\n3"),
        ((1, "x", True), "(isb)", "1\nx\ntrue"),
        ([(1, "a"), (2, "b")], "a(is)", "1\na\n2\nb"),
        (b"ab\x00c\xff", "ay", '"ab\\NULc\\255"'),
        ([104, 105], "ay", '"hi"'),
        ([b"x", b"\n"], "aay", '"x"\n"\\n"'),
    ],
)
def test_scalars_and_flat_containers(value: Any, sig: str, text: str) -> None:
    assert format_value(value, sig) == text


def test_dict_entry_layout() -> None:
    text = format_value({"name": "ndvm", "a-much-longer-key-than-thirty-chars": "1"}, "a{ss}")
    assert text == (
        '{\n  "name"                         = ndvm\n  "a-much-longer-key-than-thirty-chars" = 1\n}'
    )
    assert format_value({}, "a{ss}") == "{\n}"
    assert format_value({7: True}, "a{ib}") == '{\n  "7"                            = true\n}'


def test_nested_dict_values_continue_unindented() -> None:
    text = format_value({"k": {"x": "1"}}, "a{sa{ss}}")
    assert (
        text
        == '{\n  "k"                            = {\n  "x"                            = 1\n}\n}'
    )
    aa = format_value([{"a": "1"}, {"b": "2"}], "aa{ss}")
    assert aa == (
        '{\n  "a"                            = 1\n}\n{\n  "b"                            = 2\n}'
    )
    variant = format_value({"p": ("i", 1), "q": ("as", ["x", "y"])}, "a{sv}")
    assert variant == (
        '{\n  "p"                            = 1\n  "q"                            = x\ny\n}'
    )


def test_reply_lines() -> None:
    assert format_reply([], "") == ""
    assert format_reply(["/vm/a"], "o") == "/vm/a\n"
    assert format_reply([[]], "ao") == "\n"  # an empty array prints one empty line
    assert format_reply([True, "x"], "bs") == "true\nx\n"
    assert format_reply([["/vm/a", "/vm/b"]], "ao") == "/vm/a\n/vm/b\n"


def test_type_mismatch_is_named() -> None:
    with pytest.raises(TypeError, match="cannot format 'x' as DBus type 'i'"):
        format_value("x", "i")
    with pytest.raises(TypeError, match=r"as DBus type 'a\{ss\}'"):
        format_value(["a"], "a{ss}")
    with pytest.raises(TypeError):
        format_value((1,), "(ii)")
    with pytest.raises(TypeError, match="2 values for signature with 1 types"):
        format_reply([1, 2], "i")


def test_error_line() -> None:
    assert (
        format_error("org.freedesktop.DBus.Error.Failed", ["204:Cannot remove running VM"], "s")
        == "org.freedesktop.DBus.Error.Failed: 204:Cannot remove running VM"
    )
    assert format_error("a.B", ["x", 3, True], "sib") == "a.B: x, 3, true"
    assert format_error("org.freedesktop.DBus.Error.UnknownMethod", [], "") == (
        "org.freedesktop.DBus.Error.UnknownMethod: "
    )


def test_getall_block() -> None:
    text = format_getall(
        "com.citrix.xenclient.xenmgr.vm",
        {"acpi-state": ("i", 3), "name": ("s", "ndvm"), "dependencies": ("ao", [])},
    )
    assert text == (
        "com.citrix.xenclient.xenmgr.vm\n"
        "{\n"
        '  "acpi-state"                        = 3\n'
        '  "name"                              = ndvm\n'
        '  "dependencies"                      = \n'
        "}\n"
    )
    assert format_getall("a.b", {}) == ""


NIC_LISTING = (
    "/------- com.citrix.xenclient.vmnic\n"
    "|     -  backend-name                 readwrite:s\n"
    "|     -  backend-uuid                 readwrite:s\n"
    "|     -  enabled                      readwrite:b\n"
    "|     -  mac                          readwrite:s\n"
    "|     -  mac-actual                   read:s\n"
    "|     -  model                        readwrite:s\n"
    "|     -  network                      readwrite:s\n"
    "|     -  wireless-driver              readwrite:b\n"
    "|     +  delete                       (  )"
)

DB_LISTING = (
    "/------- com.citrix.xenclient.db\n"
    "|     +  dump                         ( path:s, OUT value:s )\n"
    "|     +  exists                       ( path:s, OUT ex:b )\n"
    "|     +  inject                       ( path:s, value:s )\n"
    "|     +  list                         ( path:s, OUT value:as )\n"
    "|     +  read                         ( path:s, OUT value:s )\n"
    "|     +  read-binary                  ( path:s, OUT value:ay )\n"
    "|     +  rm                           ( path:s )\n"
    "|     +  write                        ( path:s, value:s )"
)


def test_introspection_listing() -> None:
    nic = package_interface("com.citrix.xenclient.vmnic")
    db = package_interface("com.citrix.xenclient.db")
    assert format_introspection([nic]) == NIC_LISTING + "\n\n"
    assert format_introspection([nic, db]) == NIC_LISTING + "\n\n" + DB_LISTING + "\n\n"


def test_introspection_listing_details() -> None:
    odd = Interface(
        "org.example.Odd",
        methods=(
            Method(
                "mixed_args",
                (
                    Arg("", "aa{ss}", Direction.OUT),
                    Arg("first", "i", Direction.IN),
                    Arg("", "s", Direction.IN),
                ),
            ),
            Method("a_method_name_longer_than_twenty_eight", ()),
        ),
        properties=(Property("w", "x", Access.WRITE),),
    )
    empty = Interface("org.example.Empty")
    assert format_introspection([empty, odd]) == (
        "/------- org.example.Empty\n"
        "\n\n"
        "/------- org.example.Odd\n"
        "|     -  w                            write:x\n"
        "|     +  mixed-args                   ( first:i, :s, OUT :aa{ss} )\n"
        "|     +  a-method-name-longer-than-twenty-eight (  )\n\n"
    )
    assert format_introspection([]) == "\n\n"


def test_host_listing_shows_unnamed_outs_and_no_signals() -> None:
    host = package_interface("com.citrix.xenclient.xenmgr.host")
    text = format_introspection([host])
    assert "|     +  list-cd-devices              ( OUT :aa{ss} )\n" in text
    assert (
        "|     +  get-cd-device-assignment     ( devid:s, OUT sticky:b, OUT vm_uuid:s )\n" in text
    )
    assert "|     -  build-info                   read:a{ss}\n" in text
    assert "state_changed" not in text and "state-changed" not in text


def test_list_outputs() -> None:
    nic = package_interface("com.citrix.xenclient.vmnic")
    db = package_interface("com.citrix.xenclient.db")
    both = [db, nic]
    assert format_interface_names(both) == "com.citrix.xenclient.db\ncom.citrix.xenclient.vmnic\n"
    assert format_method_names(both) == (
        "dump\nexists\ninject\nlist\nread\nread-binary\nrm\nwrite\ndelete\n"
    )
    assert format_method_names(both, "com.citrix.xenclient.vmnic") == "delete\n"
    assert format_method_names(both, "no.such") == format_method_names(both)  # falls back to all
    assert format_property_names(both, "com.citrix.xenclient.db") == ""
    assert format_property_names(both).splitlines()[:2] == ["backend-name", "backend-uuid"]
    assert format_interface_names([]) == ""


def test_vm_table() -> None:
    rows = [
        VmRow(-1, "stopped-one", "00000000-0000-0000-0000-00000000000a", "stopped"),
        VmRow(5, "uivm", "00000000-0000-0000-0000-000000000001", "running"),
        VmRow(-1, "stopped-two", "00000000-0000-0000-0000-00000000000b", "stopped"),
        VmRow(1, "a-name-longer-than-eighteen", "u", "running"),
        VmRow(1234, "x", "u2", "a-state-longer-than-ten"),
    ]
    assert format_vm_table(rows) == (
        " ID  | Name               | UUID                                 | State     \n"
        "-----+--------------------+--------------------------------------+--------\n"
        "   1 | a-name-longer-than-eighteen | u                                    | running   \n"
        "   5 | uivm               | 00000000-0000-0000-0000-000000000001 | running   \n"
        " 1234 | x                  | u2                                   | "
        "a-state-longer-than-ten\n"
        "     | stopped-one        | 00000000-0000-0000-0000-00000000000a | stopped   \n"
        "     | stopped-two        | 00000000-0000-0000-0000-00000000000b | stopped   \n"
    )
    assert format_vm_table([]) == (
        " ID  | Name               | UUID                                 | State     \n"
        "-----+--------------------+--------------------------------------+--------\n"
    )


def test_show_signature_nesting() -> None:
    assert show_signature("a(ia{sv})") == (
        "[SigArray (SigStruct [SigInt32,SigArray (SigDict SigString SigVariant)])]"
    )
    assert show_signature("ybnqiuxtdsogvh") == (
        "[SigByte,SigBool,SigInt16,SigUInt16,SigInt32,SigUInt32,SigInt64,SigUInt64,SigDouble,"
        "SigString,SigObjectPath,SigSignature,SigVariant,SigUnixFD]"
    )
    assert show_signature("aay") == "[SigArray (SigArray SigByte)]"
    assert show_signature("((i))a{ys}") == (
        "[SigStruct [SigStruct [SigInt32]],SigArray (SigDict SigByte SigString)]"
    )
