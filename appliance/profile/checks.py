"""Checks across fields: what vLLM, Compose or LiteLLM would reject, caught before anything runs.

Each check appends Problems and never raises, so one run reports every mistake of a profile. vLLM options are
checked against the pinned vLLM's own argument parser (vllm_spec), model facts against the catalog.
"""

from __future__ import annotations

import re

from appliance import vllm_spec
from appliance.profile import grammar
from appliance.profile.owned import OWNED_ENV, owned_in_args
from appliance.profile.model import ENV_NAME_RE, NAME_RE, PINNED_IMAGE, Engine, Profile, spec_of_image
from appliance.vllm_versions import default_of
from appliance.profile.problems import Problem, _choices_text, _closest


def _check_choice(problems: list, path: tuple, value, choices, what: str, version: str = vllm_spec.VLLM_VERSION):
    if value is None:
        return
    if not isinstance(value, str) or value not in choices:
        near = _closest(value, choices) if isinstance(value, str) else None
        hint = f"did you mean `{near}`? " if near else ""
        problems.append(Problem(path, f"`{value}` is not a {what} vLLM {version} knows",
                                f"{hint}one of: {_choices_text(choices)}"))


def _check_vllm_option(problems: list, path: tuple, dest: str, value, spec):
    """YAML-level type first (a bool must be true/false, JSON options a mapping), then exactly what vLLM's own
    argument parser would say about the value."""
    import contextlib
    import io

    flag = spec.flags[dest]
    if dest in spec.harmful:
        problems.append(Problem(path, f"`{dest}` {spec.harmful[dest]}", f"remove `{dest}`"))
        return
    if flag.kind in ("bool", "store_true") or flag.type == "optional_bool" and isinstance(value, bool):
        if not isinstance(value, bool):
            problems.append(Problem(path, f"`{dest}: {value!r}` must be true or false", None))
        return
    if flag.kind == "json" and flag.type == "json" and not isinstance(value, (dict, list)):
        problems.append(Problem(path, f"`{dest}` must be a mapping (vLLM takes it as JSON)", f"e.g. {dest}: {{k: v}}"))
        return
    if flag.kind not in ("multi", "append", "json") and isinstance(value, (dict, list)):
        problems.append(Problem(path, f"`{dest}` takes one value, not a {type(value).__name__}", None))
        return
    if value is None:
        problems.append(Problem(path, f"`{dest}` has no value", "give a value or remove the key"))
        return
    argv = ["model"] + spec.to_cli_args({dest: value})
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            vllm_spec.build_serve_parser(version=spec.version).parse_args(argv)
    except SystemExit:
        lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
        why = lines[-1].split("error:", 1)[-1].strip() if lines else "rejected"
        if flag.choices:
            near = _closest(str(value), flag.choices)
            hint = (f"did you mean `{near}`? " if near else "") + "one of: " + _choices_text(flag.choices)
        else:
            hint = None
        problems.append(Problem(path, f"`{dest}: {value!r}` — vLLM {spec.version} rejects it: {why}", hint))


