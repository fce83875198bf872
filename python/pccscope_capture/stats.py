"""Per-record statistics of a capture (goldens/README.md, "stats"). numpy only."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bit, over `data`."""
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _MASK64
    return h


def f32_bytes(a: np.ndarray) -> bytes:
    """Little-endian f32 bytes, C order."""
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def tensor_hash(a: np.ndarray) -> str:
    return f"fnv1a64:{fnv1a64(f32_bytes(a)):016x}"


def _num(x: float) -> Optional[float]:
    return float(x) if np.isfinite(x) else None


def compute_stats(a: np.ndarray) -> Dict[str, Any]:
    """min, max, mean, population std and l2 over the finite values (f64 accumulation),
    NaN / Inf counts, and the FNV-1a hash of the f32 bytes.

    With no finite value min/max/mean/std are null and l2 is 0.
    """
    x = np.asarray(a, dtype=np.float32)
    flat = x.reshape(-1)
    nan = int(np.isnan(flat).sum())
    inf = int(np.isinf(flat).sum())
    finite = flat[np.isfinite(flat)].astype(np.float64)
    if finite.size:
        mean = finite.mean()
        out = {
            "min": _num(finite.min()),
            "max": _num(finite.max()),
            "mean": _num(mean),
            "std": _num(np.sqrt(np.mean((finite - mean) ** 2))),
            "l2": _num(np.sqrt(np.sum(finite * finite))),
        }
    else:
        out = {"min": None, "max": None, "mean": None, "std": None, "l2": 0.0}
    out["nan"] = nan
    out["inf"] = inf
    out["hash"] = tensor_hash(x)
    return out
