"""The dashboard freezes the objects alive after startup (appliance/tui/screens/dashboard.py): the collector's full
passes stop walking them, and what is made later is still collected."""

from __future__ import annotations

import gc
import weakref

from appliance.tui.screens.dashboard import freeze_startup_objects


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_startup_objects_are_frozen_and_later_garbage_is_still_collected():
    before = Node()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        later = Node()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None  # made after the freeze: collected as before
        assert before.me is before
    finally:
        gc.unfreeze()
