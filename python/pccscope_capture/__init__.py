"""pccscope_capture: the PyTorch pi0 reference and golden-capture writer of pccscope.

Torch-free modules: config, naming, stats, writer (and the manifest checks in the tests).
Torch modules: scope, ops, model, checkpoint (loading/creation), capture, cli.
"""

__version__ = "0.1.0"
