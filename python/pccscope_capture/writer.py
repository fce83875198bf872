"""Capture writer (`pccscope.capture/1`, goldens/README.md "Format"). numpy + safetensors only,
so external producers (e.g. a TT-NN program hooking its ops) can write captures without torch.

Usage::

    w = CaptureWriter(out_dir, producer={...}, model="pi0", preset="tiny", config=cfg_dict,
                      checkpoint={...})
    w.add_input("images", images_np)
    w.add_module(ModuleRecord("siglip", ["images"], ["siglip.post_ln"], ops=[OpRecord(...), ...]))
    w.write()

A record is stored in its module's shard `<module>.safetensors` under its own name, unless an
earlier record (or raw input) holds byte-identical data of the same dtype and shape: then it
points at that tensor. A record with `store=False` (or no data) is stats-only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .stats import compute_stats

SCHEMA = "pccscope.capture/1"
INPUTS_SHARD = "inputs.safetensors"

_DTYPE_NAMES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("bool"): "BOOL",
                np.dtype("int32"): "I32", np.dtype("float16"): "F16", np.dtype("uint32"): "U32"}


class CaptureError(Exception):
    """A capture could not be written (bad name, conflicting data, bad path)."""


def dtype_name(a: np.ndarray) -> str:
    try:
        return _DTYPE_NAMES[a.dtype]
    except KeyError:
        raise CaptureError(f"unsupported tensor dtype {a.dtype}") from None


@dataclass
class OpRecord:
    """One op output. `data` is the f32 value, or None for a stats-only record."""

    name: str
    kind: str
    attrs: Dict[str, Any]
    inputs: List[str]
    params: List[str]
    shape: Tuple[int, ...]
    data: Optional[np.ndarray] = None
    store: bool = True
    dtype: str = "F32"
    stats: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def ensure_stats(self) -> Dict[str, Any]:
        if self.stats is None:
            if self.data is None:
                raise CaptureError(f"op {self.name}: no data and no stats")
            self.stats = compute_stats(self.data)
        return self.stats


@dataclass
class ModuleRecord:
    id: str
    inputs: List[str]
    outputs: List[str]
    ops: List[OpRecord]


def check_relative(path: str) -> str:
    p = Path(path)
    if p.is_absolute() or ".." in p.parts or path.startswith(("/", "\\")):
        raise CaptureError(f"shard path {path!r} must be relative and stay inside the capture")
    return path


class CaptureWriter:
    def __init__(self, out_dir: os.PathLike, *, producer: Dict[str, Any], model: str,
                 preset: str, config: Dict[str, Any], checkpoint: Optional[Dict[str, Any]]):
        self.out_dir = Path(out_dir)
        self.header = {"schema": SCHEMA, "producer": producer, "model": model, "preset": preset,
                       "config": config, "checkpoint": checkpoint}
        self.inputs: List[Tuple[str, np.ndarray]] = []
        self.modules: List[ModuleRecord] = []

    def add_input(self, name: str, array: np.ndarray) -> None:
        a = np.ascontiguousarray(array)
        dtype_name(a)
        if any(n == name for n, _ in self.inputs):
            raise CaptureError(f"input {name!r} added twice")
        self.inputs.append((name, a))

    def add_module(self, module: ModuleRecord) -> None:
        if any(m.id == module.id for m in self.modules):
            raise CaptureError(f"module {module.id!r} added twice")
        self.modules.append(module)

    def write(self) -> Path:
        from safetensors.numpy import save_file

        self.out_dir.mkdir(parents=True, exist_ok=True)
        # (dtype, shape, hash) -> [(bytes, file, tensor)]
        stored: Dict[Tuple[str, Tuple[int, ...], str], List[Tuple[bytes, str, str]]] = {}
        # name -> (file, tensor, hash): the same name must always mean the same data
        by_name: Dict[str, Tuple[Optional[str], Optional[str], str]] = {}

        def lookup(dt: str, shape: Tuple[int, ...], h: str, raw: bytes):
            for b, f, t in stored.get((dt, shape, h), []):
                if b == raw:
                    return f, t
            return None

        inputs_json = []
        input_tensors: Dict[str, np.ndarray] = {}
        for name, a in self.inputs:
            dt = dtype_name(a)
            raw = a.tobytes()
            h = compute_stats(a.astype(np.float32))["hash"] if dt == "F32" else f"raw:{len(raw)}"
            stored.setdefault((dt, tuple(a.shape), h), []).append((raw, INPUTS_SHARD, name))
            input_tensors[name] = a
            inputs_json.append({"name": name, "shape": list(a.shape), "dtype": dt,
                                "file": INPUTS_SHARD})
        if input_tensors:
            _save(save_file, input_tensors, self.out_dir / INPUTS_SHARD)

        modules_json = []
        for m in self.modules:
            shard = check_relative(f"{m.id}.safetensors")
            tensors: Dict[str, np.ndarray] = {}
            ops_json = []
            for op in m.ops:
                if op.name in input_tensors:
                    raise CaptureError(f"op {op.name!r} (module {m.id}) has the name of a raw "
                                       "input; inputs and ops share one namespace")
                st = op.ensure_stats()
                h = st["hash"]
                prev = by_name.get(op.name)
                if prev is not None and prev[2] != h:
                    raise CaptureError(
                        f"op name {op.name!r} (module {m.id}) was recorded earlier with different "
                        f"data ({prev[2]} vs {h}); one name must always mean one tensor")
                rec: Dict[str, Any] = {"name": op.name, "kind": op.kind, "attrs": op.attrs,
                                       "inputs": op.inputs, "params": op.params,
                                       "shape": list(op.shape), "dtype": op.dtype}
                if op.store and op.data is not None:
                    a = np.ascontiguousarray(op.data, dtype=np.float32)
                    if tuple(a.shape) != tuple(op.shape):
                        raise CaptureError(f"op {op.name}: data shape {a.shape} != {op.shape}")
                    raw = a.tobytes()
                    hit = lookup(op.dtype, tuple(a.shape), h, raw)
                    if hit is None:
                        if prev is not None and prev[0] is not None:
                            raise CaptureError(f"op {op.name!r} (module {m.id}) was recorded "
                                               "earlier with a different shape")
                        tensors[op.name] = a
                        hit = (shard, op.name)
                        stored.setdefault((op.dtype, tuple(a.shape), h), []).append(
                            (raw, shard, op.name))
                    rec["file"], rec["tensor"] = hit
                    by_name[op.name] = (hit[0], hit[1], h)
                elif prev is None:
                    by_name[op.name] = (None, None, h)
                rec.update(op.extra)
                rec["stats"] = st
                ops_json.append(rec)
            if tensors:
                _save(save_file, tensors, self.out_dir / shard)
            modules_json.append({"id": m.id, "inputs": m.inputs, "outputs": m.outputs,
                                 "ops": ops_json})

        manifest = dict(self.header)
        manifest["inputs"] = inputs_json
        manifest["modules"] = modules_json
        path = self.out_dir / "manifest.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(format_manifest(manifest), encoding="utf-8")
        os.replace(tmp, path)
        return path


def _save(save_file, tensors: Dict[str, np.ndarray], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _dumps(x: Any) -> str:
    return json.dumps(x, ensure_ascii=True, allow_nan=False)


def format_manifest(manifest: Dict[str, Any]) -> str:
    """Stable, diff-friendly JSON: the structure indented, one line per op record."""
    lines = ["{"]
    keys = list(manifest)
    for ki, k in enumerate(keys):
        comma = "," if ki + 1 < len(keys) else ""
        v = manifest[k]
        if k == "modules":
            lines.append('  "modules": [')
            for mi, m in enumerate(v):
                lines.append("    {" + f'"id": {_dumps(m["id"])}, "inputs": {_dumps(m["inputs"])}, '
                             f'"outputs": {_dumps(m["outputs"])},')
                lines.append('     "ops": [')
                for oi, op in enumerate(m["ops"]):
                    lines.append("      " + _dumps(op) + ("," if oi + 1 < len(m["ops"]) else ""))
                lines.append("    ]}" + ("," if mi + 1 < len(v) else ""))
            lines.append("  ]" + comma)
        elif k == "inputs":
            lines.append('  "inputs": [')
            for ii, inp in enumerate(v):
                lines.append("    " + _dumps(inp) + ("," if ii + 1 < len(v) else ""))
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {_dumps(k)}: {_dumps(v)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def load_manifest(capture_dir: os.PathLike) -> Dict[str, Any]:
    return json.loads((Path(capture_dir) / "manifest.json").read_text(encoding="utf-8"))


def iter_ops(manifest: Dict[str, Any]) -> Sequence[Tuple[str, Dict[str, Any]]]:
    return [(m["id"], op) for m in manifest["modules"] for op in m["ops"]]
