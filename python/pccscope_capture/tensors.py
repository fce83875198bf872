"""Tensors of any producer as numpy, and device metadata in the capture's spelling.

numpy only at import: a torch tensor is converted through its own methods and a TT-NN tensor
through `ttnn.to_torch` of the module that defined its type, so neither torch nor ttnn is
imported unless such a tensor arrives.

Device metadata is written the way pccscope reports it (`device_dtype` `bf16` / `bfloat8_b`,
`layout` `tile` / `row_major`, `memory` `dram_interleaved` / `l1_width_sharded`, …); the Rust
reader also accepts TT-NN's own spellings (`DataType.BFLOAT16`, `Layout.TILE`,
`MemoryConfig(...)`), which is what an unrecognised value is kept as.
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Sequence, Tuple

import numpy as np

_DTYPES = {
    "float32": "f32", "f32": "f32", "fp32": "f32",
    "bfloat16": "bf16", "bf16": "bf16",
    "bfloat8_b": "bfloat8_b", "bfp8": "bfloat8_b", "bfp8_b": "bfloat8_b",
    "bfloat4_b": "bfloat4_b", "bfp4": "bfloat4_b", "bfp4_b": "bfloat4_b",
    "uint32": "u32", "u32": "u32",
    "float16": "f16", "int32": "i32", "uint16": "u16", "uint8": "u8", "int64": "i64",
    "bool": "bool", "fp8_e4m3": "fp8_e4m3", "int8": "i8",
}
_BUFFERS = ("dram", "l1")
_MEMORY_LAYOUTS = ("interleaved", "height_sharded", "width_sharded", "block_sharded")


def _module_of(x: Any) -> str:
    return type(x).__module__ or ""


def is_torch(x: Any) -> bool:
    return _module_of(x).split(".")[0] == "torch" and hasattr(x, "detach")


def is_ttnn(x: Any) -> bool:
    return _module_of(x).split(".")[0] == "ttnn"


def ttnn_module_of(x: Any):
    """The `ttnn` package a TT-NN tensor belongs to (already imported: it made the tensor)."""
    return sys.modules.get(_module_of(x).split(".")[0])


def to_numpy(x: Any, ttnn: Any = None) -> np.ndarray:
    """`x` (numpy array, torch tensor, TT-NN tensor, or anything `np.asarray` takes) as a
    host f32 array in logical shape (TT-NN tile padding removed by `ttnn.to_torch`; `ttnn`
    defaults to the imported package the tensor's type comes from)."""
    if isinstance(x, np.ndarray):
        a = x
    elif is_ttnn(x):
        tt = ttnn if ttnn is not None else ttnn_module_of(x)
        if tt is None or not hasattr(tt, "to_torch"):
            raise TypeError(f"cannot convert {type(x).__name__}: no ttnn.to_torch")
        return to_numpy(tt.to_torch(x))
    elif is_torch(x):
        t = x.detach()
        if t.dtype.is_complex:
            raise TypeError("complex tensors are not supported")
        if t.dtype.is_floating_point and str(t.dtype) != "torch.float32":
            import torch  # the tensor is a torch tensor, so torch is installed

            t = t.to(torch.float32)
        a = t.cpu().contiguous().numpy()
    else:
        a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"unsupported tensor dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _leaf(text: str) -> str:
    """`DataType.BFLOAT16` / `<DataType.BFLOAT16: 0>` / `torch.bfloat16` → `bfloat16`."""
    t = text.strip().strip("<>").split(":")[0].strip()
    return t.replace("::", ".").rsplit(".", 1)[-1].lower()


def dtype_name(dtype: Any) -> Optional[str]:
    """A device dtype (TT-NN `DataType`, torch or numpy dtype, or a name) as pccscope names it;
    an unknown name is returned as written, `None` for `None`."""
    if dtype is None:
        return None
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        text = np.dtype(dtype).name
    else:
        text = str(dtype)
    return _DTYPES.get(_leaf(text), text)


def layout_name(layout: Any) -> Optional[str]:
    """`tile` / `row_major` from `Layout.TILE`, `ROW_MAJOR`, …; anything else as written."""
    if layout is None:
        return None
    leaf = _leaf(str(layout))
    return leaf if leaf in ("tile", "row_major") else str(layout)


def memory_name(memory: Any) -> Optional[str]:
    """`dram_interleaved`, `l1_width_sharded`, … from a TT-NN `MemoryConfig` (its
    `buffer_type` / `memory_layout`, else its printed form) or a name; unknown text as written."""
    if memory is None:
        return None
    buffer = getattr(memory, "buffer_type", None)
    layout = getattr(memory, "memory_layout", None)
    if buffer is not None and layout is not None:
        b, k = _leaf(str(buffer)), _leaf(str(layout))
        if b in _BUFFERS and k in _MEMORY_LAYOUTS:
            return f"{b}_{k}"
    text = str(memory)
    low = text.lower().replace("::", ".")
    b = next((x for x in _BUFFERS if low.startswith(x) or f"buffertype.{x}" in low), None)
    k = next((x for x in _MEMORY_LAYOUTS if x in low), None)
    return f"{b}_{k}" if b and k else text


def shape_of(shape: Any) -> Optional[Tuple[int, ...]]:
    """A shape (tuple, list, `ttnn.Shape`, `torch.Size`) as a tuple of ints."""
    if shape is None:
        return None
    return tuple(int(d) for d in shape)


def _call_or_value(obj: Any, attr: str) -> Any:
    v = getattr(obj, attr, None)
    return v() if callable(v) else v


def ttnn_metadata(t: Any) -> dict:
    """dtype, layout, memory config and padded shape of a TT-NN tensor, defensively across
    TT-NN versions (`padded_shape` property, older `shape.with_tile_padding()`,
    `memory_config()` only for tensors on a device)."""
    out: dict = {"device_dtype": dtype_name(getattr(t, "dtype", None)),
                 "layout": layout_name(getattr(t, "layout", None))}
    try:
        out["memory"] = memory_name(_call_or_value(t, "memory_config"))
    except Exception:  # host tensors have no memory config
        out["memory"] = None
    if out["memory"] is None:
        out["memory"] = "host"
    padded = None
    for get in (lambda: _call_or_value(t, "padded_shape"),
                lambda: t.shape.with_tile_padding(),
                lambda: _call_or_value(t, "get_padded_shape")):
        try:
            padded = get()
        except Exception:
            padded = None
        if padded is not None:
            break
    try:
        out["padded_shape"] = shape_of(padded)
    except (TypeError, ValueError):
        out["padded_shape"] = None
    return out


def flatten_tensors(x: Any, is_tensor) -> Sequence[Any]:
    """Tensors in `x` (a tensor, or nested lists / tuples / dict values), in order."""
    if is_tensor(x):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for e in x for t in flatten_tensors(e, is_tensor)]
    if isinstance(x, dict):
        return [t for e in x.values() for t in flatten_tensors(e, is_tensor)]
    return []
