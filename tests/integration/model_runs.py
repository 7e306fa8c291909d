"""Running a hypothesis state machine as a test (the model-based tests): how many sequences,
and whether a failure is shrunk.

In the suite a model runs a few sequences and reports a failure as found (shrinking a failing
sequence of VM operations can take minutes on a loaded machine); with the model's environment
variable set (a number of sequences) it explores, and shrinks a failure to its shortest
sequence.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine

__all__ = ["run_model"]

_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
_SHRINK = (*_NO_SHRINK, Phase.shrink)


def run_model(machine: type[RuleBasedStateMachine], *, examples: int, steps: int,
              explore: str) -> None:
    """Run ``machine``: ``examples`` sequences of up to ``steps`` steps, or as many as the
    environment variable ``explore`` says (then shrinking a failure)."""
    exploring = os.environ.get(explore)
    run = machine.TestCase()
    run.settings = settings(max_examples=int(exploring or examples), stateful_step_count=steps,
                            deadline=None, suppress_health_check=list(HealthCheck),
                            phases=_SHRINK if exploring else _NO_SHRINK)
    run.runTest()
