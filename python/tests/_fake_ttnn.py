"""A stand-in for the `ttnn` package, numpy-backed, with the parts the capture hook uses:
`Tensor` (dtype / layout / memory_config() / padded_shape), `to_torch`, `CONFIG`,
`register_pre_operation_hook` / `register_post_operation_hook` (context managers that, like
TT-NN's, skip their clean-up when the block raises), and ops that call the hooks only on the
slow path (fast runtime mode off), as TT-NN's `FastOperation` does.

`make()` returns a module named `ttnn` and registers nothing in `sys.modules` (a test that
records fake tensors outside a hook monkeypatches it in); its tensor type claims the module
`ttnn`, which is how the capture recognises TT-NN tensors.
"""

from __future__ import annotations

import contextlib
import enum
import types

import numpy as np


class DataType(enum.Enum):
    BFLOAT16 = 0
    FLOAT32 = 1
    UINT32 = 2
    BFLOAT8_B = 3


class Layout(enum.Enum):
    ROW_MAJOR = 0
    TILE = 1


class BufferType(enum.Enum):
    DRAM = 0
    L1 = 1


class TensorMemoryLayout(enum.Enum):
    INTERLEAVED = 0
    HEIGHT_SHARDED = 2
    WIDTH_SHARDED = 3
    BLOCK_SHARDED = 4


class MemoryConfig:
    def __init__(self, layout, buffer):
        self.memory_layout, self.buffer_type = layout, buffer

    def __str__(self):
        return (f"MemoryConfig(memory_layout=TensorMemoryLayout::{self.memory_layout.name},"
                f"buffer_type=BufferType::{self.buffer_type.name},shard_spec=std::nullopt)")


DRAM_MEMORY_CONFIG = MemoryConfig(TensorMemoryLayout.INTERLEAVED, BufferType.DRAM)
L1_WIDTH_SHARDED_MEMORY_CONFIG = MemoryConfig(TensorMemoryLayout.WIDTH_SHARDED, BufferType.L1)


class Tensor:
    """A device tensor: values truncated to bf16 when its dtype says so, tile-padded shape."""

    __slots__ = ("_data", "dtype", "layout", "_memory")  # no __weakref__, like nanobind types

    def __init__(self, data, dtype=DataType.BFLOAT16, layout=Layout.TILE,
                 memory=DRAM_MEMORY_CONFIG):
        a = np.ascontiguousarray(data, dtype=np.float32)
        if dtype == DataType.BFLOAT16:
            a = (a.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        self._data, self.dtype, self.layout, self._memory = a, dtype, layout, memory

    @property
    def shape(self):
        return tuple(self._data.shape)

    @property
    def padded_shape(self):
        if self.layout != Layout.TILE:
            return self.shape
        s = list(self.shape)
        for i in (-1, -2):
            if len(s) >= -i:
                s[i] = (s[i] + 31) // 32 * 32
        return tuple(s)

    def memory_config(self):
        return self._memory


def make() -> types.ModuleType:
    """A fresh fake `ttnn` module (hook lists, config and call log of its own)."""
    tt = types.ModuleType("ttnn")
    tt.__version__ = "0.0.fake"
    tt.DataType, tt.Layout, tt.Tensor = DataType, Layout, Tensor
    tt.DRAM_MEMORY_CONFIG = DRAM_MEMORY_CONFIG
    tt.L1_WIDTH_SHARDED_MEMORY_CONFIG = L1_WIDTH_SHARDED_MEMORY_CONFIG
    tt.CONFIG = types.SimpleNamespace(enable_fast_runtime_mode=True)
    tt.decorators = types.SimpleNamespace(PRE_OPERATION_HOOKS=[], POST_OPERATION_HOOKS=[])
    tt.calls = []

    @contextlib.contextmanager
    def register_pre_operation_hook(hook):
        tt.decorators.PRE_OPERATION_HOOKS.append(hook)
        yield
        tt.decorators.PRE_OPERATION_HOOKS.pop()

    @contextlib.contextmanager
    def register_post_operation_hook(hook):
        tt.decorators.POST_OPERATION_HOOKS.append(hook)
        yield
        tt.decorators.POST_OPERATION_HOOKS.pop()

    tt.register_pre_operation_hook = register_pre_operation_hook
    tt.register_post_operation_hook = register_post_operation_hook

    class Operation:
        def __init__(self, name, fn):
            self.python_fully_qualified_name, self.fn = name, fn

        def __call__(self, *args, **kwargs):
            tt.calls.append(self.python_fully_qualified_name)
            slow = not tt.CONFIG.enable_fast_runtime_mode
            if slow:
                for h in list(tt.decorators.PRE_OPERATION_HOOKS):
                    assert h(self, args, kwargs) is None
            out = self.fn(*args, **kwargs)
            if slow:
                for h in list(tt.decorators.POST_OPERATION_HOOKS):
                    assert h(self, args, kwargs, out) is None
            return out

    def op(name, fn):
        o = Operation(name, fn)
        setattr(tt, name.rsplit(".", 1)[-1], o)
        return o

    op("ttnn.to_torch", lambda t: t._data.copy())  # real ttnn: a torch tensor
    op("ttnn.from_torch", lambda a, dtype=DataType.BFLOAT16, layout=Layout.TILE:
       Tensor(a, dtype, layout))
    op("ttnn.to_device", lambda t, device=None: t)  # already on the device: the same object
    op("ttnn.linear", lambda x, w, memory_config=DRAM_MEMORY_CONFIG, dtype=DataType.BFLOAT16:
       Tensor(x._data @ w._data, dtype, Layout.TILE, memory_config))
    op("ttnn.add", lambda a, b: Tensor(a._data + b._data, a.dtype, a.layout, a.memory_config()))

    def split_heads(x):
        h = x._data.shape[-1] // 2
        return (Tensor(x._data[..., :h], x.dtype), Tensor(x._data[..., h:], x.dtype))

    op("ttnn.experimental.split_heads", split_heads)

    def fails(x):
        raise RuntimeError("TT_FATAL: bad shard spec")

    op("ttnn.fails", fails)
    return tt


Tensor.__module__ = "ttnn"
