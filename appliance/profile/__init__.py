"""Profiles: strict models for profiles/*.yaml and the loader that explains every mistake (being split by job)."""

from appliance.profile.checks import *  # noqa: F401,F403