def _semantic_problems(p: Profile) -> list[Problem]:
    """Checks across fields: what vLLM, Compose or LiteLLM would reject, caught before anything runs."""
    from appliance import catalog

    from appliance import cards

    out: list[Problem] = []
    if p.card is not None and cards.lookup(p.card) is None:
        near = _closest(p.card, cards.CARDS)
        out.append(Problem(("card",), f"`card: {p.card}` is not a card the appliance knows",
                           (f"did you mean `{near}`? " if near else "") + "one of: " + ", ".join(cards.CARDS)))
    if not NAME_RE.match(p.name):
        out.append(Problem(("name",), f"`name: {grammar._show(p.name)}` must be lowercase letters, digits, - or _ "
                           "(at most 63)", "it becomes the compose project name"))
    if grammar.description_problem(p.description):
        out.append(Problem(("description",), grammar.description_problem(p.description), "shorten it"))
    profile_gpus = None if p.gpus == "all" else list(p.gpus)
    if profile_gpus is not None:
        if not profile_gpus:
            out.append(Problem(("gpus",), "`gpus` is empty", "list GPU indices, or write `gpus: all`"))
        if len(set(profile_gpus)) != len(profile_gpus):
            out.append(Problem(("gpus",), f"`gpus: {list(profile_gpus)}` lists a GPU twice", "list each index once"))
        for i, g in enumerate(profile_gpus):
            if g < 0 or g > 63:
                out.append(Problem(("gpus", i), f"`gpus: {g}` is not a GPU index", "indices start at 0"))
    # power limits: plausible board limits only; per-card constraints are checked against NVML at `up`
    if p.power_limit_w is not None:
        items = [((), p.power_limit_w)] if isinstance(p.power_limit_w, int) else [
            ((k,), v) for k, v in p.power_limit_w.items()]
        for sub, watts in items:
            if not 50 <= watts <= 1000:
                out.append(Problem(("power_limit_w",) + sub, f"`power_limit_w: {watts}` W is not a GPU power limit",
                                   "give watts between 50 and 1000 (a 3090 takes 100–350, a 4090 150–450)"))
        if isinstance(p.power_limit_w, dict) and profile_gpus is not None:
            for k in p.power_limit_w:
                if k not in profile_gpus:
                    out.append(Problem(("power_limit_w", k), f"GPU {k} has a power limit but is not in `gpus`",
                                       f"add {k} to gpus or remove its limit"))
    ports: dict[int, int] = {}
    aliases: dict[str, int] = {}
    labels: dict[str, int] = {}
    gpu_use: dict[int, float] = {}
    hosted_names = {h.name for h in p.proxy.hosted}
    for i, e in enumerate(p.engines):
        base = ("engines", i)
        if e.port in ports:
            out.append(Problem(base + ("port",), f"engines[{ports[e.port]}] and engines[{i}] both use port {e.port}",
                               "give each engine its own port"))
        ports.setdefault(e.port, i)
        if e.port == p.proxy.port:
            out.append(Problem(base + ("port",), f"port {e.port} is the proxy's port", "pick another engine port"))
        if e.label in labels:
            out.append(Problem(base + ("name",), f"two engines are called `{e.label}`", "set a distinct `name:`"))
        labels.setdefault(e.label, i)
        if e.name is not None and not NAME_RE.match(e.name):
            out.append(Problem(base + ("name",), f"`name: {grammar._show(e.name)}` must be lowercase letters, digits, - or _", None))
        if not e.aliases:
            out.append(Problem(base + ("aliases",), "the engine has no `aliases`",
                               "give the names agents use through the proxy, e.g. aliases: [local]"))
        _engine_grammar(out, base, e)
        for j, a in enumerate(e.aliases):
            if grammar.alias_problem(a):
                out.append(Problem(base + ("aliases", j), grammar.alias_problem(a), None))
            if a in aliases:
                out.append(Problem(base + ("aliases", j), f"alias `{a}` is used by engines[{aliases[a]}] too",
                                   "each alias belongs to one engine"))
            if a in hosted_names:
                out.append(Problem(base + ("aliases", j), f"alias `{a}` is also the name of a hosted model",
                                   "rename one of them"))
            aliases.setdefault(a, i)
        if e.image.endswith(":latest") or ":" not in e.image.split("/")[-1]:
            out.append(Problem(base + ("image",), f"`image: {e.image}` is not pinned to a version",
                               f"pin a tag, e.g. {PINNED_IMAGE}"))
        for k in e.env:
            if not ENV_NAME_RE.match(k):
                out.append(Problem(base + ("env", k), f"`{grammar._show(k)}` is not an environment variable name",
                                   None))
            elif k in OWNED_ENV:
                out.append(Problem(base + ("env", k), f"`env: {k}` cannot be set in a profile", OWNED_ENV[k]))
        # GPUs of this engine
        egpus = list(e.gpus) if e.gpus is not None else (
            profile_gpus[: e.gpu_count] if profile_gpus is not None else list(range(e.gpu_count)))
        if e.gpus is not None:
            if len(set(e.gpus)) != len(e.gpus):
                out.append(Problem(base + ("gpus",), f"`gpus: {list(e.gpus)}` lists a GPU twice", None))
            if profile_gpus is not None:
                for g in e.gpus:
                    if g not in profile_gpus:
                        out.append(Problem(base + ("gpus",), f"GPU {g} is not in the profile's `gpus`",
                                           f"add it to gpus: {list(profile_gpus)} or pick one of those"))
            if len(e.gpus) != e.gpu_count:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"tensor_parallel_size {e.tensor_parallel_size} × pipeline_parallel_size "
                                   f"{e.pipeline_parallel_size} = {e.gpu_count}, but the engine has "
                                   f"{len(e.gpus)} GPUs", f"set tensor_parallel_size to a divisor of {len(e.gpus)} "
                                   "and list exactly that many gpus"))
        elif profile_gpus is not None and len(p.engines) == 1 and len(profile_gpus) != e.gpu_count:
            n = len(profile_gpus)
            divisors = [d for d in range(1, n + 1) if n % d == 0]
            if n % e.gpu_count != 0:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"tensor_parallel_size {e.tensor_parallel_size} does not divide the profile's "
                                   f"{n} GPUs", f"use one of {divisors}, or list the engine's own `gpus`"))
            else:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"tensor_parallel_size {e.tensor_parallel_size} uses {e.gpu_count} of the "
                                   f"profile's {n} GPUs", f"set tensor_parallel_size: {n // e.pipeline_parallel_size}"
                                   f" or list the engine's own `gpus`"))
        elif profile_gpus is not None and e.gpu_count > len(profile_gpus):
            out.append(Problem(base + ("tensor_parallel_size",),
                               f"the engine needs {e.gpu_count} GPUs, the profile has {len(profile_gpus)}", None))
        spec = spec_of_image(e.image)
        util = e.gpu_memory_utilization or default_of(spec, "gpu_memory_utilization") or 0.9
        for g in egpus:
            gpu_use[g] = gpu_use.get(g, 0) + util
        # choices
        v = spec.version
        _check_choice(out, base + ("kv_cache_dtype",), e.kv_cache_dtype, spec.kv_cache_dtypes, "KV cache dtype", v)
        _check_choice(out, base + ("quantization",), e.quantization, spec.quantization_methods,
                      "quantization method", v)
        _check_choice(out, base + ("dtype",), e.dtype, spec.dtypes, "dtype", v)
        _check_choice(out, base + ("tool_call_parser",), e.tool_call_parser, spec.tool_call_parsers,
                      "tool-call parser", v)
        _check_choice(out, base + ("reasoning_parser",), e.reasoning_parser, spec.reasoning_parsers,
                      "reasoning parser", v)
        if e.quantization in spec.deprecated_quantization and not e.option("allow_deprecated_quantization"):
            out.append(Problem(base + ("quantization",), f"quantization `{e.quantization}` is deprecated in vLLM "
                               f"{v}", "add allow_deprecated_quantization: true, or pick another"))
        if e.enable_auto_tool_choice and not e.tool_call_parser:
            out.append(Problem(base + ("enable_auto_tool_choice",),
                               "enable_auto_tool_choice needs a tool_call_parser (vLLM exits with "
                               "`--enable-auto-tool-choice requires --tool-call-parser`)",
                               "add tool_call_parser: hermes (Qwen2.5), qwen3_coder (Qwen3.x), llama3_json (Llama 3)"))
        if e.generation_config is not None and e.generation_config not in ("auto", "vllm") and not \
                e.generation_config.startswith("/"):
            out.append(Problem(base + ("generation_config",), f"`generation_config: {e.generation_config}`",
                               "use auto, vllm, or an absolute folder path inside the container"))
        _check_speculative(out, base, e, spec)
        for dest, value in e.vllm_options.items():
            _check_vllm_option(out, base + (dest,), dest, value, spec)
        if e.extra_args and not grammar.extra_args_problem(e.extra_args):
            _check_extra_args(out, base + ("extra_args",), e, spec)
        # model facts
        ckpt = catalog.lookup(e.model, use_hf_cache=False)
        if ckpt:
            arch = ckpt.arch
            if e.max_model_len and e.max_model_len > arch.max_position and \
                    e.env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN") != "1" and not e.option("hf_overrides"):
                out.append(Problem(base + ("max_model_len",),
                                   f"max_model_len {e.max_model_len} is longer than {e.model}'s "
                                   f"{arch.max_position} tokens (vLLM refuses to start)",
                                   f"lower it to {arch.max_position}, or set rope scaling with hf_overrides"))
            if arch.heads % e.tensor_parallel_size:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"{e.model} has {arch.heads} attention heads, which tensor_parallel_size "
                                   f"{e.tensor_parallel_size} does not divide",
                                   "use a tensor_parallel_size that divides " + str(arch.heads)))
            if e.quantization and ckpt.quant_method and not _quant_compatible(ckpt.quant_method, e.quantization):
                out.append(Problem(base + ("quantization",),
                                   f"{e.model} is a {ckpt.quant_method} checkpoint; quantization `{e.quantization}` "
                                   "does not match (vLLM refuses to start)",
                                   f"use quantization: {ckpt.quant_method} or leave it out"))
    for g, total in sorted(gpu_use.items()):
        if total > 1.0001:
            out.append(Problem(("engines",), f"engines on GPU {g} ask for gpu_memory_utilization {total:.2f} in all",
                               "the fractions of engines sharing a GPU must add up to at most 1.0"))
    _check_proxy(out, p, aliases)
    return out


