"""recall-zoo: a plugin-based model zoo for the recall stage of recommender systems.

Importing :mod:`zoo` is cheap: it never imports torch or an ANN backend. The plugin markers
``zoo.hookimpl`` / ``zoo.hookspec`` live here so that a plugin module needs nothing heavier.
"""

from __future__ import annotations

import pluggy

from zoo._version import __version__

PROJECT_NAME = "zoo"
ENTRY_POINT_GROUP = "recall_zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["ENTRY_POINT_GROUP", "PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
