"""pi0 checkpoints: seeded random init in the real naming (bf16, 777 tensors for 27/18/18
layers) and a loader that accepts the current and legacy layouts, infers dims from shapes and
reports every bad key in one error. Only safetensors: pickle files are refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from . import naming
from .config import GemmaConfig, Pi0Config

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


class CheckpointError(Exception):
    """The checkpoint cannot be used; the message lists every problem found."""


class PickleRefused(CheckpointError):
    pass


def _refuse_pickle(path: Path, why: str) -> PickleRefused:
    return PickleRefused(
        f"refusing to load {path}: {why}. Pickle checkpoints (.pt, .pth, .bin, .ckpt) can run "
        "arbitrary code when loaded, so pccscope-capture reads only safetensors; convert it "
        "once in a trusted environment (torch.load, then safetensors.torch.save_file)")


# ---- random init ------------------------------------------------------------------------------

def _init_std(name: str, shape: Tuple[int, ...], cfg: Pi0Config) -> Tuple[float, float]:
    """(mean, std) of the seeded normal init of one tensor.

    Chosen so that activations stay O(1) through every layer: linear weights ~ 1/√fan_in,
    LayerNorm gains ≈ 1, Gemma RMSNorm weights ≈ 0 (they act as 1 + w), embedding tables
    ~ 1/√width (× √width at lookup), small biases.
    """
    if name.endswith("position_embedding.weight"):
        return 0.0, 0.5
    if name in (naming.TIED_EMBEDDING, naming.EXPERT_LM_HEAD):
        return 0.0, 1.0 / math.sqrt(shape[1])
    if "layer_norm" in name or "post_layernorm" in name:
        return (1.0, 0.05) if name.endswith(".weight") else (0.0, 0.02)
    if "layernorm" in name or name.endswith("norm.weight"):
        return 0.0, 0.05  # Gemma RMSNorm, applied as (1 + w)
    if name.endswith(".bias"):
        return 0.0, 0.02
    fan_in = int(np.prod(shape[1:]))
    return 0.0, 1.0 / math.sqrt(fan_in)


def random_tensor(cfg: Pi0Config, name: str, shape: Tuple[int, ...], seed: int) -> np.ndarray:
    """Seeded f32 init of one checkpoint tensor. Each tensor has its own stream, seeded by
    (seed, crc32(name)), so tensors do not depend on each other or on their order."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    mean, std = _init_std(name, shape, cfg)
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= np.float32(std)
    x += np.float32(mean)
    return x


