"""The pyexpat tree builder under the loader: names, namespaces, text, comments, refusals."""

from __future__ import annotations

import pytest

from rpc.idl._xml import XmlSyntaxError, parse_xml

TP = "http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0"


def test_tree_shape_and_attributes() -> None:
    root = parse_xml(
        b'<?xml version="1.0"?>\n<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object'
        b' Introspection 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">'
        b'<node name="/"><interface name="a.b"><method name="m"/></interface><node name="c"/>'
        b"</node>"
    )
    assert root.tag == "node" and root.get("name") == "/"
    assert [c.tag for c in root.children] == ["interface", "node"]
    assert root.children[0].children[0].attrib == {"name": "m"}
    assert root.get("missing") is None and root.get("missing", "d") == "d"


def test_namespaces_and_comments() -> None:
    root = parse_xml(
        f'<node xmlns:tp="{TP}"><!-- first --><!-- second -->'
        '<tp:enum name="E" type="s" tp:extra="1"><tp:docstring>Some <b>bold</b> text'
        "</tp:docstring></tp:enum></node>"
    )
    assert root.attrib == {}  # the xmlns declaration is consumed
    assert root.comment == " first "
    enum = root.children[0]
    assert enum.tag == f"{{{TP}}}enum"
    assert enum.attrib == {"name": "E", "type": "s", f"{{{TP}}}extra": "1"}
    assert enum.children[0].text() == "Some bold text"
    assert enum.comment is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("<node>", "no element found"),
        ("<node></nope>", "mismatched tag"),
        ("<tp:enum/>", "unbound prefix"),
        ("", "no element found"),
        ('<!DOCTYPE n [<!ENTITY a "x">]><n>&a;</n>', "entity declarations are not accepted"),
        ('<!DOCTYPE n [<!ENTITY a SYSTEM "file:///etc/passwd">]><n>&a;</n>',
         "entity declarations are not accepted"),
        ("<n>&undefined;</n>", "undefined entity"),
    ],
)  # fmt: skip
def test_errors(data: str, message: str) -> None:
    with pytest.raises(XmlSyntaxError, match=message):
        parse_xml(data)
