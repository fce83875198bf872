"""Shared test helpers (numpy only)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Dict

import numpy as np


def pcc(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b)))


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def safetensors_header(path: Path) -> Dict[str, dict]:
    """The header of a safetensors file (name -> {dtype, shape, data_offsets}), no metadata.
    Read directly so bf16 files need no torch."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header


def report(label: str, **numbers) -> None:
    """Printed with `pytest -s`: the measured numbers of a comparison."""
    def fmt(k, v):
        if isinstance(v, float):
            return f"{k}={v:.12f}" if k.startswith("pcc") else f"{k}={v:.3e}"
        return f"{k}={v}"
    body = ", ".join(fmt(k, v) for k, v in numbers.items())
    print(f"\n[measured] {label}: {body}")