def _quant_compatible(checkpoint: str, wanted: str) -> bool:
    if checkpoint == wanted:
        return True
    families = [{"awq", "awq_marlin", "moe_wna16"}, {"gptq", "gptq_marlin", "moe_wna16"}, {"fp8", "fbgemm_fp8"}]
    return any(checkpoint in f and wanted in f for f in families)


def _check_speculative(out: list, base: tuple, e: Engine, spec):
    sc = e.speculative_config
    if sc is None:
        return
    path = base + ("speculative_config",)
    for key in sc:
        if key not in spec.speculative_config_keys:
            near = _closest(key, spec.speculative_config_keys)
            out.append(Problem(path + (key,), f"`{key}` is not a speculative_config key",
                               f"did you mean `{near}`?" if near else None))
    method = sc.get("method")
    if method is not None:
        _check_choice(out, path + ("method",), method, spec.speculative_methods, "speculative method", spec.version)
    elif not sc.get("model"):
        out.append(Problem(path, "speculative_config needs a `method` (e.g. mtp, ngram, eagle3) or a draft `model`",
                           "for models with built-in MTP heads: {method: mtp, num_speculative_tokens: 2}"))
    n = sc.get("num_speculative_tokens")
    if n is None and method != "suffix":
        out.append(Problem(path, "speculative_config needs `num_speculative_tokens`", "e.g. num_speculative_tokens: 2"))
    elif n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        out.append(Problem(path + ("num_speculative_tokens",), f"`num_speculative_tokens: {n!r}` must be a whole "
                           "number ≥ 1", None))


