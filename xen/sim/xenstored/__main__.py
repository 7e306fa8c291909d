"""``python -m xen.sim.xenstored``: run the simulated xenstored alone (see `_cli`)."""

from __future__ import annotations

import sys

from xen.sim.xenstored._cli import main

sys.exit(main())
