"""xenmgr's errors as clients see them: DBus Failed with "<code>:<text>" or a plain message."""

from __future__ import annotations

import pytest

from rpc.dbus import FAILED, DBusError
from tests.xen.recording import UUID, RecordingHypervisor, RecordingXenstore, config, env
from xen.xenmgr import (
    CODES,
    DBUS_ERROR_NAME,
    XenmgrError,
    error,
    from_monitor_failure,
    no_vm_with_domid,
    no_vm_with_uuid,
    plain,
)
from xen.xenvm import TaskError
from xen.xenvm._lifecycle import IllegalTransition, Pause, State
from xen.xenvm._machine import VmMachine
from xen.xenvm._snapshot import VmView

#: The codes clients match on, with the original's exact texts.
KNOWN = {
    202: "Editing of properties is disabled by this VM's active policy",
    204: "Cannot remove running VM",
    205: "Too many VMS",
    206: "No such disk",
    213: "Performing this action requires PV addons installed inside VM",
    220: "Action suppressed by active policy settings",
    222: "No such NIC",
    227: "Timeout waiting for guest to enter sleep state",
    228: "Timeout waiting for guest to enter hibernated state",
    229: "Timeout waiting for guest to enter shutdown state",
}


@pytest.mark.parametrize(("code", "text"), sorted(KNOWN.items()))
def test_numbered_errors_render_code_colon_text(code: int, text: str) -> None:
    err = error(code)
    assert err.message == f"{code}:{text}"
    assert str(err) == f"{code}:{text}"
    assert (err.code, err.text) == (code, text)
    assert err.name == DBUS_ERROR_NAME == FAILED == "org.freedesktop.DBus.Error.Failed"
    assert isinstance(err, DBusError)


def test_io_error_carries_its_detail() -> None:
    assert error(223, "disk full").message == "223:IO error: disk full"
    assert error(230, "0000:00:02.0").message == (
        "230:Device '0000:00:02.0' is currently being passed through to another VM.")


def test_bad_uses_of_codes_are_refused() -> None:
    with pytest.raises(KeyError, match="999"):
        error(999)
    with pytest.raises(ValueError, match=r"223 .*needs a detail"):
        error(223)
    with pytest.raises(ValueError, match=r"204 .*takes no detail"):
        error(204, "extra")


def test_the_table_is_consistent() -> None:
    assert set(KNOWN) <= set(CODES)
    assert all(entry.code == code for code, entry in CODES.items())
    assert len({entry.name for entry in CODES.values()}) == len(CODES)
    assert {c for c, e in CODES.items() if e.takes_detail} == {106, 199, 223, 230, 234}


def test_plain_errors_have_no_code() -> None:
    assert no_vm_with_uuid("abc").message == "no vm with uuid abc"
    assert no_vm_with_domid(7).message == "no vm with domid 7"
    err = plain("anything at all")
    assert (err.code, err.text, err.message, err.name) == (None, "anything at all",
                                                           "anything at all", FAILED)


def test_errors_compare_by_code_and_text() -> None:
    assert error(204) == XenmgrError(204, "Cannot remove running VM")
    assert error(204) != plain("204:Cannot remove running VM")
    assert len({error(206), error(206), error(222)}) == 2


def test_monitor_failures_become_the_originals_numbers() -> None:
    refused = str(IllegalTransition(State.SHUTDOWN, Pause()))  # our monitor's own text
    assert from_monitor_failure(refused) == error(102)
    assert from_monitor_failure("start failed: not enough memory: 5 KiB needed, 1 KiB free") == (
        error(101))
    assert from_monitor_failure("guest did not shut down: timeout after 30 s") == error(104)
    assert from_monitor_failure(_paused_vms_shutdown_refusal()) == error(102)
    other = from_monitor_failure("restore: /x is not a saved domain image")
    assert (other.code, other.message) == (None, "restore: /x is not a saved domain image")


def _paused_vms_shutdown_refusal() -> str:
    """What our monitor answers to a clean shutdown of a paused VM."""
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    hv.add(5, paused=True)
    vm = VmMachine(UUID, config(), env(hv, xs))
    vm.resume(VmView(UUID, State.PAUSED, 5, -1, vm.config, None, None, None))
    with pytest.raises(TaskError) as refused:
        vm.shutdown()
    return str(refused.value)

