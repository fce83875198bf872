"""Captures from external producers — a TT-NN port of pi0, or any program — for
`pccscope compare GOLDENS CAPTURE` (goldens/README.md "Format").

numpy + safetensors only: torch and TT-NN tensors are converted when they arrive
(`tensors.to_numpy`), and the TT-NN op hook lives in `ttnn_hooks`. Data streams to disk in
shards of bounded size (`ShardedWriter`), so a capture of pi0_base needs no more memory than
one shard.

    from pccscope_capture import Capture

    with Capture("captures/tt-pi0", goldens="goldens/pi0-tiny") as cap:
        cap.add_input("images", images)
        with cap.module("siglip"), cap.scope("siglip.layers.0"):
            x = cap.record("ln1", ttnn.layer_norm(h, ...), kind="layer_norm",
                           attrs={"eps": 1e-6}, inputs=["siglip.embed"],
                           params=[V + "encoder.layers.0.layer_norm1.weight", ...])

`record` names an op output under the current scope. Give it the catalog `kind`, `attrs`,
`inputs` (names, or tensors recorded earlier) and `params` (checkpoint names) of
goldens/README.md and `pccscope compare` also runs the *local* check of that op (the
reference re-runs it on the capture's own inputs); without them the op gets the chained check
only. With `ttnn_hooks.trace_ttnn(cap)` every TT-NN op is recorded on its own (auto-named
`<scope>.<op>`), and `record` on a hooked output renames that record instead of adding one.
"""

from __future__ import annotations

import contextlib
import json
import os
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__
from .stats import compute_stats
from .tensors import dtype_name, is_torch, is_ttnn, layout_name, memory_name, shape_of, \
    to_numpy, ttnn_metadata
from .writer import DEFAULT_SHARD_BYTES, CaptureError, OpRecord, ShardedWriter, make_header

# keep(name, numel) -> store the full tensor? (False: a stats-only record)
KeepPolicy = Callable[[str, int], bool]
Name = Union[str, int]


def _join(prefix: str, part: str) -> str:
    if not part:
        return prefix
    return f"{prefix}.{part}" if prefix else part


def _check_segment(part: str) -> str:
    if part.startswith(".") or part.endswith(".") or ".." in part:
        raise CaptureError(f"name part {part!r} has an empty segment")
    return part


class _Entry:
    """What the capture knows about a tensor object it has seen."""

    __slots__ = ("name", "module", "rec", "ref", "fingerprint", "hooked")

    def __init__(self, name, module, rec, ref, fingerprint, hooked):
        self.name, self.module, self.rec = name, module, rec
        self.ref, self.fingerprint, self.hooked = ref, fingerprint, hooked


def _fingerprint(x: Any) -> Tuple[str, str, str]:
    try:
        shape = str(tuple(int(d) for d in x.shape))
    except Exception:
        shape = "?"
    return type(x).__qualname__, shape, str(getattr(x, "dtype", ""))


