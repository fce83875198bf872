#!/usr/bin/env python3
"""Times pccscope's fused metrics pass against a numpy port of tt-metal's ``comp_pcc``.

Both sides compare the same generated 16 M-element f32 pair (golden ~ N(0, 1), device = golden +
1e-3 * U(-1/2, 1/2), from a counter-based splitmix64 that ``examples/metrics_timing.rs``
reproduces bit for bit). Prints both medians and the same-run ratio
``ours vs numpy comp_pcc: N x``.

Usage (from anywhere; honours CARGO_TARGET_DIR):

    python3 bench/metrics_vs_numpy.py [--n 16777216] [--runs 5] [--rust-runs 21]

Exits 0 with a note when numpy is not installed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the machine
    print("numpy is not installed; skipping the comp_pcc comparison")
    sys.exit(0)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def uniform(i, k):
    """k-th uniform in [0, 1) of each element index in ``i`` (uint64 array): splitmix64."""
    with np.errstate(over="ignore"):
        z = (np.uint64(4) * i + np.uint64(k + 1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / float(1 << 53))


def pair(n):
    i = np.arange(n, dtype=np.uint64)
    g = ((uniform(i, 0) + uniform(i, 1) + uniform(i, 2) - 1.5) * 2.0).astype(np.float32)
    d = (g.astype(np.float64) + 1e-3 * (uniform(i, 3) - 0.5)).astype(np.float32)
    return g, d


def comp_pcc(golden, calculated, pcc=0.99):
    """tt-metal's comp_pcc (TT_NUMERICS.md section 6), numpy instead of torch."""
    golden = np.asarray(golden)
    calculated = np.asarray(calculated)
    if calculated.dtype != golden.dtype:
        calculated = calculated.astype(golden.dtype)
    g_nan, c_nan = np.isnan(golden), np.isnan(calculated)
    if g_nan.all() and c_nan.all():
        return True, 1.0
    if g_nan.all() or c_nan.all():
        return False, 0.0
    if bool(np.any(golden != 0)) != bool(np.any(calculated != 0)):
        return False, 0.0
    # NaN, +inf and -inf become 0 on both sides.
    golden = np.where(np.isfinite(golden), golden, 0).astype(golden.dtype)
    calculated = np.where(np.isfinite(calculated), calculated, 0).astype(calculated.dtype)
    if np.array_equal(golden, calculated):
        return True, 1.0
    golden = golden.astype(np.float32)
    calculated = calculated.astype(np.float32)
    cal_pcc = np.min(
        np.ma.corrcoef(
            np.ma.masked_invalid(np.squeeze(golden).flatten()),
            np.ma.masked_invalid(np.squeeze(calculated).flatten()),
        )
    )
    if isinstance(cal_pcc, np.ma.core.MaskedConstant):
        return True, 1.0
    return bool(cal_pcc >= pcc), float(cal_pcc)


def time_numpy(g, d, runs):
    times, value = [], None
    for _ in range(runs):
        t = time.perf_counter()
        _, value = comp_pcc(g, d)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), value


def time_ours(n, runs):
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "metrics_timing", "--", str(n), str(runs)]
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16 << 20, help="elements per tensor")
    ap.add_argument("--runs", type=int, default=5, help="numpy comp_pcc repetitions")
    ap.add_argument("--rust-runs", type=int, default=21, help="compare() repetitions")
    args = ap.parse_args()

    ours = time_ours(args.n, args.rust_runs)  # builds first; the binary times itself
    g, d = pair(args.n)
    np_median, np_min, np_pcc = time_numpy(g, d, args.runs)

    print(f"machine: {os.cpu_count()} CPUs, numpy {np.__version__}, fast path {ours['fast_path']}")
    print(f"n = {args.n} element pairs")
    print(f"numpy comp_pcc:     median {np_median:.4f} s (min {np_min:.4f} s, {args.runs} runs), pcc {np_pcc:.12f}")
    print(
        f"pccscope compare(): median {ours['median_s']:.4f} s (min {ours['min_s']:.4f} s, "
        f"{ours['runs']} runs), pcc {ours['pcc']:.12f}, "
        f"{args.n / ours['median_s'] / 1e9:.2f} G pairs/s"
    )
    if abs(ours["pcc"] - np_pcc) > 1e-6:
        print(f"warning: PCC differs by {abs(ours['pcc'] - np_pcc):.3e}")
    print(f"ours vs numpy comp_pcc: {np_median / ours['median_s']:.1f}x")


if __name__ == "__main__":
    main()
