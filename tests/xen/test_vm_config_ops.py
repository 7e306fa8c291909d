"""Every config the config operations can make reads back from the VM's snapshot.

A VM monitor saves its config in its snapshot and the next monitor parses it again; a config
that an operation accepted but that does not parse back makes the next monitor ignore the
whole snapshot (its state, pending config and operation in flight). Once an ejected CD drive
did that. Here random sequences of ``set``, device adds and removals and CD media changes run
on a machine, and after each one its view must survive the snapshot encoding unchanged.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors import decode, encode
from tests.xen.config_strategies import LIST_LINES, SAFE, config_texts, scalar_line
from tests.xen.recording import UUID, RecordingHypervisor, RecordingXenstore, env
from xen.xenops import PhysType
from xen.xenvm import TaskError, parse_config
from xen.xenvm._config_keys import SCALAR_KEYS
from xen.xenvm._lifecycle import State
from xen.xenvm._machine import VmMachine
from xen.xenvm._snapshot import decode_snapshot, encode_snapshot

_SETTABLE = [k.name for k in SCALAR_KEYS]
_DRIVES = ["hda", "xvdb", "sdc1", "xvdaa"]  # the disk lines' guest devices (LIST_LINES)


@st.composite
def config_operations(draw: st.DrawFn) -> list[tuple[str, tuple[str, ...]]]:
    """A list of (operation, arguments)."""
    ops: list[tuple[str, tuple[str, ...]]] = []
    for kind in draw(st.lists(st.sampled_from(["set", "add", "del", "insert", "eject"]),
                              min_size=1, max_size=10)):
        if kind == "set":
            name = draw(st.sampled_from(_SETTABLE))
            ops.append((kind, (name, draw(scalar_line(name)))))
        elif kind == "add":
            key = draw(st.sampled_from(["disk", "nic", "pci"]))
            ops.append((kind, (key, draw(LIST_LINES[key]))))
        elif kind == "del":
            ops.append((kind, (draw(st.sampled_from(["disk", "nic"])),
                               draw(st.sampled_from([*_DRIVES, "0", "1"])))))
        elif kind == "insert":
            ops.append((kind, (draw(st.sampled_from(_DRIVES)),
                               draw(st.sampled_from(["file", "phy"])), "/" + draw(SAFE))))
        else:
            ops.append((kind, (draw(st.sampled_from(_DRIVES)),)))
    return ops


def _apply(vm: VmMachine, kind: str, args: tuple[str, ...]) -> None:
    if kind == "set":
        vm.set_config(*args)
    elif kind == "add":
        vm.add_device(args[0], args[1])  # type: ignore[arg-type]
    elif kind == "del":
        vm.remove_device(args[0], args[1])  # type: ignore[arg-type]
    elif kind == "insert":
        vm.change_media(args[0], PhysType(args[1]), args[2])
    else:
        vm.change_media(args[0], None, "")


@settings(max_examples=200, deadline=None)
@given(config_texts(), config_operations())
def test_every_config_an_operation_makes_survives_the_snapshot(
        text: str, ops: list[tuple[str, tuple[str, ...]]]) -> None:
    vm = VmMachine(UUID, parse_config(text), env(RecordingHypervisor(), RecordingXenstore()))
    done = 0
    for kind, args in ops:
        before = vm.view()
        try:
            _apply(vm, kind, args)
            done += 1
        except TaskError:
            assert vm.view() == before, (kind, args)  # refused: nothing changed
        view = vm.view()
        assert decode_snapshot(decode(encode(encode_snapshot(view)))) == view, (kind, args)
    assert vm.state is State.SHUTDOWN
