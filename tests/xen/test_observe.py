"""observe_domain on an in-memory tree: what a destroy plan is built from, and what it skips."""

from __future__ import annotations

import logging

import pytest

from xen.xenops import DestroyDomain, KillProcess, observe_domain, plan_domain_destroy


class Tree:
    """The read side of a xenstore client over a dict of path -> value."""

    def __init__(self, nodes: dict[str, str]) -> None:
        self.nodes = nodes

    def try_read(self, path: str) -> str | None:
        return self.nodes.get(path)

    def exists(self, path: str) -> bool:
        return path in self.nodes or any(p.startswith(path + "/") for p in self.nodes)

    def directory(self, path: str) -> list[str]:
        return sorted({p[len(path) + 1:].split("/")[0] for p in self.nodes
                       if p.startswith(path + "/")})


def test_pids_and_the_stubdomain_are_read() -> None:
    tree = Tree({
        "/local/domain/7/qemu-pid": "4242",
        "/local/domain/7/image/device-model-domid": "8",
        "/local/domain/8/name": "stubdom",
        "/local/domain/0/device-model/7/dm-helpers/77": "",
        "/local/domain/0/device-model/7/dm-helpers/78": "",
    })
    observed = observe_domain(tree, 7)  # type: ignore[arg-type]
    assert observed.qemu_pid == 4242 and observed.dm_helper_pids == (77, 78)
    assert observed.stubdom is not None and observed.stubdom.domid == 8


@pytest.mark.parametrize(("qemu", "helper", "stub"), [
    ("0", "1", "0"),         # a process group, init, dom0
    ("1", "0", "32752"),     # init, a process group, DOMID_SELF
    ("-5", "x", "99999"),    # not numbers a pid or a domid can be
])
def test_values_that_would_hit_the_wrong_target_are_skipped_with_a_warning(
        qemu: str, helper: str, stub: str, caplog: pytest.LogCaptureFixture) -> None:
    tree = Tree({
        "/local/domain/7/qemu-pid": qemu,
        "/local/domain/7/image/device-model-domid": stub,
        f"/local/domain/0/device-model/7/dm-helpers/{helper}": "",
    })
    with caplog.at_level(logging.WARNING):
        observed = observe_domain(tree, 7)  # type: ignore[arg-type]
    assert observed.qemu_pid is None and observed.dm_helper_pids == ()
    assert observed.stubdom is None
    assert len(caplog.records) == 3
    steps = list(plan_domain_destroy(observed).walk())
    assert [s for s in steps if isinstance(s, DestroyDomain)] == [DestroyDomain(7)]
    assert not any(isinstance(s, KillProcess) for s in steps)


def test_dm_agents_holding_the_domain_are_found_in_dom0_and_the_stub_domain() -> None:
    tree = Tree({
        "/local/domain/7/image/device-model-domid": "8",
        "/local/domain/8/name": "stubdom-7",
        "/local/domain/8/dm-agent/dms/7/0/status": "running",
        "/local/domain/0/dm-agent/dms/7/0/status": "running",
        "/local/domain/0/dm-agent/dms/9/0/status": "running",
    })
    observed = observe_domain(tree, 7)  # type: ignore[arg-type]
    assert observed.dm_agents == (0, 8)
    assert observe_domain(Tree({"/local/domain/7/name": "x"}), 7).dm_agents == ()  # type: ignore[arg-type]
