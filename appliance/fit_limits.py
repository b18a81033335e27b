"""Pure: the known limits of the fit check's memory model that apply to one model, in words an owner can act on.

The calibration (tests/calibration, README "The fit check") is exact for plain decoders; four kinds of model are
outside what it measured, and a "how sure" that only listed estimated inputs would sound surer than it is:
- sliding-window layers (Gemma 2/3, EXAONE 4, any config with sliding_attention layers): the KV tokens match what
  vLLM allocates, but a request only holds the window in those layers, so vLLM serves more long requests at once
  than tokens ÷ max_model_len — the concurrency shown is a floor;
- hybrid / linear-attention layers (Mamba, Gated DeltaNet: Qwen3.5, Qwen3-Next): their per-sequence state and
  vLLM's hybrid allocator are not modelled beyond a fixed state per sequence;
- multimodal models (a vision or audio tower): vLLM profiles the encoder at start, which is not counted; the two
  published multimodal starts in the calibration set missed by −9 % and +125 % of KV tokens;
- mixture of experts: the expert layers' activation peak is approximated from the dense formula.
Each limit is one short line (the text's "how sure" names them, --json has them in `notes`).
"""

from __future__ import annotations

SLIDING_FAMILIES = ("gemma2", "gemma3", "exaone4", "cohere2")


def known_limits(arch) -> list[str]:
    """The limits of the memory model that apply to `arch` (appliance.catalog.Arch), each one line."""
    limits = []
    if arch.sliding_layers or arch.family.startswith(SLIDING_FAMILIES):
        limits.append("sliding-window layers: the concurrency count is conservative — those layers keep only the "
                      "window, so vLLM may hold more long requests at once than shown")
    if arch.kv_layers < arch.layers or arch.state_bytes_per_seq:
        limits.append("hybrid / linear-attention layers: not modelled beyond a fixed state per sequence; the KV "
                      "figures are rough")
    if arch.multimodal:
        limits.append("multimodal: vLLM's profiling of the vision/audio encoder at start is not counted "
                      "(published starts missed by −9 % and +125 % of KV tokens)")
    if arch.experts:
        limits.append("mixture of experts: the activation memory of the expert layers is approximated")
    return limits


def label(limit: str) -> str:
    """The limit's name, for the one-line "how sure" (the text before the colon)."""
    return limit.split(":", 1)[0]
