"""Random crash sequences against a model of the expected tree (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors
from actors import InjectCrash
from supervision import (
    EventLog,
    Restart,
    Strategy,
    Supervisor,
    SupFlags,
    WhichChildren,
    restart_plan,
    should_restart,
)
from tests.supervision.workers import Stop, worker

PERIOD = 3600.0  # every restart of an example stays inside the window


@dataclass
class ModelChild:
    restart: Restart
    running: bool = True
    restarts: int = 0


@dataclass
class Model:
    """What OTP's rules (as documented in docs/supervision.md) predict."""

    strategy: Strategy
    intensity: int
    children: dict[str, ModelChild]
    restart_count: int = 0
    escalated: bool = False
    order: list[str] = field(default_factory=list)

    def exit(self, cid: str, abnormal: bool) -> None:
        child = self.children[cid]
        child.running = False
        reason = actors.Crashed("x") if abnormal else actors.Normal()
        if not should_restart(child.restart, reason):
            if child.restart is Restart.TEMPORARY:
                del self.children[cid]
            return
        self.restart_count += 1
        if self.restart_count > self.intensity:
            self.escalated = True
            return
        running = [c for c in self.children if self.children[c].running or c == cid]
        plan = restart_plan(self.strategy, running,
                            {c: self.children[c].restart for c in running}, cid)
        for gone in plan.forget:
            del self.children[gone]
        for c in plan.start:
            self.children[c].running = True
            self.children[c].restarts += 1


ops = st.lists(st.tuples(st.integers(0, 100), st.booleans()), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    strategy=st.sampled_from([Strategy.ONE_FOR_ONE, Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE]),
    types=st.lists(st.sampled_from(list(Restart)), min_size=1, max_size=4),
    intensity=st.integers(0, 6),
    sequence=ops,
)
def test_random_exits_match_the_model(strategy: Strategy, types: list[Restart], intensity: int,
                                      sequence: list[tuple[int, bool]]) -> None:
    ids = [f"c{n}" for n in range(len(types))]
    model = Model(strategy, intensity, {i: ModelChild(t) for i, t in zip(ids, types, strict=True)})
    events = EventLog()
    escalations: list[object] = []
    ref = Supervisor.start_root(
        SupFlags(strategy, intensity=intensity, period=PERIOD, health_interval=0),
        [worker(i, restart=t) for i, t in zip(ids, types, strict=True)],
        events=events, on_escalate=escalations.append)
    try:
        for pick, abnormal in sequence:
            running = [c for c, m in model.children.items() if m.running]
            if not running or model.escalated:
                break
            cid = running[pick % len(running)]
            seq = events.last_seq
            actors.tell(f"/{cid}", InjectCrash() if abnormal else Stop())
            kind = "crashed" if abnormal else "exited"
            assert events.wait_for(lambda e, c=cid, k=kind: e.kind == k and e.path == f"/{c}",
                                   5.0, since=seq)
            model.exit(cid, abnormal)
            if model.escalated:
                assert events.wait_for(lambda e: e.kind == "escalated", 5.0, since=seq)
                assert actors.actor_of(ref).wait_dead(5.0)
                assert escalations
                break
            infos = actors.ask(ref, WhichChildren(), timeout=5.0)
            real = {i.id: (i.status == "running", i.restarts) for i in infos}
            expected = {c: (m.running, m.restarts) for c, m in model.children.items()}
            assert real == expected
            for c, m in model.children.items():
                if m.running:
                    assert actors.ask(f"/{c}", actors.Ping(), timeout=5.0) == "pong"
        if not model.escalated:
            assert not escalations
    finally:
        if ref.is_alive():
            ref.stop(block=True, timeout=10)
