"""Record every TT-NN op of a program into a `Capture`, through TT-NN's operation hooks.

    import ttnn
    from pccscope_capture import Capture
    from pccscope_capture.ttnn_hooks import trace_ttnn

    with Capture("captures/tt-pi0", goldens="goldens/pi0-tiny") as cap, trace_ttnn(cap):
        with cap.scope("siglip.layers.0"):
            h = ttnn.layer_norm(x, ...)        # recorded as siglip.layers.0.layer_norm
            cap.record("ln1", h)               # … renamed siglip.layers.0.ln1

`ttnn.register_post_operation_hook(fn)` (TT-NN `ttnn/decorators.py`) calls
`fn(operation, args, kwargs, output)` after every top-level op; the hook converts each TT-NN
tensor of the output (`ttnn.to_torch`) and records it under the current scope as
`<scope>.<op>` (`linear`, `linear_1`, … for repeats in one scope), with its dtype, layout,
memory config and padded shape, and `kind` = the op's qualified name (`ttnn.linear`); input
tensors recorded earlier are listed as its `inputs`. Hooks run only on TT-NN's slow dispatch
path, so fast runtime mode is switched off while tracing. If the traced block raises while an
op runs (a pre-operation hook saw it start and no post hook its end), that op is recorded as
an error record before the exception propagates.

Nothing here imports ttnn at module load; `trace_ttnn` imports it (or takes `ttnn=` — the
tests pass a fake module).
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from typing import Any, FrozenSet, Iterable, Iterator, List, Optional

from .tensors import flatten_tensors, is_ttnn
from .tracing import Capture
from .writer import CaptureError

# Host transfers, allocation and bookkeeping: no new values to record.
DEFAULT_SKIP: FrozenSet[str] = frozenset({
    "to_torch", "from_torch", "as_tensor", "to_device", "from_device", "deallocate",
    "reallocate", "dump_tensor", "load_tensor", "synchronize_device", "get_device_tensors",
    "allocate_tensor_on_device", "copy_host_to_device_tensor", "copy_device_to_host_tensor",
    "open_device", "close_device",
})


def op_name(operation: Any) -> str:
    """The qualified name of a TT-NN operation object (`ttnn.linear`)."""
    for attr in ("python_fully_qualified_name", "__name__", "name"):
        v = getattr(operation, attr, None)
        if isinstance(v, str) and v:
            return v
    return type(operation).__name__


class TtnnHook:
    """The pre- and post-operation hooks of one `trace_ttnn` block."""

    def __init__(self, capture: Capture, ttnn: Any, skip: Iterable[str] = DEFAULT_SKIP):
        self.capture = capture
        self.ttnn = ttnn
        self.skip = frozenset(skip)
        self.active = True
        self.recorded = 0
        # Outputs that could not be recorded (conversion failed, …), as messages.
        self.failures: List[str] = []
        self._busy = False
        self._running: Optional[tuple] = None

    def _inputs(self, args: Any, kwargs: Any) -> List[str]:
        names = []
        for t in flatten_tensors((args, kwargs), is_ttnn):
            n = self.capture._known_name(t)
            if n is not None and n not in names:
                names.append(n)
        return names

    def before(self, operation: Any, args: Any, kwargs: Any) -> None:
        if not self.active or self._busy:
            return None
        qualified = op_name(operation)
        self._running = (qualified, tuple(self.capture._scope),
                         self.capture.current_module, self._inputs(args, kwargs))
        return None

    def after(self, operation: Any, args: Any, kwargs: Any, output: Any) -> None:
        if not self.active or self._busy:
            return None
        self._running = None
        qualified = op_name(operation)
        leaf = qualified.rsplit(".", 1)[-1]
        tensors = flatten_tensors(output, is_ttnn)
        if leaf in self.skip:
            # A new tensor object may reuse the id of a recorded one that died: make sure it is
            # not taken for that one when it becomes an input.
            passed = {id(t) for t in flatten_tensors((args, kwargs), is_ttnn)}
            for t in tensors:
                if id(t) not in passed:
                    self.capture._forget_object(t)
            return None
        if not tensors:
            return None
        inputs = self._inputs(args, kwargs)
        self._busy = True  # ttnn.to_torch inside must not re-enter the hook
        try:
            for i, t in enumerate(tensors):
                # Names are positional: a miss still uses up its name.
                full = self.capture._auto_name(leaf if len(tensors) == 1 else f"{leaf}.{i}")
                try:
                    self.capture._record_hooked(full, qualified, t, inputs, self.ttnn)
                    self.recorded += 1
                except Exception as e:  # the traced program goes on; the miss is reported
                    msg = f"{full} ({qualified} output {i}): {e}"
                    if not self.failures:
                        warnings.warn(f"pccscope capture: could not record {msg}",
                                      RuntimeWarning, stacklevel=2)
                    self.failures.append(msg)
        finally:
            self._busy = False
        return None

    def raised(self, exc: BaseException) -> Optional[str]:
        """Records the op that was running when `exc` escaped, if one was; returns its name."""
        if self._running is None:
            return None
        qualified, scope, module, inputs = self._running
        self._running = None
        cap = self.capture
        saved_scope, saved_modules = cap._scope, cap._modules
        cap._scope, cap._modules = list(scope), saved_modules + [module]
        try:
            name = cap._auto_name(qualified.rsplit(".", 1)[-1])
            cap._writer.add_error(module, name, qualified, f"{type(exc).__name__}: {exc}",
                                  inputs)
        finally:
            cap._scope, cap._modules = saved_scope, saved_modules
        return name


@contextlib.contextmanager
def _slow_runtime(tt: Any) -> Iterator[None]:
    """Fast runtime mode off (hooks only run on the slow path), restored afterwards."""
    manage = getattr(tt, "manage_config", None)
    if callable(manage):
        with manage("enable_fast_runtime_mode", False):
            yield
        return
    cfg = getattr(tt, "CONFIG", None)
    if cfg is None or not hasattr(cfg, "enable_fast_runtime_mode"):
        yield
        return
    old = cfg.enable_fast_runtime_mode
    cfg.enable_fast_runtime_mode = False
    try:
        yield
    finally:
        cfg.enable_fast_runtime_mode = old


def _unregister(tt: Any, fn: Any) -> None:
    """TT-NN's hook context managers skip their pop when the block raises: drop `fn` from
    the hook lists ourselves."""
    decorators = getattr(tt, "decorators", None)
    for attr in ("PRE_OPERATION_HOOKS", "POST_OPERATION_HOOKS"):
        hooks = getattr(decorators, attr, None)
        if isinstance(hooks, list):
            hooks[:] = [h for h in hooks if h is not fn]


@contextlib.contextmanager
def trace_ttnn(capture: Capture, *, ttnn: Any = None, skip: Iterable[str] = DEFAULT_SKIP,
               slow_runtime: bool = True) -> Iterator[TtnnHook]:
    """Records every top-level TT-NN op run inside the block into `capture` (module docs).

    `skip`: op leaf names not recorded (host transfers by default). `slow_runtime=False`
    leaves fast runtime mode alone (then hooks may not fire)."""
    tt = ttnn if ttnn is not None else importlib.import_module("ttnn")
    post = getattr(tt, "register_post_operation_hook", None)
    if not callable(post):
        raise CaptureError("this ttnn has no register_post_operation_hook; pccscope needs a "
                           "TT-NN with operation hooks (ttnn/decorators.py)")
    pre = getattr(tt, "register_pre_operation_hook", None)
    hook = TtnnHook(capture, tt, skip)
    before, after = hook.before, hook.after  # one bound-method object each, to unregister
    with contextlib.ExitStack() as stack:
        stack.callback(_unregister, tt, after)
        stack.callback(_unregister, tt, before)
        if slow_runtime:
            stack.enter_context(_slow_runtime(tt))
        if callable(pre):
            stack.enter_context(pre(before))
        stack.enter_context(post(after))
        try:
            yield hook
        except BaseException as e:
            hook.raised(e)
            raise
        finally:
            hook.active = False
