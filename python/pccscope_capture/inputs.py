"""Seeded raw model inputs of a capture (goldens/README.md "Raw inputs"). numpy only."""

from __future__ import annotations

import zlib
from typing import Dict

import numpy as np

from .config import Pi0Config

BOS_ID = 2
PAD_ID = 0
INPUT_NAMES = ("images", "img_masks", "tokens", "lang_masks", "state", "noise", "time")


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"inputs.{name}".encode())])


def make_inputs(cfg: Pi0Config, seed: int) -> Dict[str, np.ndarray]:
    """images [C,3,H,W] U(−1,1); img_masks [1,C] all true; tokens [1,Ll] = BOS, random ids
    in [3, vocab), then pad id 0 (lang_masks false) after `lang_valid`; state [1,S] and
    noise [1,H,A] N(0,1); time [1] = 1.0. Each input has its own seeded stream."""
    c, s = cfg.cameras, cfg.siglip.image_size
    ll, lv = cfg.lang_tokens, cfg.lang_valid
    tokens = np.full((1, ll), PAD_ID, dtype=np.int64)
    tokens[0, 0] = BOS_ID
    tokens[0, 1:lv] = _rng(seed, "tokens").integers(3, cfg.vlm.vocab, size=lv - 1)
    return {
        "images": _rng(seed, "images").uniform(-1.0, 1.0, (c, 3, s, s)).astype(np.float32),
        "img_masks": np.ones((1, c), dtype=bool),
        "tokens": tokens,
        "lang_masks": (np.arange(ll) < lv)[None, :],
        "state": _rng(seed, "state").standard_normal((1, cfg.state_dim)).astype(np.float32),
        "noise": _rng(seed, "noise").standard_normal(
            (1, cfg.horizon, cfg.action_dim)).astype(np.float32),
        "time": np.array([1.0], dtype=np.float32),
    }
