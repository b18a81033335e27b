"""What `check` (and `up`) say about each engine beyond the fit: which vLLM version validates it, the advice vLLM
itself would log at start, and — for `check --vllm X` — what changes when its image is upgraded to X.

Pure: a profile in, values out (the CLI prints them, `--json` carries them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from appliance import advice as advice_mod
from appliance import cards, catalog, vllm_versions
from appliance.profile import Profile
from appliance.render.compose import vllm_options


@dataclass
class EngineChecks:
    engine: str
    requested: str | None  # the version the image tag names (None: it names none)
    version: str  # the spec it was checked against
    warning: str | None  # why those differ
    advice: list = field(default_factory=list)  # appliance.advice.Advice
    upgrade_to: str | None = None
    upgrade: list = field(default_factory=list)  # appliance.vllm_versions.Change
    upgrade_advice: list = field(default_factory=list)  # the advice under the new version

    def to_dict(self) -> dict:
        return asdict(self)


def check_engines(profile: Profile, *, upgrade_to: str | None = None, gpu_name: str | None = None) \
        -> list[EngineChecks]:
    """`gpu_name`: the card the check is judged against (--gpu, NVML), else the profile's `card`."""
    from appliance.errors import ApplianceError

    if upgrade_to is not None:
        try:
            vllm_versions.version_key(upgrade_to.lstrip("v"))
        except ValueError:
            raise ApplianceError(f"--vllm {upgrade_to}: not a vLLM version",
                                 "give one like 0.33.0 (known: " + ", ".join(vllm_versions.known_versions()) + ")") \
                from None
        upgrade_to = upgrade_to.lstrip("v")
    card = (cards.lookup(gpu_name) if gpu_name else None) or (cards.lookup(profile.card) if profile.card else None)
    out = []
    for e in profile.engines:
        r = vllm_versions.engine_version(e.image)
        opts = vllm_options(e)
        ck = catalog.lookup(e.model, use_hf_cache=False)
        arch = ck.arch if ck else None
        item = EngineChecks(e.label, r.requested, r.version, r.warning,
                            advice_mod.advise(opts, r.version, card=card, arch=arch))
        if upgrade_to:
            target = vllm_versions.resolve(upgrade_to, source="--vllm")
            item.upgrade_to = target.version
            if target.warning:
                item.warning = (item.warning + "; " if item.warning else "") + target.warning
            item.upgrade = vllm_versions.upgrade_report(opts, r.version, upgrade_to, card=card)
            item.upgrade_advice = advice_mod.advise(opts, upgrade_to, card=card, arch=arch)
        out.append(item)
    return out


def blocking(checks: list[EngineChecks]) -> list:
    """Advice `--strict` refuses on (warnings and errors)."""
    return [a for c in checks for a in advice_mod.blocking(c.advice)]


def print_checks(checks: list[EngineChecks], out) -> None:
    """The text `check` and `up` print."""
    for c in checks:
        print(f"engine {c.engine}: checked against vLLM {c.version}" +
              (f" (the image says {c.requested})" if c.requested and c.requested != c.version else ""), file=out)
        if c.warning:
            print(f"  ! {c.warning}", file=out)
        for a in c.advice:
            print(f"  [{a.rule}] {a.severity}: {a.message}\n      fix: {a.fix}\n      (vLLM: {a.source})", file=out)
        if c.upgrade_to:
            gone = {a.rule for a in c.advice} - {a.rule for a in c.upgrade_advice}
            word = "upgrade" if vllm_versions.version_key(c.upgrade_to) > vllm_versions.version_key(c.version) \
                else "move"
            print(f"  {word} to vLLM {c.upgrade_to}:" + ("" if c.upgrade or gone else
                                                        " nothing in this profile changes"), file=out)
            for rule in sorted(gone):
                print(f"    advice [{rule}] no longer applies under {c.upgrade_to}", file=out)
            for ch in c.upgrade:
                print(f"    {ch.kind}: {ch.message}\n      fix: {ch.fix}", file=out)
            for a in c.upgrade_advice:
                print(f"    advice under {c.upgrade_to} [{a.rule}] {a.severity}: {a.message} — {a.fix}", file=out)
