"""The ``ptr`` application's tests (the report page and the commands); they borrow the bag and
camera-dataset builders of tests/bag_tools."""

from __future__ import annotations

import sys
from pathlib import Path

_BAG_HELPERS = Path(__file__).resolve().parents[1] / 'bag_tools'
if str(_BAG_HELPERS) not in sys.path:
    sys.path.append(str(_BAG_HELPERS))
