"""`appliance bench` (being split by job)."""

from appliance.bench.sweep import *  # noqa: F401,F403
