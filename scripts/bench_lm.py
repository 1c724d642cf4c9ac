"""Validation bits per character of ``experiment=lm_bench`` against wall time, and the KV cache's
generation speed-up, on one fixed thread count.

    DLFP_DATA=/path/to/data .venv/bin/python scripts/bench_lm.py [--threads 1] [--out DIR] \
        [--config NAME "override ..."]... [--device cpu|cuda]

Each config is one run of the experiment in a subprocess (the lr schedule spans its budget), one
after the other, with ``train.record_seconds=true``: every evaluation record carries the wall
seconds since training began (evaluations included), so the table is the curve of bits per
character (on the first ``lm.eval_tokens`` validation tokens) against time. The last line of a run
is its score on the whole validation text. Then the trained model generates ``--generate-tokens``
tokens after a prompt with and without the KV cache (batch 1, same seed: the same tokens) and the
ratio of the two times is printed. The load average before and after each run says whether
anything else was running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BASELINE = "nanoGPT baby GPT (char, 4x128, block 64, batch 12, 2000 iters, 1 thread): 2.72 bpc in 276 s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_lm"), help="run folders and caches")
    parser.add_argument("--config", nargs=2, action="append", metavar=("NAME", "OVERRIDES"),
                        help="a named run with space-separated overrides; default: lm_bench as shipped")
    parser.add_argument("--generate-tokens", type=int, default=48,
                        help="tokens to generate; keep prompt + these within the model's context (the cache "
                        "is dropped once the window slides: positions shift)")
    args = parser.parse_args()
    if not os.environ.get("DLFP_DATA"):
        sys.exit("set DLFP_DATA to the folder that holds text/shakespeare.txt")
    env = {**os.environ, "RAYON_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    print(f"experiment=lm_bench, device {args.device}, hardware.threads {args.threads}, "
          f"data {os.environ['DLFP_DATA']}\nbaseline: {BASELINE}", flush=True)
    for name, overrides in args.config or [("as_shipped", "")]:
        run_dir = args.out / name
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlfp.train", "experiment=lm_bench", f"hardware={args.device}",
                        f"hardware.threads={args.threads}", "train.record_seconds=true",
                        f"paths.cache_dir={args.out / 'cache'}",
                        f"hydra.run.dir={run_dir}", *overrides.split()],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        process = time.perf_counter() - began
        summary = json.loads((run_dir / "summary.json").read_text())
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        print(f"\n[{name}] {overrides or '(as shipped)'}")
        print(f"{'step':>6} {'seconds':>8} {'val bpc':>8}  (first lm.eval_tokens validation tokens)")
        for r in records:
            if r["split"] == "val":
                print(f"{r['step']:>6} {r['seconds']:>8.1f} {r['bpc']:>8.4f}")
        m = summary["metrics"]
        print(f"whole validation text: {m['val/bpc']:.4f} bpc ({m['val/loss']:.4f} nats per token, "
              f"{m['val/tokens']:.0f} tokens, {m['val/chars']:.0f} characters); training "
              f"{summary['timings']['train_seconds']:.1f} s, "
              f"{summary['timings'].get('tokens_per_second', float('nan')):.0f} tokens/s; "
              f"process {process:.0f} s; load {load_before:.2f} -> {os.getloadavg()[0]:.2f}",
              flush=True)
        cached, uncached = (generation_seconds(run_dir, args.generate_tokens, cache, args.threads, env)
                            for cache in (True, False))
        print(f"generation of {args.generate_tokens} tokens: {uncached:.2f} s without the KV cache, "
              f"{cached:.2f} s with it: {uncached / cached:.2f}x", flush=True)


def generation_seconds(run_dir: Path, tokens: int, cache: bool, threads: int, env: dict) -> float:
    """Seconds ``dlfp-generate`` reports for one prompt (the model's time, not the start-up)."""
    out = subprocess.run([sys.executable, "-m", "dlfp.generate", str(run_dir), "--prompt", "To be or not to",
                          "--new-tokens", str(tokens), "--threads", str(threads), "--seed", "0",
                          *([] if cache else ["--no-cache"])],
                         check=True, capture_output=True, text=True, env=env).stdout
    header = out.splitlines()[0]  # "--- <prompt>  (N tokens in S s)"
    return float(header.rsplit(" in ", 1)[1].split(" s)")[0])


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"\nbenchmark wall time {time.time() - started:.0f} s")
