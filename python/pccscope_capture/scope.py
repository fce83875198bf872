"""The one path-prefix mechanism: a `Scope` carries the op-name prefix and the checkpoint
weight prefix together (like candle's `vb.pp`), and every op output goes through
`Scope.emit`, which records it under its hierarchical name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .stats import compute_stats
from .writer import OpRecord


def _join(prefix: str, part: str) -> str:
    if not part:
        return prefix
    return f"{prefix}.{part}" if prefix else part


@dataclass
class Act:
    """An activation: a named tensor (raw input or op output)."""

    name: str
    t: torch.Tensor


class Params:
    """Checkpoint tensors by their current-layout name, as f32 (exact upcast of bf16)."""

    def __init__(self, tensors: Dict[str, torch.Tensor]):
        self._t = tensors
        self.used: set = set()

    def __contains__(self, name: str) -> bool:
        return name in self._t

    def names(self) -> List[str]:
        return list(self._t)

    def get(self, name: str) -> torch.Tensor:
        try:
            t = self._t[name]
        except KeyError:
            raise KeyError(f"checkpoint tensor {name!r} is missing") from None
        self.used.add(name)
        return t


# keep(name, numel) -> store the full tensor? (False: stats-only record)
KeepPolicy = Callable[[str, int], bool]


class Recorder:
    """Collects op records in execution order. Names must be unique within one recorder."""

    def __init__(self, keep: Optional[KeepPolicy] = None, enabled: bool = True):
        self.keep = keep or (lambda name, numel: True)
        self.enabled = enabled
        self.ops: List[OpRecord] = []
        self._names: set = set()

    def record(self, name: str, kind: str, attrs: dict, inputs: List[str], params: List[str],
               t: torch.Tensor) -> None:
        if name in self._names:
            raise ValueError(f"op name {name!r} emitted twice in one run")
        self._names.add(name)
        if not self.enabled:
            return
        data = t.detach().to(torch.float32).contiguous().numpy().copy()
        store = bool(self.keep(name, int(data.size)))
        rec = OpRecord(name=name, kind=kind, attrs=attrs, inputs=inputs, params=params,
                       shape=tuple(int(d) for d in data.shape), data=data, store=store)
        if not store:
            rec.stats = compute_stats(data)
            rec.data = None
        self.ops.append(rec)

    def by_name(self) -> Dict[str, OpRecord]:
        return {r.name: r for r in self.ops}


ParamRef = Tuple[str, torch.Tensor]


class Scope:
    """A node of the name tree. `pp(name, weights)` descends: `name` extends the op-name
    prefix, `weights` (default: the same string; "" for none) extends the weight prefix."""

    def __init__(self, recorder: Recorder, params: Params, name: str = "", weights: str = ""):
        self.recorder = recorder
        self.params = params
        self.name = name
        self.weights = weights

    def pp(self, name: Union[str, int], weights: Optional[Union[str, int]] = None) -> "Scope":
        name = str(name)
        w = name if weights is None else str(weights)
        return Scope(self.recorder, self.params, _join(self.name, name), _join(self.weights, w))

    def op_name(self, leaf: str) -> str:
        return _join(self.name, leaf)

    def param(self, rel: str) -> ParamRef:
        full = _join(self.weights, rel)
        return full, self.params.get(full)

    def emit(self, leaf: str, kind: str, attrs: dict, inputs: Sequence[Act],
             params: Sequence[str], t: torch.Tensor) -> Act:
        name = self.op_name(leaf)
        self.recorder.record(name, kind, dict(attrs), [a.name for a in inputs], list(params), t)
        return Act(name, t)


def f32(x: float) -> float:
    """The f32 nearest to x, as the exact double (how f32 attrs are written to the manifest)."""
    return float(np.float32(x))
