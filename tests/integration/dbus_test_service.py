"""A test service exported through rpc.dbus: every basic and container type, dashed
properties, signals, errors, a slow method. Used by the DBus integration tests (and xec's)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rpc.dbus import DEFERRED, BusService, Call, DBusError, dbus_getter, dbus_method, dbus_setter
from rpc.idl import Interface, parse_node

SERVICE = "org.test.Service"
PATH = "/org/test/Object"
SLOW_PATH = "/org/test/Slow"
IFACE = "org.test.Iface"
SECOND = "org.test.Second"

XML = b"""<node>
  <interface name="org.test.Iface">
    <method name="echo_s"><arg name="v" type="s"/><arg name="r" type="s" direction="out"/></method>
    <method name="echo_basic">
      <arg type="y"/><arg type="b"/><arg type="n"/><arg type="q"/><arg type="i"/><arg type="u"/>
      <arg type="x"/><arg type="t"/><arg type="d"/><arg type="s"/><arg type="o"/><arg type="g"/>
      <arg type="y" direction="out"/><arg type="b" direction="out"/><arg type="n" direction="out"/>
      <arg type="q" direction="out"/><arg type="i" direction="out"/><arg type="u" direction="out"/>
      <arg type="x" direction="out"/><arg type="t" direction="out"/><arg type="d" direction="out"/>
      <arg type="s" direction="out"/><arg type="o" direction="out"/><arg type="g" direction="out"/>
    </method>
    <method name="echo_containers">
      <arg name="strings" type="as"/><arg name="map" type="a{ss}"/><arg name="vars" type="a{sv}"/>
      <arg name="rec" type="(isb)"/><arg name="nested" type="aai"/><arg name="bytes" type="ay"/>
      <arg type="as" direction="out"/><arg type="a{ss}" direction="out"/>
      <arg type="a{sv}" direction="out"/><arg type="(isb)" direction="out"/>
      <arg type="aai" direction="out"/><arg type="ay" direction="out"/>
    </method>
    <method name="divmod">
      <arg name="a" type="i"/><arg name="b" type="i"/>
      <arg name="q" type="i" direction="out"/><arg name="r" type="i" direction="out"/>
    </method>
    <method name="nothing"/>
    <method name="fail_plain"><arg name="why" type="s"/></method>
    <method name="fail_named"><arg name="why" type="s"/></method>
    <method name="bad_return"><arg type="i" direction="out"/></method>
    <method name="later"><arg name="v" type="s"/><arg type="s" direction="out"/></method>
    <method name="fire"><arg name="what" type="s"/></method>
    <method name="unimplemented"/>
    <signal name="fired"><arg name="what" type="s"/><arg name="count" type="i"/></signal>
    <property name="read-only-prop" type="s" access="read"/>
    <property name="read-write-prop" type="i" access="readwrite"/>
    <property name="plain_name" type="as" access="readwrite"/>
    <property name="not-implemented" type="s" access="read"/>
  </interface>
  <interface name="org.test.Second">
    <method name="echo_s"><arg name="v" type="s"/><arg name="r" type="s" direction="out"/></method>
    <method name="only_here"><arg type="i" direction="out"/></method>
  </interface>
</node>"""

NODE = parse_node(XML, source="dbus_test_service")
INTERFACES: list[Interface] = list(NODE.interfaces)
SLOW_XML = b"""<node><interface name="org.test.Slow">
  <method name="sleep"><arg name="seconds" type="d"/><arg type="s" direction="out"/></method>
  <method name="quick"><arg type="s" direction="out"/></method>
</interface></node>"""
SLOW_INTERFACES = list(parse_node(SLOW_XML, source="slow").interfaces)


class SlowObject:
    """Served on a worker pool: a slow call does not hold up the others."""

    @dbus_method("org.test.Slow", "sleep")
    def sleep(self, _call: Call, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    @dbus_method("org.test.Slow", "quick")
    def quick(self, _call: Call) -> str:
        return "quick"


class EchoService(BusService):
    """The test service itself (handlers run in this actor's mailbox)."""

    bus_names = (SERVICE,)

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.rw = 7
        self.plain: list[str] = ["a"]
        self.fired = 0

    def setup(self) -> None:
        self.export(PATH, INTERFACES)
        self.export(SLOW_PATH, SLOW_INTERFACES, SlowObject(), parallel=4)

    @dbus_method(IFACE, "echo_s")
    def echo_s(self, _call: Call, v: str) -> str:
        return v

    @dbus_method(SECOND, "echo_s")
    def echo_s2(self, _call: Call, v: str) -> str:
        return "second:" + v

    @dbus_method(SECOND, "only_here")
    def only_here(self, _call: Call) -> int:
        return 2

    @dbus_method(IFACE, "echo_basic")
    def echo_basic(self, _call: Call, *values: Any) -> tuple[Any, ...]:
        return values

    @dbus_method(IFACE, "echo_containers")
    def echo_containers(self, _call: Call, *values: Any) -> tuple[Any, ...]:
        return values

    @dbus_method(IFACE, "divmod")
    def divmod_(self, _call: Call, a: int, b: int) -> tuple[int, int]:
        return divmod(a, b)

    @dbus_method(IFACE, "nothing")
    def nothing(self, _call: Call) -> None:
        return None

    @dbus_method(IFACE, "fail_plain")
    def fail_plain(self, _call: Call, why: str) -> None:
        raise ValueError(why)

    @dbus_method(IFACE, "fail_named")
    def fail_named(self, _call: Call, why: str) -> None:
        raise DBusError("org.test.Error.Custom", why)

    @dbus_method(IFACE, "bad_return")
    def bad_return(self, _call: Call) -> Any:
        return "not an int"

    @dbus_method(IFACE, "later")
    def later(self, call: Call, v: str) -> Any:
        threading.Timer(0.05, lambda: call.reply("later:" + v)).start()
        return DEFERRED

    @dbus_method(IFACE, "fire")
    def fire(self, _call: Call, what: str) -> None:
        self.fired += 1
        self.emit(PATH, IFACE, "fired", what, self.fired)

    @dbus_getter(IFACE, "read-only-prop")
    def get_ro(self, _call: Call) -> str:
        return "fixed"

    @dbus_getter(IFACE, "read-write-prop")
    def get_rw(self, _call: Call) -> int:
        return self.rw

    @dbus_setter(IFACE, "read-write-prop")
    def set_rw(self, _call: Call, value: int) -> None:
        self.rw = value

    @dbus_getter(IFACE, "plain_name")
    def get_plain(self, _call: Call) -> list[str]:
        return self.plain

    @dbus_setter(IFACE, "plain_name")
    def set_plain(self, _call: Call, value: list[str]) -> None:
        self.plain = list(value)
