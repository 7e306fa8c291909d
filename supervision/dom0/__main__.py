"""``python -m supervision.dom0``: the same as the console script (see `_main`)."""

from __future__ import annotations

import sys

from supervision.dom0._main import main

sys.exit(main())
