"""Which GPUs each engine of a profile runs on: pure, and apart from the fit check so that what only needs the
placement (the sampler, the compose renderer) does not import the fit's model tables."""

from __future__ import annotations

from appliance.profile.model import Engine, Profile


def engine_gpu_choice(profile: Profile, engine: Engine, available: list[int]) -> list[int]:
    """The GPU indices `engine` runs on among the machine's `available` ones: its own `gpus`, else the next
    free ones of the profile's pool in engine order."""
    have = set(available)
    if engine.gpus is not None:
        wanted = list(engine.gpus)
    else:
        pool = sorted(have) if profile.gpus == "all" else list(profile.gpus)
        taken = [g for e in profile.engines if e is not engine and e.gpus for g in e.gpus]
        pool = [g for g in pool if g not in taken]
        earlier = [e for e in profile.engines[: profile.engines.index(engine)] if e.gpus is None]
        start = sum(e.gpu_count for e in earlier)
        wanted = pool[start: start + engine.gpu_count]
    return [i for i in wanted if i in have]


def engine_gpu_indices(profile: Profile, engine: Engine, gpu_count: int) -> list[int]:
    """The GPU indices an engine runs on, given how many GPUs the machine has."""
    return engine_gpu_choice(profile, engine, list(range(gpu_count)))
