"""Per-record statistics of a capture (goldens/README.md, "stats"). numpy only."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a64_bytewise(data: bytes, h: int = FNV_OFFSET) -> int:
    """FNV-1a, 64 bit, over `data`, one byte at a time (the definition)."""
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _MASK64
    return h


# Below this many bytes the byte loop is cheaper than the vectorised path's fixed costs.
_VECTOR_MIN = 4096
_CHUNK = 1 << 20
_ONES = np.uint64(_MASK64)
_POWERS: Dict[int, np.ndarray] = {}


def _prefix_xor(bits: np.ndarray) -> np.ndarray:
    """Inclusive prefix XOR of a 0/1 uint8 array: bits packed 64 to a word, a shift-XOR scan
    inside each word, then each word flipped by the parity of all words before it."""
    n = bits.size
    pad = (-n) % 64
    if pad:
        bits = np.concatenate([bits, np.zeros(pad, np.uint8)])
    w = np.packbits(bits, bitorder="little").view("<u8").copy()
    for s in (1, 2, 4, 8, 16, 32):
        w ^= w << np.uint64(s)
    parity = np.bitwise_xor.accumulate((w >> np.uint64(63)) & np.uint64(1))
    carry = np.zeros_like(parity)
    carry[1:] = parity[:-1]
    w ^= carry * _ONES
    return np.unpackbits(w.view(np.uint8), bitorder="little")[:n]


def _powers(n: int) -> np.ndarray:
    """P^n, P^(n-1), …, P^1 mod 2^64 (cached per chunk length)."""
    p = _POWERS.get(n)
    if p is None:
        p = np.multiply.accumulate(np.full(n, FNV_PRIME, np.uint64))[::-1].copy()
        if len(_POWERS) < 8:
            _POWERS[n] = p
    return p


def _fnv1a64_chunk(b: np.ndarray, h: int) -> int:
    """FNV-1a over the bytes `b` from state `h`, vectorised (numpy, bit-identical).

    With l_i the low byte of the state before byte i, the XOR changes only that byte:
    h_i ^ b_i = h_i + δ_i with δ_i = (l_i ^ b_i) − l_i, so h_n = h·Pⁿ + Σ δ_i·P^(n−i) mod 2⁶⁴.
    The low bytes follow l_(i+1) = (l_i ^ b_i)·P mod 2⁸; as P is odd, bit k of that product
    is bit k of l_i ^ b_i XOR a function of the lower bits only, so bit k of every l_i is a
    prefix XOR once bits 0…k−1 are known: eight vector passes."""
    n = b.size
    low = np.zeros(n, np.uint8)
    p0 = np.uint8(FNV_PRIME & 0xFF)
    l0 = h & 0xFF
    for k in range(8):
        kk = np.uint8(k)
        below = (low ^ b) & np.uint8((1 << k) - 1)
        step = (((below * p0) >> kk) ^ (b >> kk)) & np.uint8(1)
        bit = np.uint8((l0 >> k) & 1)
        low[0] |= bit << kk
        low[1:] |= (_prefix_xor(step)[:-1] ^ bit) << kk
    delta = ((low ^ b).astype(np.int64) - low).astype(np.uint64)
    total = int(np.sum(delta * _powers(n), dtype=np.uint64))
    return (h * pow(FNV_PRIME, n, 1 << 64) + total) & _MASK64


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bit, over `data` (bit-identical to `fnv1a64_bytewise`; long inputs take a
    vectorised numpy path, several times faster than the byte loop)."""
    if len(data) < _VECTOR_MIN:
        return fnv1a64_bytewise(data)
    b_all = np.frombuffer(data, np.uint8)
    h = FNV_OFFSET
    for start in range(0, b_all.size, _CHUNK):
        h = _fnv1a64_chunk(b_all[start:start + _CHUNK], h)
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
