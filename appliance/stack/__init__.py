"""Changing the rig: up, switch (with rollback), down, power — `Stack` over a `Rig` (appliance.rig).

ops.py holds the operations; state.py the one state record; power.py, front_door.py and follow.py one job each.
"""

from appliance.stack.events import Event, StartResult
from appliance.stack.ops import DEFAULT_STALL_S, DEFAULT_TIMEOUT_S, Stack

__all__ = ["DEFAULT_STALL_S", "DEFAULT_TIMEOUT_S", "Event", "Stack", "StartResult"]
