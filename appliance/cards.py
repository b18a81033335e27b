"""Facts about common GPUs: memory as NVML reports it, memory bandwidth, power limits.

Stdlib only: the fit check uses it for `--gpu NAME`, and the simulated rig (which runs inside a bare python
image) uses it for its physics. Memory is what `nvmlDeviceGetMemoryInfo().total` reports (a little under the
marketing number); `visible` is what CUDA itself reports as the total (cudaMemGetInfo, the number vLLM
multiplies by gpu_memory_utilization), read from vLLM's "Free memory on device (free/total GiB)" startup lines
where a published log shows it, else None (then NVML total − 0.5 GiB is assumed). Power limits are the board
defaults of the reference cards.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class Card:
    key: str  # short name used on the command line: "3090", "4090", "a100-80"
    name: str  # what NVML's nvmlDeviceGetName returns
    memory_bytes: int
    bandwidth_gbps: float  # memory bandwidth, GB/s
    power_default_w: int
    power_min_w: int
    power_max_w: int
    idle_w: int  # typical idle draw with a model loaded
    arch: str  # ampere, ada, blackwell, hopper
    visible_bytes: int | None = None  # CUDA's total (cudaMemGetInfo), when a published log shows it

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    @property
    def native_fp8(self) -> bool:
        """FP8 tensor cores (Ada, Hopper, Blackwell). Ampere runs FP8 weights weight-only (Marlin) and FP8 KV."""
        return self.arch in ("ada", "hopper", "blackwell")


def _c(key, name, mib, bw, default_w, min_w, max_w, idle_w, arch, visible_gib: float | None = None) -> Card:
    return Card(key, name, mib * MIB, bw, default_w, min_w, max_w, idle_w, arch,
                int(visible_gib * GIB) if visible_gib else None)


CARDS: dict[str, Card] = {
    c.key: c
    for c in (
        _c("3060", "NVIDIA GeForce RTX 3060", 12288, 360, 170, 100, 170, 15, "ampere"),
        _c("3090", "NVIDIA GeForce RTX 3090", 24576, 936, 350, 100, 350, 22, "ampere", 23.56),
        _c("3090-ti", "NVIDIA GeForce RTX 3090 Ti", 24564, 1008, 450, 100, 450, 25, "ampere"),
        _c("4060-ti-16", "NVIDIA GeForce RTX 4060 Ti", 16380, 288, 165, 100, 165, 10, "ada"),
        _c("4080", "NVIDIA GeForce RTX 4080", 16376, 716, 320, 150, 320, 12, "ada", 15.99),
        _c("4090", "NVIDIA GeForce RTX 4090", 24564, 1008, 450, 150, 450, 25, "ada", 23.52),
        _c("5090", "NVIDIA GeForce RTX 5090", 32607, 1792, 575, 400, 575, 30, "blackwell", 31.36),
        _c("a4000", "NVIDIA RTX A4000", 16376, 448, 140, 100, 140, 12, "ampere"),
        _c("l4", "NVIDIA L4", 23034, 300, 72, 40, 72, 16, "ada", 22.05),
        _c("l40s", "NVIDIA L40S", 46068, 864, 350, 100, 350, 35, "ada", 44.42),
        _c("a100-40", "NVIDIA A100-SXM4-40GB", 40960, 1555, 400, 100, 400, 50, "ampere", 39.49),
        _c("a100-80", "NVIDIA A100-SXM4-80GB", 81920, 2039, 400, 100, 400, 55, "ampere", 79.25),
        _c("h100-80", "NVIDIA H100 80GB HBM3", 81559, 3350, 700, 200, 700, 70, "hopper", 79.18),
        _c("h200", "NVIDIA H200", 143771, 4800, 700, 200, 700, 75, "hopper", 139.81),
    )
}

_ALIASES = {
    "rtx3060": "3060",
    "rtx3090": "3090",
    "3090ti": "3090-ti",
    "rtx3090ti": "3090-ti",
    "4060ti": "4060-ti-16",
    "4060-ti": "4060-ti-16",
    "rtx4080": "4080",
    "rtx4090": "4090",
    "rtx5090": "5090",
    "rtxa4000": "a4000",
    "nvidial4": "l4",
    "a100": "a100-80",
    "a10040": "a100-40",
    "a100-40gb": "a100-40",
    "a10080": "a100-80",
    "a100-80gb": "a100-80",
    "h100": "h100-80",
    "h10080": "h100-80",
    "h200-141": "h200",
    "h200141": "h200",
}


def normalize(text: str) -> str:
    return text.strip().lower().replace(" ", "").replace("_", "-")


def lookup(text: str) -> Card | None:
    """A card by short name (`4090`, `rtx 4090`, `A100 80`, `h200`) or by its NVML name; None if unknown."""
    key = normalize(text)
    if key in CARDS:
        return CARDS[key]
    compact = key.replace("-", "")
    for cand in (key, compact):
        if cand in _ALIASES:
            return CARDS[_ALIASES[cand]]
    for card in CARDS.values():
        if normalize(card.name) == key:
            return card
    return None


def by_nvml_name(name: str) -> Card | None:
    """Best match for a name NVML reports (exact first, then the longest key contained in it)."""
    exact = lookup(name)
    if exact:
        return exact
    low = name.lower()
    best = None
    for card in CARDS.values():
        if card.key.replace("-", " ") in low or card.key in low:
            if best is None or len(card.key) > len(best.key):
                best = card
    return best


PUBLISHED = "card table (a published vLLM log of this card)"


def visible_bytes(name: str, nvml_bytes: int) -> tuple[int, str]:
    """(bytes CUDA reports as total, how it is known) for a GPU NVML names `name` with `nvml_bytes`:
    PUBLISHED (the card table, read from a published vLLM log of that card: not measured here), else
    'estimated' (NVML − 0.5 GiB, the gap on measured cards ranges 0.44–0.75 GiB)."""
    card = by_nvml_name(name) if name else None
    if card and card.visible_bytes and abs(card.memory_bytes - nvml_bytes) <= 256 * MIB:
        return card.visible_bytes, PUBLISHED
    return max(0, nvml_bytes - GIB // 2), "estimated"


def nvlink(name: str) -> bool:
    """Whether GPUs of this name are normally joined by NVLink/NVSwitch (SXM and HBM data-centre parts), which
    makes vLLM's tensor-parallel NCCL buffers larger; PCIe cards (GeForce, L4/L40S, RTX A/Ada) are not."""
    up = name.upper()
    return any(k in up for k in ("SXM", "HBM3", "H200", "H100 80GB", "B200", "B100", "GB200", "GH200"))
