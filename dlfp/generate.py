"""``dlfp-generate <run dir or checkpoint>``: text from a trained language model, from its
checkpoint alone (the model's constructor arguments and the tokenizer travel inside it).

    dlfp-generate outputs/lm/2026-11-29/10-00-00 --prompt "To be or not to" --new-tokens 200
    dlfp-generate run/checkpoints/last.pt --temperature 0.8 --top-p 0.95 --seed 3 --no-cache

Without ``--prompt`` it continues the three prompts of the run's ``lm.sample.prompts``.
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

from dlfp.engine.checkpoint import load_trained
from dlfp.errors import DlfpError
from dlfp.models import rebuild_model
from dlfp.tasks.lm import generate_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlfp-generate", description="Sample text from a checkpoint "
                                     "of experiment=lm (or lm_bench).")
    parser.add_argument("checkpoint", type=Path, help="a run directory of task lm or its checkpoints/last.pt")
    parser.add_argument("--prompt", action="append", help="a prompt (repeatable); default: the run's prompts")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens to sample per prompt")
    parser.add_argument("--temperature", type=float, default=None, help="0: the most likely token")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="... and the smallest set of mass p")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-cache", action="store_true", help="recompute every position each step")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        checkpoint = load_trained(args.checkpoint, "lm")
        model = rebuild_model(checkpoint)
        tokenizer = Tokenizer.from_str(str(checkpoint["task"]["tokenizer"]["json"]))
    except DlfpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sample = json.loads(checkpoint["config"])["lm"]["sample"]
    chosen = {"new_tokens": args.new_tokens, "temperature": args.temperature, "top_k": args.top_k,
              "top_p": args.top_p, "seed": args.seed}
    sample.update({k: v for k, v in chosen.items() if v is not None})
    settings = SimpleNamespace(**sample, use_cache=not args.no_cache)
    for prompt in args.prompt or sample["prompts"]:
        began = time.perf_counter()
        text = generate_text(model, tokenizer, prompt, settings)
        seconds = time.perf_counter() - began
        print(f"--- {prompt}  ({settings.new_tokens} tokens in {seconds:.2f} s)\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
