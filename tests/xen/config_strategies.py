"""Hypothesis strategies for xenvm config files: valid lines of every key (shared by the config
and config-operation tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from xen.xenvm._config_keys import SCALAR_KEYS

__all__ = ["LIST_LINES", "SAFE", "config_texts", "scalar_line"]

SAFE = st.text("abcdefghijklmnopqrstuvwxyz0123456789/._-", min_size=1, max_size=12)


def scalar_line(name: str) -> st.SearchStrategy[str]:
    bools = st.sampled_from(["1", "yes", "false", "N"])
    special: dict[str, st.SearchStrategy[str]] = {
        "uuid": st.uuids().map(str), "stubdom": st.uuids().map(str),
        "startup": st.sampled_from(["start", "paused", "shutdown", "restore /x", "restore-del /y"]),
        "on_poweroff": st.sampled_from(["restart", "destroy", "preserve", "reboot"]),
        "display": st.sampled_from(["none", "sdl", "intel:1", "vnc", "vnc:port=5,keymap=de",
                                    "vnc:use-port-unused"]),
        "notify": st.sampled_from(["", "dbus", "dbus,/p", "unix,/s", "tcp,10.0.0.1:80"]),
        "memory": st.integers(1, 4096).map(str), "vcpus": st.integers(1, 64).map(str),
        "videoram": st.integers(0, 64).map(str),
    }
    if name.startswith("on_"):
        return special["on_poweroff"]
    if name in special:
        return special[name]
    key = next(k for k in SCALAR_KEYS if k.name == name)
    try:
        key.parse("true")
        return bools
    except ValueError:
        pass
    try:
        key.parse("5")
        return st.integers(1, 1000).map(str)
    except ValueError:
        return SAFE


LIST_LINES: dict[str, st.SearchStrategy[str]] = {
    "disk": st.tuples(SAFE, st.sampled_from(["phy", "file", "vhd"]),
                      st.sampled_from(["hda", "xvdb", "sdc1", "xvdaa"]), st.sampled_from("rw"),
                      st.sampled_from(["disk", "cdrom"]),
                      st.sampled_from(["", ":none", ":temporary", ":backend-domid=1"])).map(
        lambda t: f"/{t[0]}:{t[1]}:{t[2]}:{t[3]}:{t[4]}{t[5]}"),
    "nic": st.tuples(st.sampled_from(["", "bridge=br0", "model=e1000,mac=random", "wireless=1",
                                      "network=/n/1,backend-domid=2", "mac=00:16:3e:00:00:01"]))
    .map(lambda t: t[0]),
    "pci": st.sampled_from(["0,0000:00:02.0", "1,bind,3:0:0.1,msitranslate=0", "2,0:1:2.3,x=y"]),
    "extra-hvm": st.sampled_from(["std-vga", "serial=pty", "k=v=w"]),
    "platform": st.sampled_from(["vga", "hap=false"]),
    "cpus-affinity": st.sampled_from(["0:1", "1:0,3"]),
    "passthrough-io": st.sampled_from(["0x3f8-0x3ff", "10-20"]),
    "passthrough-mmio": st.sampled_from(["0xf0000000-0xf0000fff"]),
    "extra-vm-watch": SAFE,
}


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    lines = []
    for name in draw(st.lists(st.sampled_from([k.name for k in SCALAR_KEYS]), max_size=12)):
        if name in ("memory-max", "pvh"):
            continue  # depend on memory, on hvm and stubdom; covered elsewhere
        lines.append(f"{name} = {draw(scalar_line(name))}")
    taken: set[str] = set()  # a disk's guest device, a PCI device: once per config
    for name in draw(st.lists(st.sampled_from(sorted(LIST_LINES)), max_size=8)):
        line = draw(LIST_LINES[name])
        if name in ("disk", "pci"):  # each PCI line has its own device
            unique = f"disk {line.split(':')[2]}" if name == "disk" else line
            if unique in taken:
                continue
            taken.add(unique)
        lines.append(f"{name} = {line}")
    lines += [f"x-{n} = {n}" for n in draw(st.lists(SAFE, max_size=2))]
    return "\n".join(lines)