def _raw_input(x: Any) -> np.ndarray:
    """A raw model input keeping integer and bool dtypes (tokens, masks)."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x)
    if is_torch(x) and not x.dtype.is_floating_point:
        return np.ascontiguousarray(x.detach().cpu().numpy())
    if not is_torch(x) and not is_ttnn(x):
        a = np.asarray(x)
        if a.dtype.kind in "biu":
            return np.ascontiguousarray(a)
    return to_numpy(x)


class Capture:
    """A capture being written (see the module docs).

    * `goldens`: a golden capture directory whose model, preset and config are copied into
      this capture's manifest (else `model`, `preset`, `config`).
    * `module`: the module records go to outside any `with cap.module(...)` (`pi0`: the full
      sampler; use the golden module ids of goldens/README.md to compare module by module).
    * `shard_bytes`: tensor bytes held before shards are written (and the manifest updated).
    * `stats_only_above`: tensors with more elements are stored as statistics only; `keep`
      (name, numel) -> bool decides per record instead.
    """

    def __init__(self, out_dir: os.PathLike, *, goldens: Optional[os.PathLike] = None,
                 model: Optional[str] = None, preset: Optional[str] = None,
                 config: Optional[Dict[str, Any]] = None,
                 producer: Optional[Dict[str, Any]] = None, module: str = "pi0",
                 shard_bytes: Optional[int] = DEFAULT_SHARD_BYTES,
                 stats_only_above: Optional[int] = None, keep: Optional[KeepPolicy] = None):
        base: Dict[str, Any] = {}
        if goldens is not None:
            path = Path(goldens) / "manifest.json"
            try:
                base = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise CaptureError(f"cannot read the goldens manifest {path}: {e}") from None
        prod = {"name": "pccscope-capture", "kind": "external", "version": __version__}
        prod.update(producer or {})
        header = make_header(producer=prod, model=model or base.get("model", "pi0"),
                             preset=preset or base.get("preset", "unknown"),
                             config=config if config is not None else base.get("config", {}),
                             checkpoint=None)
        self._writer = ShardedWriter(out_dir, header, shard_bytes=shard_bytes)
        self.out_dir = self._writer.out_dir
        if stats_only_above is not None and keep is not None:
            raise CaptureError("give stats_only_above or keep, not both")
        if keep is None:
            limit = stats_only_above
            keep = (lambda name, numel: True) if limit is None else \
                (lambda name, numel: numel <= limit)
        self._keep = keep
        self._scope: List[str] = []
        self._modules: List[str] = [module]
        self._ids: Dict[int, _Entry] = {}
        self._auto: Dict[Tuple[str, str, str], int] = {}

    # ---- naming -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def scope(self, name: Name) -> Iterator["Capture"]:
        """Names recorded inside get the prefix `name` (nested scopes join with dots)."""
        part = _check_segment(str(name))
        if not part:
            raise CaptureError("a scope name must not be empty")
        self._scope.append(part)
        try:
            yield self
        finally:
            self._scope.pop()

    @contextlib.contextmanager
    def module(self, module_id: str, inputs: Sequence[str] = (),
               outputs: Sequence[str] = ()) -> Iterator["Capture"]:
        """Records inside go to module `module_id`. Scopes are independent of modules."""
        self._writer.begin_module(module_id, inputs, outputs)
        self._modules.append(module_id)
        try:
            yield self
        finally:
            self._modules.pop()

    @property
    def current_scope(self) -> str:
        return ".".join(self._scope)

    @property
    def current_module(self) -> str:
        return self._modules[-1]

    def name(self, leaf: Name = "") -> str:
        """The full name of `leaf` under the current scope."""
        return _join(self.current_scope, _check_segment(str(leaf)))

    # ---- inputs -----------------------------------------------------------------------------

    def add_input(self, name: str, tensor: Any) -> Any:
        """A raw model input (`images`, `tokens`, …; see goldens/README.md). Integer and bool
        inputs keep their dtype. Returns `tensor`, which later records may name by object."""
        self._writer.add_input(name, _raw_input(tensor))
        self._remember(tensor, name, self.current_module, None, hooked=False)
        return tensor

    # ---- records ----------------------------------------------------------------------------

    def record(self, name: Name, tensor: Any, *, kind: Optional[str] = None,
               attrs: Optional[Dict[str, Any]] = None, inputs: Sequence[Any] = (),
               params: Sequence[str] = (), dtype: Any = None, layout: Any = None,
               memory: Any = None, padded_shape: Any = None,
               precision: Optional[Dict[str, Any]] = None,
               store: Optional[bool] = None) -> Any:
        """Records `tensor` (numpy, torch or TT-NN) as op `<scope>.<name>` and returns it.

        `kind` / `attrs` follow goldens/README.md "Op kinds" (`"linear"`, `{"eps": 1e-6}`);
        `inputs` are names or tensors recorded (or added as inputs) earlier; `params` are
        checkpoint tensor names. `dtype`, `layout`, `memory`, `padded_shape` describe the
        device tensor (TT-NN objects or names; read from a TT-NN tensor when not given).
        `store=False` keeps statistics only (default: the capture's policy).

        If `tensor` was just recorded by the TT-NN hook, that record is renamed (and given
        the kind, attrs, inputs and params passed here) instead of adding a second one.
        """
        full = self.name(name)
        entry = self._entry(tensor)
        if entry is not None and entry.hooked and entry.rec is not None:
            self._writer.rename_op(entry.module, entry.rec, full)
            entry.name, entry.hooked = full, False
            rec = entry.rec
            if kind is not None:
                rec["kind"] = kind
            if attrs is not None:
                rec["attrs"] = dict(attrs)
            if inputs:
                rec["inputs"] = self._input_names(full, inputs)
            if params:
                rec["params"] = list(params)
            for key, value in self._device_fields(tensor, dtype, layout, memory, padded_shape,
                                                  precision, explicit_only=True).items():
                rec[key] = value
            return tensor
        data = to_numpy(tensor)
        fields = self._device_fields(tensor, dtype, layout, memory, padded_shape, precision)
        rec = self._add(full, data, kind=kind or "unknown", attrs=attrs,
                        inputs=self._input_names(full, inputs), params=params, fields=fields,
                        store=store)
        self._remember(tensor, full, self.current_module, rec, hooked=False)
        return tensor

    def record_error(self, name: Name, message: str, *, kind: str = "unknown",
                     inputs: Sequence[Any] = ()) -> str:
        """Records that op `<scope>.<name>` raised `message` instead of producing an output
        (`pccscope compare` reports it as an op error, and as the first divergence if nothing
        failed before it). Returns the full name."""
        full = self.name(name)
        self._writer.add_error(self.current_module, full, kind, message,
                               self._input_names(full, inputs, strict=False))
        return full

    def flush(self) -> None:
        """Writes pending shards and an up-to-date (partial) manifest now."""
        self._writer.flush()

    def close(self) -> Path:
        """Writes everything and the final manifest; returns its path."""
        if self._writer.closed:
            return self.out_dir / "manifest.json"
        return self._writer.close()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        # Also on an exception: what was recorded up to the failure stays readable.
        self.close()

    # ---- internals shared with the TT-NN hook ------------------------------------------------

    def _add(self, full: str, data: np.ndarray, *, kind: str, attrs, inputs: List[str],
             params: Sequence[str], fields: Dict[str, Any],
             store: Optional[bool]) -> Dict[str, Any]:
        keep = self._keep(full, int(data.size)) if store is None else bool(store)
        op = OpRecord(name=full, kind=kind, attrs=dict(attrs or {}), inputs=list(inputs),
                      params=list(params), shape=tuple(int(d) for d in data.shape),
                      data=data if keep else None, store=keep, extra=fields)
        if not keep:
            op.stats = compute_stats(data)
        return self._writer.add_op(self.current_module, op)

    def _auto_name(self, leaf: str) -> str:
        """`<scope>.<leaf>`, then `<leaf>_1`, `<leaf>_2`, … for repeats in one scope."""
        key = (self.current_module, self.current_scope, leaf)
        while True:
            n = self._auto.get(key, 0)
            self._auto[key] = n + 1
            full = self.name(leaf if n == 0 else f"{leaf}_{n}")
            if not self._writer.has_op(self.current_module, full):
                return full

    def _record_hooked(self, full: str, kind: str, tensor: Any, inputs: List[str],
                       ttnn: Any = None) -> None:
        data = to_numpy(tensor, ttnn)
        fields = self._device_fields(tensor, None, None, None, None, None)
        rec = self._add(full, data, kind=kind, attrs=None, inputs=inputs, params=(),
                        fields=fields, store=None)
        self._remember(tensor, full, self.current_module, rec, hooked=True)

    def _known_name(self, tensor: Any) -> Optional[str]:
        entry = self._entry(tensor)
        return None if entry is None else entry.name

    def _input_names(self, op: str, inputs: Sequence[Any], strict: bool = True) -> List[str]:
        out = []
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                out.append(x)
                continue
            n = self._known_name(x)
            if n is None:
                if strict:
                    raise CaptureError(
                        f"input #{i} of op {op!r} ({type(x).__name__}) was never recorded: "
                        "record it (or add it as an input) first, or pass its name")
                continue
            out.append(n)
        return out

    def _device_fields(self, tensor, dtype, layout, memory, padded_shape, precision, *,
                       explicit_only: bool = False) -> Dict[str, Any]:
        meta: Dict[str, Any] = {}
        if not explicit_only:
            if is_ttnn(tensor):
                meta = ttnn_metadata(tensor)
            elif is_torch(tensor) and str(tensor.dtype) != "torch.float32":
                meta = {"device_dtype": dtype_name(tensor.dtype)}
        given = {"device_dtype": dtype_name(dtype), "layout": layout_name(layout),
                 "memory": memory_name(memory), "padded_shape": shape_of(padded_shape)}
        meta.update({k: v for k, v in given.items() if v is not None})
        if precision is not None:
            meta["precision"] = precision
        out: Dict[str, Any] = {}
        for key in ("layout", "memory", "padded_shape", "device_dtype", "precision"):
            v = meta.get(key)
            if v is not None:
                out[key] = list(v) if key == "padded_shape" else v
        return out

    def _entry(self, tensor: Any) -> Optional[_Entry]:
        e = self._ids.get(id(tensor))
        if e is None:
            return None
        if e.ref is not None:
            return e if e.ref() is tensor else None
        return e if e.fingerprint == _fingerprint(tensor) else None

    def _remember(self, tensor: Any, name: str, module: str, rec, hooked: bool) -> None:
        key = id(tensor)
        try:
            ref = weakref.ref(tensor, lambda _r, k=key: self._forget(k, _r))
        except TypeError:  # objects without weak references: matched by id + fingerprint
            ref = None
        self._ids[key] = _Entry(name, module, rec, ref, _fingerprint(tensor), hooked)

    def _forget_object(self, tensor: Any) -> None:
        self._ids.pop(id(tensor), None)

    def _forget(self, key: int, ref) -> None:
        e = self._ids.get(key)
        if e is not None and e.ref is ref:
            del self._ids[key]
