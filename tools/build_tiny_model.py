#!/usr/bin/env python3
"""Build the tiny test model that the real vLLM serves: `python tools/build_tiny_model.py OUT_DIR`.

Why: no weights can be downloaded on the machines the appliance is tested on (no hub), yet the real engine needs a
model. A 2-layer Qwen2 with random weights is enough — the tests exercise the engine's plumbing (startup, HTTP,
metrics, drain, failures), not the quality of its text. Its output is random text.

Deterministic: fixed seed, a byte-level BPE tokenizer trained on a fixed, sorted list of this Python's own
stdlib sources, and save paths that write no timestamps — two builds with the same Python, torch, transformers
and tokenizers are byte-identical (tests/real/test_tiny_model.py checks the hashes). Run it with the
`.venv-vllm` interpreter (it has torch, transformers and tokenizers); nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from pathlib import Path

SEED = 1234
VOCAB = 2048
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# The ChatML template Qwen2 models use (what vLLM's chat endpoint renders prompts with).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + (message['content'] if message['content'] is string else '') "
    "+ '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Fixed training corpus: these stdlib modules, in this order. A fixed list (not a directory walk) keeps the
# tokenizer independent of whatever else is installed next to the stdlib.
CORPUS = sorted((
    "abc.py", "argparse.py", "ast.py", "base64.py", "bisect.py", "calendar.py", "collections/__init__.py",
    "configparser.py", "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "datetime.py", "decimal.py",
    "difflib.py", "enum.py", "fractions.py", "functools.py", "gettext.py", "heapq.py", "inspect.py",
    "ipaddress.py", "json/__init__.py", "json/decoder.py", "json/encoder.py", "logging/__init__.py", "pathlib.py",
    "pprint.py", "queue.py", "random.py", "shlex.py", "shutil.py", "statistics.py", "string.py", "subprocess.py",
    "tempfile.py", "textwrap.py", "threading.py", "typing.py", "uuid.py", "weakref.py", "zipfile.py",
))


def corpus_files() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [stdlib / name for name in CORPUS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"build_tiny_model: stdlib sources missing: {', '.join(missing)}")
    return [str(f) for f in files]


def build_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train(corpus_files(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                   model_max_length=4096, chat_template=CHAT_TEMPLATE)
    fast.save_pretrained(str(out))
    return fast


def build_model(out: Path, eos_id: int, pad_id: int) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(SEED)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id,
                         torch_dtype="bfloat16")
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.do_sample = False
    model.save_pretrained(str(out), safe_serialization=True)


def digest(out: Path) -> str:
    """One hash over the files that make the model (name + content), for the byte-identity test and the stamp."""
    h = hashlib.sha256()
    for name in sorted(p.name for p in out.iterdir() if p.is_file()):
        h.update(name.encode() + b"\0" + (out / name).read_bytes() + b"\0")
    return h.hexdigest()


def build(out: Path) -> str:
    """Build into a fresh sibling directory, then swap it in: an engine or a test reading the model while `make`
    rebuilds it never sees a half-written directory (a rebuild once made a running test suite skip)."""
    import shutil

    tmp = out.with_name(f".{out.name}.build-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fast = build_tokenizer(tmp)
    if len(fast) != VOCAB:
        raise SystemExit(f"build_tiny_model: the tokenizer has {len(fast)} tokens, the model expects {VOCAB}")
    build_model(tmp, fast.convert_tokens_to_ids("<|im_end|>"), fast.convert_tokens_to_ids("<|endoftext|>"))
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return digest(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: build_tiny_model.py OUT_DIR", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(argv[0]).resolve()
    print(f"{build(out)}  {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
