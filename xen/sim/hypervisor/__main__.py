"""``python -m xen.sim.hypervisor``: run the simulated hypervisor alone (see `_cli`)."""

from __future__ import annotations

import sys

from xen.sim.hypervisor._cli import main

sys.exit(main())