def _engine_grammar(out: list, base: tuple, e: Engine):
    """Every engine value that reaches a rendered file or the command line, against grammar.py; the options the
    appliance owns (owned.py) refused in extra_args."""
    checks = [(("model",), grammar.model_id_problem(e.model)), (("image",), grammar.image_problem(e.image))]
    names = (e.served_model_name,) if isinstance(e.served_model_name, str) else (e.served_model_name or ())
    checks += [(("served_model_name",), grammar.model_id_problem(n, "served_model_name")) for n in names]
    checks += [(("env", k), grammar.text_problem(v, f"env.{k}")) for k, v in e.env.items()]
    checks.append((("extra_args",), grammar.extra_args_problem(e.extra_args)))
    for sub, problem in checks:
        if problem:
            out.append(Problem(base + sub, problem, None))
    if e.extra_args and not grammar.extra_args_problem(e.extra_args):
        parser = vllm_spec.build_serve_parser(version=spec_of_image(e.image).version)
        for dest, instead in owned_in_args(e.extra_args, parser):
            flag = "--" + dest.replace("_", "-")
            out.append(Problem(base + ("extra_args",), f"extra_args set `{flag}`, which the appliance owns", instead))


def _check_extra_args(out: list, path: tuple, e: Engine, spec):
    import contextlib
    import io

    parser = vllm_spec.build_serve_parser(version=spec.version)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(["model"] + list(e.extra_args))
    except SystemExit:
        last = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
        why = last[-1].split("error:", 1)[-1].strip() if last else "rejected"
        out.append(Problem(path, f"vLLM {spec.version} would reject extra_args {list(e.extra_args)}: {why}",
                           "fix or remove the flag (vLLM exits with code 2 on an unknown flag)"))