def make_checkpoint(cfg: Pi0Config, seed: int, out: os.PathLike, preset: str = "") -> Path:
    """Write a seeded random-init checkpoint in bf16 (the real file's dtype)."""
    import torch
    from safetensors.torch import save_file

    tensors = {name: torch.from_numpy(random_tensor(cfg, name, shape, seed)).to(torch.bfloat16)
               for name, shape in naming.expected_tensors(cfg).items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # One metadata key: safetensors stores the metadata map in hash order, so several keys
    # would make the file bytes vary from run to run.
    meta = {"pccscope": json.dumps({"producer": "pccscope-capture", "kind": "random-init",
                                    "preset": preset, "seed": seed, "config": cfg.to_dict()})}
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out


# ---- loading ----------------------------------------------------------------------------------

@dataclass
class StoredTensor:
    file: Path
    key: str           # name inside the file
    shape: Tuple[int, ...]
    dtype: str


@dataclass
class Loaded:
    """A validated checkpoint: f32 tensors by current name (the unused expert lm_head is not
    loaded), the config inferred from shapes, the naming tag, the stored dtype and count."""

    tensors: Dict[str, "object"]
    config: Pi0Config
    naming: str
    dtype: str
    count: int
    files: List[Path]


def _shard_files(path: Path) -> List[Path]:
    if path.is_dir():
        for cand in ("model.safetensors", "model.safetensors.index.json"):
            if (path / cand).exists():
                return _shard_files(path / cand)
        raise CheckpointError(f"{path} is a directory without model.safetensors "
                              "or model.safetensors.index.json")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.name.endswith(".index.json"):
        idx = json.loads(path.read_text())
        files = sorted(set(idx.get("weight_map", {}).values()))
        if not files:
            raise CheckpointError(f"{path}: empty weight_map")
        return [_check_safetensors(path.parent / f) for f in files]
    return [_check_safetensors(path)]


def _check_safetensors(path: Path) -> Path:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _refuse_pickle(path, f"a {path.suffix} file is a pickle")
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") + 8 <= size:
        return path
    if head[:4] == b"PK\x03\x04":
        raise _refuse_pickle(path, "it is a zip archive (the torch.save format)")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise _refuse_pickle(path, "it is a pickle stream")
    raise CheckpointError(f"{path} is not a safetensors file (bad header)")
    return path


def _scan(files: List[Path]):
    from safetensors import safe_open

    stored: Dict[str, StoredTensor] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            for key in h.keys():
                sl = h.get_slice(key)
                stored[key] = StoredTensor(f, key, tuple(int(d) for d in sl.get_shape()),
                                           str(sl.get_dtype()))
    return stored


def infer_config(shapes: Dict[str, Tuple[int, ...]], base: Pi0Config) -> Pi0Config:
    """Dims from tensor shapes; head counts (not visible in shapes) and the input sizes from
    `base`. A dim whose tensor is missing keeps the base value (the key is reported later)."""
    def dim(name: str, axis: int, default: int) -> int:
        sh = shapes.get(name)
        return sh[axis] if sh is not None and len(sh) > axis else default

    V, L, E = naming.VISION, naming.LANGUAGE, naming.EXPERT
    bs = base.siglip
    width = dim(f"{V}.embeddings.patch_embedding.weight", 0, bs.width)
    patch = dim(f"{V}.embeddings.patch_embedding.weight", 2, bs.patch)
    rows = dim(f"{V}.embeddings.position_embedding.weight", 0, bs.pos_grid ** 2)
    grid = int(round(math.sqrt(rows)))
    if grid * grid != rows:
        raise CheckpointError(f"position table has {rows} rows, not a square grid")
    sig = dataclasses.replace(
        bs, width=width, patch=patch, pos_grid=grid,
        layers=naming.count_layers(shapes, f"{V}.encoder") or bs.layers,
        mlp=dim(f"{V}.encoder.layers.0.mlp.fc1.weight", 0, bs.mlp),
        head_dim=width // bs.heads if width % bs.heads == 0 else bs.head_dim)

    def gemma(prefix: str, b: GemmaConfig, width_at: Tuple[str, int], vocab_name: str,
              vocab_default: int) -> GemmaConfig:
        q = dim(f"{prefix}.layers.0.self_attn.q_proj.weight", 0, b.heads * b.head_dim)
        hd = q // b.heads if q % b.heads == 0 else b.head_dim
        kv = dim(f"{prefix}.layers.0.self_attn.k_proj.weight", 0, b.kv_heads * hd)
        return dataclasses.replace(
            b, width=dim(width_at[0], width_at[1], b.width), head_dim=hd,
            kv_heads=kv // hd if kv % hd == 0 else b.kv_heads,
            layers=naming.count_layers(shapes, prefix) or b.layers,
            mlp=dim(f"{prefix}.layers.0.mlp.gate_proj.weight", 0, b.mlp),
            vocab=dim(vocab_name, 0, vocab_default))

    vl = gemma(L, base.vlm, (naming.TIED_EMBEDDING, 1), naming.TIED_EMBEDDING, base.vlm.vocab)
    # Without the (unused) expert lm_head, its vocab follows the VLM's.
    ex = gemma(E, base.expert, (f"{E}.layers.0.input_layernorm.weight", 0),
               naming.EXPERT_LM_HEAD, vl.vocab)
    return dataclasses.replace(
        base, siglip=sig, vlm=vl, expert=ex,
        state_dim=dim("state_proj.weight", 1, base.state_dim),
        action_dim=dim("action_in_proj.weight", 1, base.action_dim))


def load_checkpoint(path: os.PathLike, base: Pi0Config) -> Loaded:
    """Load and validate a pi0 checkpoint (safetensors, a sharded index, or a directory).

    Accepts the current LeRobot layout, the same with a leading `model.`, and the legacy
    layout; the tied embedding may be stored as `lm_head` (the file) or `embed_tokens` (a live
    state_dict); the unused expert lm_head may be absent. Raises CheckpointError listing every
    missing, unexpected, duplicate and misshapen key at once.
    """
    import torch
    from safetensors import safe_open

    path = Path(path)
    files = _shard_files(path)
    stored = _scan(files)

    current: Dict[str, StoredTensor] = {}
    tags: List[str] = []
    problems: List[str] = []
    for key, st in stored.items():
        name, tag = naming.to_current(key)
        tags.append(tag)
        if name in current:
            problems.append(f"duplicate: {key} and {current[name].key} both map to {name}")
            continue
        current[name] = st
    # The tied table: `lm_head` in the file; `embed_tokens` too (or only) in a live state_dict.
    alias = current.pop(naming.TIED_EMBEDDING_ALIAS, None)
    spare_alias = None
    if alias is not None:
        if naming.TIED_EMBEDDING in current:
            spare_alias = alias
        else:
            current[naming.TIED_EMBEDDING] = alias

    shapes = {k: v.shape for k, v in current.items()}
    try:
        cfg = infer_config(shapes, base)
        cfg.validate()
    except (CheckpointError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    expected = naming.expected_tensors(cfg)

    for name, shape in expected.items():
        st = current.get(name)
        if st is None:
            if name not in naming.OPTIONAL_TENSORS:
                problems.append(f"missing: {name} {list(shape)}")
        elif st.shape != shape:
            problems.append(f"misshapen: {st.key}: expected {list(shape)}, got {list(st.shape)}")
    if spare_alias is not None and spare_alias.shape != expected[naming.TIED_EMBEDDING]:
        problems.append(f"misshapen: {spare_alias.key}: expected "
                        f"{list(expected[naming.TIED_EMBEDDING])}, got {list(spare_alias.shape)}")
    for name, st in current.items():
        if name not in expected:
            problems.append(f"unexpected: {st.key}" + (f" (read as {name})" if name != st.key
                                                       else ""))
    dtypes = sorted({st.dtype for st in current.values()})
    bad_dtypes = [d for d in dtypes if d not in ("BF16", "F16", "F32")]
    if bad_dtypes:
        problems.append(f"unsupported dtypes: {', '.join(bad_dtypes)}")
    if problems:
        head = (f"checkpoint {path} does not match pi0 (naming {naming.naming_of(tags)}, "
                f"{len(stored)} tensors; dims inferred: siglip {cfg.siglip.width}x"
                f"{cfg.siglip.layers}, vlm {cfg.vlm.width}x{cfg.vlm.layers}, expert "
                f"{cfg.expert.width}x{cfg.expert.layers}): {len(problems)} problem(s)")
        raise CheckpointError(head + "\n  " + "\n  ".join(problems))

    tensors: Dict[str, torch.Tensor] = {}
    by_file: Dict[Path, List[Tuple[str, StoredTensor]]] = {}
    for name, st in current.items():
        if name not in naming.OPTIONAL_TENSORS:   # never read by pi0: not loaded
            by_file.setdefault(st.file, []).append((name, st))
    for f, items in by_file.items():
        with safe_open(str(f), framework="pt") as h:
            for name, st in items:
                tensors[name] = h.get_tensor(st.key).to(torch.float32).contiguous()
    return Loaded(tensors=tensors, config=cfg, naming=naming.naming_of(tags),
                  dtype=dtypes[0] if len(dtypes) == 1 else "mixed", count=len(stored),
                  files=files)
