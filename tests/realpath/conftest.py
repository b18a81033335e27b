"""The REAL rig assembly (`appliance.rig.real_rig`: NVML GPUs, docker engines, the docker front door, real hosted
providers) with fakes only at the boundaries: pynvml, the docker SDK client and the `docker compose` CLI, HTTP
probes and HAProxy's runtime socket. Every Stack line above those boundaries is the one that runs on a GPU box.

The follow loop gets a virtual clock (it takes `clock`/`sleep`): "stuck after 3 s" and "timeout after 8 s" are
decided without waiting for them.
"""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass, field

import pytest

import appliance.frontdoor
import appliance.http
import appliance.runtime.docker
import appliance.stack.ops
from appliance.gpu import nvml
from appliance.netcheck import port_free
from appliance.profile import load_profile
from appliance.rig import real_rig
from appliance.stack import Stack
from appliance.stack.follow import follow_start

from fakenvml import FakeNVML

from .fakedocker import FakeDocker, FakeSDK, FakeSubprocess, Script
from .fakenet import FakeHAProxy, FakeHTTP

OWNER_LIMITS_W = {0: 320, 1: 340}  # the owner's own limits before the appliance touches anything
WATTS = {"alpha": 300, "beta": 250, "crashy": 200, "gamma": 280}


def _free_block(n: int) -> int:
    """A base port with n free ports after it: random, so test runs on one machine do not collide, and below
    Linux's ephemeral range (32768-60999), where any outgoing connection may hold a port for a moment."""
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randrange(20000, 32700)
        if all(port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port block")


def write_profile(d, name: str, *, engine_port: int, proxy_port: int, aliases=("local",), watts=None,
                  model: str = "Qwen/Qwen2.5-7B-Instruct-AWQ") -> None:
    watts = WATTS.get(name, 300) if watts is None else watts
    (d / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        card: "3090"
        gpus: [0]
        power_limit_w: {watts}
        proxy:
          port: {proxy_port}
          hosted:
            - {{name: hosted-mini, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY,
               max_input_tokens: 128000}}
          fallbacks: {{{aliases[0]}: [hosted-mini]}}
        engines:
          - name: main
            aliases: [{", ".join(aliases)}]
            port: {engine_port}
            model: {model}
            max_model_len: 8192
            max_num_seqs: 16
            gpu_memory_utilization: 0.9
        """))


@dataclass
class RealPathRig:
    stack: Stack
    docker: FakeDocker
    nvml: FakeNVML
    haproxy: FakeHAProxy
    http: FakeHTTP
    journal: list
    ports: dict
    profiles_dir: object
    events: list = field(default_factory=list)

    @property
    def rig(self):
        return self.stack.rig

    def profile(self, name: str):
        return load_profile(name)

    def limit_w(self, idx: int) -> float:
        return self.nvml.limits_mw[idx] / 1000

    def messages(self, kind: str) -> list[str]:
        return [e.message for e in self.events if e.kind == kind]

    def index(self, entry: tuple) -> int:
        """Where `entry` first appears in the journal (fails loudly when it never happened)."""
        assert entry in self.journal, f"{entry} not in {self.journal}"
        return self.journal.index(entry)

    def compose(self, cmd: str) -> list[str]:
        return [e[2] for e in self.journal if e[:2] == ("compose", cmd)]


@pytest.fixture
def real(tmp_path, monkeypatch) -> RealPathRig:
    base = _free_block(12)
    # like the shipped profiles, alpha, beta and crashy serve `local` on one port; gamma is elsewhere
    ports = {"proxy": base, "alpha": base + 6, "beta": base + 6, "crashy": base + 6, "gamma": base + 9,
             "fast": base + 10, "smart": base + 11}
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name in ("alpha", "beta", "crashy"):  # beta serves `chat` too: routing it to beta needs a reload
        write_profile(profiles, name, engine_port=ports[name], proxy_port=ports["proxy"],
                      aliases=("local", "chat") if name == "beta" else ("local",))
    monkeypatch.setenv("APPLIANCE_PROFILES", str(profiles))
    monkeypatch.setenv("APPLIANCE_PROFILES_ONLY", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("APPLIANCE_SECRETS_FILE", raising=False)
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)

    journal: list = []
    d = FakeDocker(journal)
    d.defaults["appliance-crashy"] = Script.crash  # its engine runs out of KV cache memory at every start
    fake_nvml = FakeNVML()
    fake_nvml.limits_mw = {i: w * 1000 for i, w in OWNER_LIMITS_W.items()}
    real_set = fake_nvml.nvmlDeviceSetPowerManagementLimit

    def set_limit(h, mw):  # record what the state held when the limit changed
        journal.append(("power", h, mw // 1000, dict(stack.rig.state.load().power_saved)))
        real_set(h, mw)

    fake_nvml.nvmlDeviceSetPowerManagementLimit = set_limit
    fake_nvml.install(monkeypatch)
    monkeypatch.setattr(nvml.os, "geteuid", lambda: 0)

    monkeypatch.setattr(appliance.runtime.docker, "subprocess", FakeSubprocess(d))
    http = FakeHTTP(d, ports["proxy"])
    monkeypatch.setattr(appliance.http, "client", http.client)
    monkeypatch.setattr(appliance.http, "get", http.get)
    haproxy = FakeHAProxy(d)
    monkeypatch.setattr(appliance.frontdoor, "admin", haproxy.admin)

    def virtual_follow(*args, t0, **kw):
        now = [t0]
        return follow_start(*args, t0=t0, clock=lambda: now[0],
                            sleep=lambda s: now.__setitem__(0, now[0] + s), **kw)

    monkeypatch.setattr(appliance.stack.ops, "follow_start", virtual_follow)

    rig = real_rig(runtime="docker", root=tmp_path / "rig", docker_env={})
    assert rig.proxy_runtime is rig.runtime and rig.runtime.kind == "docker"
    rig.runtime._client = FakeSDK(d)
    events: list = []
    stack = Stack(rig, events.append)
    return RealPathRig(stack, d, fake_nvml, haproxy, http, journal, ports, profiles, events)


@pytest.fixture
def pulled(real) -> RealPathRig:
    """A rig whose images are all here already (the usual case after the first `up`)."""
    from appliance.profile import PINNED_IMAGE
    from appliance.render.frontdoor import HAPROXY_IMAGE
    from appliance.render.litellm import LITELLM_IMAGE

    real.docker.images |= {PINNED_IMAGE, HAPROXY_IMAGE, LITELLM_IMAGE}
    return real


def write_duo(d, *, ports: tuple[int, int], proxy_port: int) -> None:
    """Two engines, one per GPU, each with its own limit (a two-tier rig)."""
    (d / "duo.yaml").write_text(textwrap.dedent(f"""\
        name: duo
        card: "3090"
        gpus: [0, 1]
        power_limit_w: {{0: 300, 1: 260}}
        proxy:
          port: {proxy_port}
        engines:
          - name: fast
            aliases: [local-fast]
            port: {ports[0]}
            gpus: [0]
            model: Qwen/Qwen2.5-7B-Instruct-AWQ
            max_model_len: 8192
          - name: smart
            aliases: [local-smart]
            port: {ports[1]}
            gpus: [1]
            model: Qwen/Qwen2.5-14B-Instruct-AWQ
            max_model_len: 8192
        """))