def _check_proxy(out: list, p: Profile, local_aliases: dict[str, int]):
    hosted = {}
    for i, h in enumerate(p.proxy.hosted):
        base = ("proxy", "hosted", i)
        if h.name in hosted:
            out.append(Problem(base + ("name",), f"two hosted models are called `{h.name}`", "rename one"))
        hosted[h.name] = h
        if not ENV_NAME_RE.match(h.api_key_env):
            looks_like_key = h.api_key_env.startswith(("sk-", "sk_")) or len(h.api_key_env) > 40
            out.append(Problem(base + ("api_key_env",),
                               "`api_key_env` must be the NAME of an environment variable" +
                               (" — this looks like a key itself; never put keys in a profile" if looks_like_key
                                else f", not `{h.api_key_env}`"),
                               "e.g. api_key_env: OPENAI_API_KEY, then `appliance keys set openai`"))
        if h.provider == "openai_compatible" and not h.api_base:
            out.append(Problem(base + ("api_base",), "an openai_compatible hosted model needs `api_base`",
                               "e.g. api_base: https://api.example.com/v1"))
        if h.api_base and not re.match(r"^https?://", h.api_base):
            out.append(Problem(base + ("api_base",), f"`api_base: {h.api_base}` is not an http(s) URL", None))
    targets = set(hosted) | set(local_aliases)
    for key in ("fallbacks", "context_window_fallbacks"):
        for alias, chain in getattr(p.proxy, key).items():
            path = ("proxy", key, alias)
            if alias not in local_aliases:
                near = _closest(alias, local_aliases)
                out.append(Problem(path, f"`{alias}` in proxy.{key} is not an alias of any engine",
                                   f"did you mean `{near}`?" if near else "use one of: " + ", ".join(local_aliases)))
            for j, target in enumerate(chain):
                if target not in targets:
                    near = _closest(target, targets)
                    out.append(Problem(path + (j,), f"fallback `{target}` is neither a hosted model nor an alias",
                                       f"did you mean `{near}`?" if near else "define it under proxy.hosted"))
                elif target == alias:
                    out.append(Problem(path + (j,), f"`{alias}` falls back to itself", "remove it from its own list"))
            if key == "context_window_fallbacks" and alias in local_aliases:
                engine = p.engines[local_aliases[alias]]
                local_ctx = engine.max_model_len
                for j, target in enumerate(chain):
                    h = hosted.get(target)
                    if h is None:
                        other = p.engines[local_aliases[target]] if target in local_aliases else None
                        window = other.max_model_len if other else None
                    else:
                        window = h.max_input_tokens
                    if window is None:
                        out.append(Problem(path + (j,), f"context fallback `{target}` has no known context window",
                                           "set max_input_tokens on the hosted model (or max_model_len on the engine)"))
                    elif local_ctx and window <= local_ctx:
                        out.append(Problem(path + (j,), f"context fallback `{target}` ({window} tokens) is not larger "
                                           f"than `{alias}` ({local_ctx} tokens)",
                                           "a context-window fallback must have a larger context"))
