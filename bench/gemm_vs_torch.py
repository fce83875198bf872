#!/usr/bin/env python3
"""Same-run GEMM throughput: pccscope's cpu `linear` vs torch at one shape.

Alternates rounds of our timing example (`cargo run --release --example gemm_timing`) and of
torch (`torch.matmul(x, w.t())`, or `F.linear(x, w, b)` with --bias) on the same thread count,
so both see the same machine load, then prints the medians over all runs and the ratio
"ours/torch throughput". Without torch it reports ours only.

    python3 bench/gemm_vs_torch.py [--threads N] [--runs 10] [--rounds 3] [--m 729 --k 1152 --n 4304] [--bias]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ours(a: argparse.Namespace) -> list[float]:
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "gemm_timing", "--",
           "--threads", str(a.threads), "--runs", str(a.runs), "--warmup", "3",
           "--m", str(a.m), "--k", str(a.k), "--n", str(a.n)]
    if a.bias:
        cmd.append("--bias")
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    times = [float(line.split(":")[1]) for line in out.splitlines()
             if line.startswith("run_seconds:")]
    if not times:
        sys.exit(f"gemm_timing printed no run_seconds lines:\n{out}")
    return times


def theirs(a: argparse.Namespace, torch) -> list[float]:
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.m, a.k, generator=g)
    w = torch.randn(a.n, a.k, generator=g)
    b = torch.randn(a.n, generator=g)
    if a.bias:
        f = lambda: torch.nn.functional.linear(x, w, b)  # noqa: E731
    else:
        f = lambda: torch.matmul(x, w.t())  # noqa: E731
    for _ in range(3):
        f()
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--runs", type=int, default=10, help="timed runs per round and side")
    p.add_argument("--rounds", type=int, default=3, help="alternating ours/torch rounds")
    p.add_argument("--m", type=int, default=729)
    p.add_argument("--k", type=int, default=1152)
    p.add_argument("--n", type=int, default=4304)
    p.add_argument("--bias", action="store_true", help="time linear with bias (F.linear)")
    a = p.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "gemm_timing"],
                   cwd=ROOT, check=True)
    flops = 2.0 * a.m * a.k * a.n
    mine: list[float] = []
    ref: list[float] = []
    for _ in range(a.rounds):
        mine += ours(a)
        if torch is not None:
            ref += theirs(a, torch)
    what = "linear+bias" if a.bias else "matmul"
    print(f"shape [{a.m}x{a.k}]·[{a.k}x{a.n}] {what}, threads {a.threads}, "
          f"{len(mine)} runs each")
    mo = statistics.median(mine)
    print(f"ours : median {mo * 1e3:8.2f} ms  {flops / mo / 1e9:7.1f} GFLOP/s  "
          f"(min {min(mine) * 1e3:.2f} ms)")
    if torch is None:
        print("torch is not installed: no ratio")
        return
    mt = statistics.median(ref)
    print(f"torch: median {mt * 1e3:8.2f} ms  {flops / mt / 1e9:7.1f} GFLOP/s  "
          f"(min {min(ref) * 1e3:.2f} ms, torch {torch.__version__})")
    print(f"ours/torch throughput: {mt / mo:.3f}")


if __name__ == "__main__":
    main()
