"""``python -m supervision.shell``: the same as the console script (see `_main`)."""

from __future__ import annotations

import sys

from supervision.shell._main import main

sys.exit(main())
