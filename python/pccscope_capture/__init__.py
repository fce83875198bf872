"""pccscope_capture: the PyTorch pi0 reference and golden-capture writer of pccscope, and the
capture writer for external producers (a TT-NN port: `Capture`, `ttnn_hooks.trace_ttnn`).

Torch-free modules: config, naming, stats, writer, inputs, tensors, tracing, ttnn_hooks (and the
manifest checks in the tests). Torch modules: scope, ops, model, checkpoint (loading/creation),
capture, cli.
"""

__version__ = "0.1.0"

from .tracing import Capture  # noqa: E402
from .writer import CaptureError  # noqa: E402

__all__ = ["Capture", "CaptureError", "__version__"]
