"""End to end (needs torch): the tiny reference with one op changed — RoPE without its sin term
in expert layer 3 — writes a capture through `Capture`, and `pccscope compare` names that op
as the first divergence, while everything downstream drifts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pccscope_capture import Capture, ops  # noqa: E402
from pccscope_capture.checkpoint import load_checkpoint  # noqa: E402
from pccscope_capture.config import preset  # noqa: E402
from pccscope_capture.inputs import make_inputs  # noqa: E402
from pccscope_capture.model import as_acts, configure_torch, run_prefix, sample  # noqa: E402
from pccscope_capture.scope import Params, Recorder, Scope  # noqa: E402
from test_tracing import run_compare  # noqa: E402

BUGGY = "expert.layers.3.attn.q_rope"


class CaptureRecorder(Recorder):
    """The reference's recorder, writing each op through the external-producer API."""

    def __init__(self, cap: Capture):
        super().__init__()
        self.cap = cap

    def record(self, name, kind, attrs, inputs, params, t):
        self.cap.record(name, t, kind=kind, attrs=attrs, inputs=inputs, params=params)


def test_reference_with_a_broken_rope_is_reported_at_that_op(tmp_path, goldens_dir,
                                                             monkeypatch):
    cfg = preset("tiny")
    configure_torch(1)
    params = Params(load_checkpoint(goldens_dir / "checkpoint.safetensors", cfg).tensors)
    real_rope = ops.rope

    def rope(s, leaf, x, positions, theta, head_dim):
        if not s.op_name(leaf).endswith(BUGGY):
            return real_rope(s, leaf, x, positions, theta, head_dim)
        # x·cos only: rope(x, p) and rope(x, −p) differ exactly in the sign of the sin term
        neg = type(positions)(positions.name, -positions.t)
        y = (rope_value(x, positions, theta, head_dim) + rope_value(x, neg, theta, head_dim)) / 2
        return s.emit(leaf, "rope", {"theta": theta, "head_dim": head_dim}, [x, positions],
                      [], y)

    def rope_value(x, pos, theta, head_dim):
        scratch = Scope(Recorder(enabled=False), params)
        return real_rope(scratch, "tmp", x, pos, theta, head_dim).t

    monkeypatch.setattr(ops, "rope", rope)
    inputs = make_inputs(cfg, 0)
    cap_dir = tmp_path / "buggy-port"
    with Capture(cap_dir, goldens=goldens_dir, producer={"backend": "torch-port"},
                 shard_bytes=4 << 20) as cap:
        for name, a in inputs.items():
            cap.add_input(name, a)
        root = Scope(CaptureRecorder(cap), params)
        acts = as_acts({k: torch.from_numpy(v.copy()) for k, v in inputs.items()})
        with torch.no_grad():
            sample(root, cfg, run_prefix(root, cfg, acts), acts)

    proc, report = run_compare(goldens_dir, cap_dir, tmp_path / "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = report["summary"]["first_divergence"]
    assert (first["module"], first["op"]) == ("pi0", "denoise.0." + BUGGY), first
    assert f"first divergence: denoise.0.{BUGGY}" in proc.stdout
    ops_ = {o["name"]: o for m in report["modules"] for o in m["ops"]}
    assert len(ops_) == 4127
    bug = ops_["denoise.0." + BUGGY]
    assert bug["local"]["pass"] is False and bug["verdict"] == "fail"
    before = [o for o in ops_.values() if o["index"] < bug["index"]]
    assert before and all(o["verdict"] == "pass" for o in before)
    for name in ("denoise.0.expert.layers.3.attn.sdpa", "denoise.0.expert.norm",
                 "denoise.9.euler"):
        o = ops_[name]
        assert o["local"]["pass"] is True, name
        assert o["verdict"] == "fail", f"{name} must drift: {o['chained']}"
    # Each denoise step repeats the bug; no other op fails its local check.
    local_failed = sorted(n for n, o in ops_.items() if o["local"] and not o["local"]["pass"])
    assert local_failed == sorted(f"denoise.{k}.{BUGGY}" for k in range(10))
    assert np.isfinite(report["modules"][0]["min_pcc"])
