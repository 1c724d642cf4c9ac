"""``dlfp-generate <run dir or checkpoint>``: text from a trained language model, from its
checkpoint alone (the model's constructor arguments and the tokenizer travel inside it).

    dlfp-generate outputs/lm/2026-11-29/10-00-00 --prompt "To be or not to" --new-tokens 200
    dlfp-generate run/checkpoints/last.pt --temperature 0.8 --top-p 0.95 --seed 3 --no-cache

Without ``--prompt`` it continues the three prompts of the run's ``lm.sample.prompts``. The
sampling flags have the ranges of the ``lm.sample`` keys they stand for (dlfp/config/lm.py); a
prompt's characters that the tokenizer has no token for are named in a warning, since the model
never sees them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from tokenizers import Tokenizer

from dlfp.config.checks import ToolParser, option_type
from dlfp.config.hardware import HardwareConfig
from dlfp.config.lm import SampleConfig
from dlfp.data.tokenizer import UNK_ID, generate_text
from dlfp.engine.checkpoint import load_trained
from dlfp.errors import DlfpError
from dlfp.models import rebuild_model

# flags that replace the run's lm.sample keys, read with those keys' types and ranges
SAMPLE_FLAGS = {"new_tokens": "tokens to sample per prompt", "temperature": "0: the most likely token",
                "top_k": "sample among the k most likely tokens (null: all)",
                "top_p": "... and the smallest set of mass p (null: no such limit)",
                "seed": "the sampling noise"}


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(prog="dlfp-generate", description="Sample text from a checkpoint of experiment=lm "
                        "(or lm_bench).")
    parser.add_argument("checkpoint", type=Path, help="a run directory of task lm or its checkpoints/last.pt")
    parser.add_argument("--prompt", action="append", help="a prompt (repeatable); default: the run's prompts")
    for name, says in SAMPLE_FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=option_type(SampleConfig, name),
                            default=argparse.SUPPRESS, help=f"{says} (default: the run's lm.sample.{name})")
    parser.add_argument("--no-cache", action="store_true", help="recompute every position each step")
    parser.add_argument("--threads", type=option_type(HardwareConfig, "threads"), default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        checkpoint = load_trained(args.checkpoint, "lm")
        model = rebuild_model(checkpoint)
        tokenizer = Tokenizer.from_str(checkpoint["task"]["tokenizer"]["json"])
    except DlfpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sample = json.loads(checkpoint["config"])["lm"]["sample"]
    sample.update({name: getattr(args, name) for name in SAMPLE_FLAGS if hasattr(args, name)})
    settings = SimpleNamespace(**sample)
    for prompt in args.prompt or sample["prompts"]:
        unknown = unknown_characters(tokenizer, prompt)
        if unknown:
            print(f"warning: the tokenizer has no token for {', '.join(map(repr, unknown))}: the prompt "
                  f"{prompt!r} goes to the model without them", file=sys.stderr)
        began = time.perf_counter()
        text = generate_text(model, tokenizer, prompt, settings, use_cache=not args.no_cache)
        seconds = time.perf_counter() - began
        print(f"--- {prompt}  ({settings.new_tokens} tokens in {seconds:.2f} s)\n{text}\n")
    return 0


def unknown_characters(tokenizer: Tokenizer, text: str) -> list[str]:
    """The characters of ``text`` that encode to the unknown token (and so vanish from the model's
    input and from the decoded text), each once, in order."""
    encoding = tokenizer.encode(text)
    return list(dict.fromkeys(ch for i, (start, end) in zip(encoding.ids, encoding.offsets) if i == UNK_ID
                              for ch in text[start:end]))


if __name__ == "__main__":
    sys.exit(main())
