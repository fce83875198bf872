"""Capture writer (`pccscope.capture/1`, goldens/README.md "Format"). numpy + safetensors only,
so external producers (e.g. a TT-NN program hooking its ops) can write captures without torch.

`ShardedWriter` streams a capture to disk with bounded memory (used by `tracing.Capture`, the
API for external producers); `CaptureWriter` collects one in memory and writes it through a
`ShardedWriter` (the reference's path). In-memory usage::

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
    """Collects a whole capture in memory, then writes it with one `ShardedWriter` (the
    reference's path: byte-identical output for identical records)."""

    def __init__(self, out_dir: os.PathLike, *, producer: Dict[str, Any], model: str,
                 preset: str, config: Dict[str, Any], checkpoint: Optional[Dict[str, Any]]):
        self.out_dir = Path(out_dir)
        self.header = make_header(producer=producer, model=model, preset=preset, config=config,
                                  checkpoint=checkpoint)
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
        w = ShardedWriter(self.out_dir, self.header, shard_bytes=None)
        for name, a in self.inputs:
            w.add_input(name, a)
        for m in self.modules:
            w.begin_module(m.id, m.inputs, m.outputs)
            for op in m.ops:
                w.add_op(m.id, op)
        return w.close()


def make_header(*, producer: Dict[str, Any], model: str, preset: str, config: Dict[str, Any],
                checkpoint: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The manifest fields before `inputs` and `modules`, in their order."""
    return {"schema": SCHEMA, "producer": producer, "model": model, "preset": preset,
            "config": config, "checkpoint": checkpoint}


# Bytes of tensor data held before a streaming writer flushes its shards.
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024


class _Stored:
    """Where one stored tensor lives; `data` is kept until its shard is written."""

    __slots__ = ("file", "key", "data")

    def __init__(self, file: str, key: str, data: Optional[np.ndarray]):
        self.file, self.key, self.data = file, key, data


class ShardedWriter:
    """Streams a capture to disk with bounded memory.

    Op data is held per module until `shard_bytes` of it are pending; then every module's
    pending tensors go to a new shard of that module (`<module>.safetensors`, then
    `<module>.1.safetensors`, …) and `manifest.json` is rewritten with everything so far,
    marked `"partial": true` in `producer`, so a run that dies later still leaves a readable
    capture. `close` writes the final manifest. `shard_bytes=None` holds everything until
    `close` (one shard per module).

    A record whose data is byte-identical (same dtype and shape) to an earlier record's or raw
    input's points at that tensor instead of storing it again (a written one is read back to
    compare); one name must always mean one tensor. Only the manifest records and a 64-bit
    hash per stored tensor stay in memory once written.
    """

    def __init__(self, out_dir: os.PathLike, header: Dict[str, Any], *,
                 shard_bytes: Optional[int] = DEFAULT_SHARD_BYTES):
        if shard_bytes is not None and shard_bytes <= 0:
            raise CaptureError(f"shard_bytes must be positive, got {shard_bytes}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.header = dict(header)
        self.shard_bytes = shard_bytes
        self._inputs: List[Tuple[str, np.ndarray]] = []
        self._inputs_json: List[Dict[str, Any]] = []
        self._inputs_written = 0
        self._modules: Dict[str, Dict[str, Any]] = {}
        self._names: Dict[str, set] = {}
        self._pending: Dict[str, Dict[str, np.ndarray]] = {}
        self._pending_file: Dict[str, str] = {}
        self._pending_bytes = 0
        self._files: set = {INPUTS_SHARD}
        # (dtype, shape, hash) -> where tensors with that key are stored
        self._stored: Dict[Tuple[str, Tuple[int, ...], str], List[_Stored]] = {}
        # name -> (file or None, tensor or None, hash): one name, one tensor
        self._by_name: Dict[str, Tuple[Optional[str], Optional[str], str]] = {}
        self._closed = False

    # ---- inputs and modules -----------------------------------------------------------------

    def add_input(self, name: str, array: np.ndarray) -> None:
        self._check_open()
        a = np.ascontiguousarray(array)
        dt = dtype_name(a)
        if any(n == name for n, _ in self._inputs):
            raise CaptureError(f"input {name!r} added twice")
        if name in self._by_name:
            raise CaptureError(f"input {name!r} has the name of an op; inputs and ops share "
                               "one namespace")
        raw = a.tobytes()
        h = compute_stats(a.astype(np.float32))["hash"] if dt == "F32" else f"raw:{len(raw)}"
        self._stored.setdefault((dt, tuple(a.shape), h), []).append(
            _Stored(INPUTS_SHARD, name, a))
        self._inputs.append((name, a))
        self._inputs_json.append({"name": name, "shape": list(a.shape), "dtype": dt,
                                  "file": INPUTS_SHARD})

    def input_names(self) -> List[str]:
        return [n for n, _ in self._inputs]

    def begin_module(self, module_id: str, inputs: Sequence[str] = (),
                     outputs: Sequence[str] = ()) -> None:
        """Starts module `module_id` (again: only extends its inputs and outputs)."""
        self._check_open()
        m = self._modules.get(module_id)
        if m is None:
            check_relative(f"{module_id}.safetensors")
            if not module_id or module_id.startswith(".") or module_id == "inputs":
                raise CaptureError(f"module id {module_id!r} cannot name a shard")
            m = {"id": module_id, "inputs": [], "outputs": [], "ops": []}
            self._modules[module_id] = m
            self._names[module_id] = set()
        for key, names in (("inputs", inputs), ("outputs", outputs)):
            for n in names:
                if n not in m[key]:
                    m[key].append(n)

    def has_module(self, module_id: str) -> bool:
        return module_id in self._modules

    # ---- ops --------------------------------------------------------------------------------

    def add_op(self, module_id: str, op: OpRecord) -> Dict[str, Any]:
        """Appends `op` to module `module_id` (begun if needed); returns its manifest record.
        Full data is stored as F32 unless `op.store` is false (stats-only)."""
        self._check_open()
        if module_id not in self._modules:
            self.begin_module(module_id)
        if op.name in self._names[module_id]:
            raise CaptureError(f"op {op.name!r} recorded twice in module {module_id!r}")
        if any(n == op.name for n, _ in self._inputs):
            raise CaptureError(f"op {op.name!r} (module {module_id}) has the name of a raw "
                               "input; inputs and ops share one namespace")
        st = op.ensure_stats()
        h = st["hash"]
        prev = self._by_name.get(op.name)
        if prev is not None and prev[2] != h:
            raise CaptureError(
                f"op name {op.name!r} (module {module_id}) was recorded earlier with different "
                f"data ({prev[2]} vs {h}); one name must always mean one tensor")
        rec: Dict[str, Any] = {"name": op.name, "kind": op.kind, "attrs": op.attrs,
                               "inputs": op.inputs, "params": op.params,
                               "shape": list(op.shape), "dtype": op.dtype}
        if op.store and op.data is not None:
            a = np.ascontiguousarray(op.data, dtype=np.float32)
            if tuple(a.shape) != tuple(op.shape):
                raise CaptureError(f"op {op.name}: data shape {a.shape} != {op.shape}")
            hit = self._lookup(op.dtype, tuple(a.shape), h, a)
            if hit is None:
                if prev is not None and prev[0] is not None:
                    raise CaptureError(f"op {op.name!r} (module {module_id}) was recorded "
                                       "earlier with a different shape")
                file = self._pending_file.get(module_id)
                if file is None:
                    file = self._new_shard_name(module_id)
                    self._pending_file[module_id] = file
                self._pending.setdefault(module_id, {})[op.name] = a
                self._pending_bytes += a.nbytes
                hit = (file, op.name)
                self._stored.setdefault((op.dtype, tuple(a.shape), h), []).append(
                    _Stored(file, op.name, a))
            rec["file"], rec["tensor"] = hit
            self._by_name[op.name] = (hit[0], hit[1], h)
        elif prev is None:
            self._by_name[op.name] = (None, None, h)
        rec.update(op.extra)
        rec["stats"] = st
        self._modules[module_id]["ops"].append(rec)
        self._names[module_id].add(op.name)
        if self.shard_bytes is not None and self._pending_bytes >= self.shard_bytes:
            self.flush()
        return rec

    def add_error(self, module_id: str, name: str, kind: str, message: str,
                  inputs: Sequence[str] = ()) -> Dict[str, Any]:
        """Records that op `name` raised `message` instead of producing an output: no data,
        no stats, an `error` field (read by `pccscope compare` as an op error)."""
        self._check_open()
        if module_id not in self._modules:
            self.begin_module(module_id)
        if name in self._names[module_id]:
            raise CaptureError(f"op {name!r} recorded twice in module {module_id!r}")
        rec = {"name": name, "kind": kind, "attrs": {}, "inputs": list(inputs), "params": [],
               "shape": [], "dtype": "F32", "error": str(message)}
        self._modules[module_id]["ops"].append(rec)
        self._names[module_id].add(name)
        return rec

    def has_op(self, module_id: str, name: str) -> bool:
        return name in self._names.get(module_id, ())

    def rename_op(self, module_id: str, rec: Dict[str, Any], new_name: str) -> None:
        """Gives the record `rec` (returned by `add_op`) another name; its data stays where it
        is. The new name follows the same rules as a new record's."""
        self._check_open()
        old = rec["name"]
        if new_name == old:
            return
        names = self._names[module_id]
        if new_name in names:
            raise CaptureError(f"op {new_name!r} recorded twice in module {module_id!r}")
        if any(n == new_name for n, _ in self._inputs):
            raise CaptureError(f"op {new_name!r} has the name of a raw input")
        h = rec["stats"]["hash"]
        prev = self._by_name.get(new_name)
        if prev is not None and prev[2] != h:
            raise CaptureError(f"op name {new_name!r} was recorded earlier with different data; "
                               "one name must always mean one tensor")
        names.discard(old)
        names.add(new_name)
        rec["name"] = new_name
        if prev is None:
            self._by_name[new_name] = (rec.get("file"), rec.get("tensor"), h)
        if not any(old in ns for ns in self._names.values()):
            self._by_name.pop(old, None)

    # ---- storage ----------------------------------------------------------------------------

    def _lookup(self, dt: str, shape: Tuple[int, ...], h: str,
                a: np.ndarray) -> Optional[Tuple[str, str]]:
        raw = None
        for s in self._stored.get((dt, shape, h), []):
            other = s.data if s.data is not None else self._read_back(s)
            if raw is None:
                raw = a.tobytes()
            if other.tobytes() == raw:
                return s.file, s.key
        return None

    def _read_back(self, s: _Stored) -> np.ndarray:
        from safetensors import safe_open

        with safe_open(str(self.out_dir / s.file), framework="numpy") as f:
            return f.get_tensor(s.key)

    def _new_shard_name(self, module_id: str) -> str:
        name, k = f"{module_id}.safetensors", 0
        while name in self._files:
            k += 1
            name = f"{module_id}.{k}.safetensors"
        check_relative(name)
        self._files.add(name)
        return name

    def flush(self, *, manifest: bool = True) -> None:
        """Writes the pending shards (and new raw inputs), then a partial manifest."""
        self._check_open()
        self._write_data()
        if manifest:
            self._write_manifest(partial=True)

    def _write_data(self) -> None:
        from safetensors.numpy import save_file

        if len(self._inputs) > self._inputs_written:
            _save(save_file, dict(self._inputs), self.out_dir / INPUTS_SHARD)
            self._inputs_written = len(self._inputs)
        for module_id in self._modules:
            tensors = self._pending.pop(module_id, None)
            if not tensors:
                continue
            file = self._pending_file.pop(module_id)
            _save(save_file, tensors, self.out_dir / file)
        for bucket in self._stored.values():
            for s in bucket:
                if s.file != INPUTS_SHARD:
                    s.data = None
        self._pending_bytes = 0

    def _write_manifest(self, *, partial: bool) -> Path:
        manifest = dict(self.header)
        if partial:
            manifest["producer"] = dict(manifest.get("producer") or {}, partial=True)
        manifest["inputs"] = self._inputs_json
        manifest["modules"] = list(self._modules.values())
        path = self.out_dir / "manifest.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(format_manifest(manifest), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def close(self) -> Path:
        """Writes what is pending and the final manifest; returns the manifest path."""
        self._check_open()
        self._write_data()
        path = self._write_manifest(partial=False)
        self._closed = True
        return path

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise CaptureError(f"capture {self.out_dir} is already closed")


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
