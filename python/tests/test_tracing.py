"""The capture writer for external producers (`Capture`, the TT-NN hook), without torch:
names, streaming shards with bounded memory, dedup, stats-only records, the fake-ttnn hook,
error records, and that `pccscope compare` reads what it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import _fake_ttnn
from conftest import REPO
from pccscope_capture import Capture, CaptureError
from pccscope_capture.stats import compute_stats, fnv1a64, fnv1a64_bytewise
from pccscope_capture.tensors import dtype_name, layout_name, memory_name
from pccscope_capture.ttnn_hooks import trace_ttnn
from pccscope_capture.writer import load_manifest


def _ops(manifest):
    return {op["name"]: (m["id"], op) for m in manifest["modules"] for op in m["ops"]}


def _data(cap_dir: Path, op) -> np.ndarray:
    return load_file(str(cap_dir / op["file"]))[op["tensor"]]


def test_vectorised_fnv1a64_is_bit_identical_to_the_byte_loop():
    rng = np.random.default_rng(7)
    for n in (0, 1, 4095, 4096, 4097, 70_001, (1 << 20) - 3, (1 << 20) + 129):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert fnv1a64(data) == fnv1a64_bytewise(data), n
    # Repeated bytes stress the low-byte recurrence differently from random ones.
    for fill in (0, 0xFF, 0xB3):
        data = bytes([fill]) * 10_000
        assert fnv1a64(data) == fnv1a64_bytewise(data), fill


def test_scopes_modules_and_inputs_by_name_or_object(tmp_path, goldens_dir):
    images = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2)
    tokens = np.array([[2, 7, 0]], dtype=np.int64)
    with Capture(tmp_path, goldens=goldens_dir, producer={"kind": "test-port"}) as cap:
        cap.add_input("images", images)
        cap.add_input("tokens", tokens)
        cap.add_input("lang_masks", np.array([[True, True, False]]))
        with cap.module("siglip"), cap.scope("siglip"):
            p = cap.record("patch_embed", images.reshape(2, 3, 4) * 2, inputs=[images])
            with cap.scope("layers"), cap.scope(0):
                assert cap.current_scope == "siglip.layers.0"
                x = cap.record("ln1", p + 1, kind="layer_norm", attrs={"eps": 1e-6},
                               inputs=[p], params=["w", "b"], layout="Layout.TILE",
                               memory="MemoryConfig(memory_layout=TensorMemoryLayout::"
                                      "HEIGHT_SHARDED,buffer_type=BufferType::L1)",
                               dtype="DataType.BFLOAT8_B", padded_shape=(2, 32, 32))
                cap.record("q", x * 3, inputs=["siglip.layers.0.ln1"])
        cap.record("denoise.0.time", np.ones(1, np.float32))  # default module: pi0
    m = load_manifest(tmp_path)
    g = load_manifest(goldens_dir)
    assert (m["model"], m["preset"], m["config"]) == (g["model"], g["preset"], g["config"])
    assert m["producer"]["kind"] == "test-port" and "partial" not in m["producer"]
    assert m["checkpoint"] is None
    assert {i["name"]: i["dtype"] for i in m["inputs"]} == {
        "images": "F32", "tokens": "I64", "lang_masks": "BOOL"}
    ops = _ops(m)
    assert [mod["id"] for mod in m["modules"]] == ["siglip", "pi0"]  # in order of first use
    assert ops["siglip.patch_embed"][1]["inputs"] == ["images"]
    assert ops["siglip.patch_embed"][1]["kind"] == "unknown"
    mod, ln1 = ops["siglip.layers.0.ln1"]
    assert mod == "siglip"
    assert (ln1["kind"], ln1["attrs"], ln1["params"]) == ("layer_norm", {"eps": 1e-6}, ["w", "b"])
    assert ln1["inputs"] == ["siglip.patch_embed"]
    assert (ln1["layout"], ln1["memory"], ln1["device_dtype"], ln1["padded_shape"]) == (
        "tile", "l1_height_sharded", "bfloat8_b", [2, 32, 32])
    assert ops["siglip.layers.0.q"][1]["inputs"] == ["siglip.layers.0.ln1"]
    assert ops["denoise.0.time"][0] == "pi0"
    np.testing.assert_array_equal(_data(tmp_path, ln1), images.reshape(2, 3, 4) * 2 + 1)
    assert ln1["stats"] == compute_stats(images.reshape(2, 3, 4) * 2 + 1)


def test_streaming_flushes_bounded_shards_and_a_readable_partial_manifest(tmp_path):
    rng = np.random.default_rng(0)
    chunk = [rng.standard_normal((64, 64)).astype(np.float32) for _ in range(12)]
    shard = 3 * chunk[0].nbytes  # flush every third tensor
    cap = Capture(tmp_path, shard_bytes=shard)
    peak = 0
    with cap.module("vlm"):
        for i, a in enumerate(chunk):
            cap.record(f"vlm.layers.{i}.mlp.down", a)
            peak = max(peak, cap._writer._pending_bytes)
            if i == 4:
                partial = load_manifest(tmp_path)
                assert partial["producer"]["partial"] is True
                names = [op["name"] for op in partial["modules"][0]["ops"]]
                assert names == [f"vlm.layers.{k}.mlp.down" for k in range(3)]
                for op in partial["modules"][0]["ops"]:
                    assert (tmp_path / op["file"]).exists()
        # byte-identical to a tensor already written: points at it, nothing new stored
        cap.record("vlm.copy_of_0", chunk[0].copy())
    cap.close()
    assert peak < shard
    m = load_manifest(tmp_path)
    assert "partial" not in m["producer"]
    ops = _ops(m)
    files = sorted({op["file"] for _, op in ops.values()})
    assert files == ["vlm.1.safetensors", "vlm.2.safetensors", "vlm.3.safetensors",
                     "vlm.safetensors"]
    copy = ops["vlm.copy_of_0"][1]
    assert (copy["file"], copy["tensor"]) == ("vlm.safetensors", "vlm.layers.0.mlp.down")
    for i, a in enumerate(chunk):
        np.testing.assert_array_equal(_data(tmp_path, ops[f"vlm.layers.{i}.mlp.down"][1]), a)


def test_stats_only_policy_and_explicit_store(tmp_path):
    big = np.arange(1000, dtype=np.float32)
    with Capture(tmp_path, stats_only_above=100) as cap:
        cap.record("big", big)
        cap.record("small", big[:10])
        cap.record("forced", big[:10] + 1, store=False)
    ops = _ops(load_manifest(tmp_path))
    assert "file" not in ops["big"][1] and ops["big"][1]["stats"]["max"] == 999.0
    assert ops["big"][1]["shape"] == [1000]
    assert "file" in ops["small"][1]
    assert "file" not in ops["forced"][1]
    with pytest.raises(CaptureError, match="not both"):
        Capture(tmp_path / "x", stats_only_above=1, keep=lambda n, k: True)


def test_bad_records_are_refused_with_the_op_named(tmp_path):
    cap = Capture(tmp_path)
    x = np.ones(3, np.float32)
    cap.record("a", x)
    with pytest.raises(CaptureError, match="recorded twice in module 'pi0'"):
        cap.record("a", x)
    with cap.module("other"):
        with pytest.raises(CaptureError, match="one name must always mean one tensor"):
            cap.record("a", x * 2)
    with pytest.raises(CaptureError, match=r"input #1 of op 'b' \(ndarray\) was never recorded"):
        cap.record("b", x, inputs=["a", np.zeros(2)])
    with pytest.raises(CaptureError, match="must not be empty"):
        with cap.scope(""):
            pass
    with pytest.raises(CaptureError, match="empty segment"):
        cap.record("x..y", x)
    cap.close()
    with pytest.raises(CaptureError, match="already closed"):
        cap.record("late", x)


def test_device_names_are_normalised():
    assert dtype_name(_fake_ttnn.DataType.BFLOAT8_B) == "bfloat8_b"
    assert dtype_name("DataType.BFLOAT16") == "bf16"
    assert dtype_name(np.float32) == "f32"
    assert dtype_name("mystery") == "mystery"
    assert layout_name(_fake_ttnn.Layout.ROW_MAJOR) == "row_major"
    assert memory_name(_fake_ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG) == "l1_width_sharded"
    assert memory_name(str(_fake_ttnn.DRAM_MEMORY_CONFIG)) == "dram_interleaved"


def test_ttnn_hook_records_every_op_with_device_metadata(tmp_path, monkeypatch):
    tt = _fake_ttnn.make()
    monkeypatch.setitem(sys.modules, "ttnn", tt)  # for record() on a TT-NN tensor
    rng = np.random.default_rng(1)
    x_host = rng.standard_normal((1, 40, 8)).astype(np.float32)
    w = tt.from_torch(rng.standard_normal((8, 8)).astype(np.float32))  # not traced: a weight
    with Capture(tmp_path) as cap:
        with trace_ttnn(cap, ttnn=tt) as hook:
            assert tt.CONFIG.enable_fast_runtime_mode is False
            x = tt.from_torch(x_host)
            cap.record("x", x)
            with cap.scope("vlm.layers.0.attn"):
                q = tt.linear(x, w, memory_config=tt.L1_WIDTH_SHARDED_MEMORY_CONFIG)
                k = tt.linear(x, w, dtype=tt.DataType.BFLOAT8_B)
                cap.record("q", q, kind="linear", params=["q.weight"])
                s = tt.add(q, k)
                heads = tt.split_heads(s)
            assert hook.recorded == 5 and not hook.failures
        assert tt.CONFIG.enable_fast_runtime_mode is True
        assert tt.decorators.PRE_OPERATION_HOOKS == tt.decorators.POST_OPERATION_HOOKS == []
        tt.add(q, k)  # after the block: not recorded
    m = load_manifest(tmp_path)
    ops = _ops(m)
    assert list(ops) == ["x", "vlm.layers.0.attn.q", "vlm.layers.0.attn.linear_1",
                         "vlm.layers.0.attn.add", "vlm.layers.0.attn.split_heads.0",
                         "vlm.layers.0.attn.split_heads.1"]
    q_rec = ops["vlm.layers.0.attn.q"][1]
    assert (q_rec["kind"], q_rec["params"], q_rec["inputs"]) == ("linear", ["q.weight"], ["x"])
    assert (q_rec["device_dtype"], q_rec["layout"], q_rec["memory"], q_rec["padded_shape"]) == (
        "bf16", "tile", "l1_width_sharded", [1, 64, 32])
    k_rec = ops["vlm.layers.0.attn.linear_1"][1]
    assert (k_rec["kind"], k_rec["device_dtype"], k_rec["memory"]) == (
        "ttnn.linear", "bfloat8_b", "dram_interleaved")
    add = ops["vlm.layers.0.attn.add"][1]
    assert add["inputs"] == ["vlm.layers.0.attn.q", "vlm.layers.0.attn.linear_1"]
    assert ops["vlm.layers.0.attn.split_heads.1"][1]["inputs"] == ["vlm.layers.0.attn.add"]
    np.testing.assert_array_equal(_data(tmp_path, add), s._data)
    np.testing.assert_array_equal(_data(tmp_path, ops["x"][1]), x._data)
    assert "ttnn.to_torch" in tt.calls  # data came through ttnn.to_torch


def test_a_reused_object_id_is_not_taken_for_a_recorded_tensor(tmp_path, monkeypatch):
    """TT-NN tensors take no weak references: a recorded tensor is known by id + shape +
    dtype. A new object from a skipped op (from_torch) may get the id of a dead recorded
    one; the hook forgets that id, so the new tensor is not listed as the old op's output."""
    tt = _fake_ttnn.make()
    fresh = tt.Tensor(np.zeros((2, 4), np.float32))
    real_from_torch = tt.from_torch.fn
    with Capture(tmp_path) as cap, trace_ttnn(cap, ttnn=tt):
        x = tt.from_torch(np.ones((2, 4), np.float32))
        y = tt.add(x, x)
        assert cap._known_name(y) == "add"
        assert cap._known_name(tt.to_device(y)) == "add"  # same object: still known
        cap._ids[id(fresh)] = cap._ids[id(y)]  # as if `fresh` reused the id of a dead `y`
        assert cap._known_name(fresh) == "add"
        monkeypatch.setattr(tt.from_torch, "fn", lambda a: fresh)
        z = tt.from_torch(np.zeros((2, 4), np.float32))
        monkeypatch.setattr(tt.from_torch, "fn", real_from_torch)
        assert z is fresh and cap._known_name(z) is None
        tt.add(z, y)
    ops = _ops(load_manifest(tmp_path))
    assert ops["add_1"][1]["inputs"] == ["add"]


def test_an_op_that_raises_under_the_hook_becomes_an_error_record(tmp_path):
    tt = _fake_ttnn.make()
    x = tt.from_torch(np.ones((2, 4), np.float32))
    with pytest.raises(RuntimeError, match="bad shard spec"):
        with Capture(tmp_path) as cap, trace_ttnn(cap, ttnn=tt):
            with cap.scope("siglip.layers.2"):
                y = tt.add(x, x)
                tt.fails(y)
    assert tt.decorators.PRE_OPERATION_HOOKS == tt.decorators.POST_OPERATION_HOOKS == []
    assert tt.CONFIG.enable_fast_runtime_mode is True
    ops = _ops(load_manifest(tmp_path))
    err = ops["siglip.layers.2.fails"][1]
    assert err["error"] == "RuntimeError: TT_FATAL: bad shard spec"
    assert (err["kind"], err["inputs"], err["shape"]) == ("ttnn.fails", ["siglip.layers.2.add"], [])
    assert "stats" not in err and "file" not in err


def test_a_hook_failure_does_not_stop_the_program(tmp_path, monkeypatch):
    tt = _fake_ttnn.make()
    x = tt.from_torch(np.ones((2, 4), np.float32))
    real = tt.to_torch
    with Capture(tmp_path) as cap, trace_ttnn(cap, ttnn=tt) as hook:
        def unreadable(t):
            raise RuntimeError("buffer not allocated")

        monkeypatch.setattr(tt, "to_torch", unreadable)
        with pytest.warns(RuntimeWarning, match=r"could not record add \(ttnn.add output 0\)"):
            y = tt.add(x, x)
        monkeypatch.setattr(tt, "to_torch", real)
        tt.add(y, x)
    assert hook.failures == ["add (ttnn.add output 0): buffer not allocated"]
    # Names are positional, so the second add keeps its name whatever happened to the first.
    assert list(_ops(load_manifest(tmp_path))) == ["add_1"]


def _pccscope_binary():
    """The pccscope binary built by cargo (PCCSCOPE_BIN overrides), newest first."""
    env = os.environ.get("PCCSCOPE_BIN")
    if env:
        return Path(env)
    found = [p for p in (REPO / "target" / "release" / "pccscope",
                         REPO / "target" / "debug" / "pccscope") if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def run_compare(goldens: Path, capture: Path, out: Path, *extra: str):
    exe = _pccscope_binary()
    if exe is None:
        pytest.skip("no pccscope binary (cargo build first, or set PCCSCOPE_BIN)")
    proc = subprocess.run([str(exe), "compare", str(goldens), str(capture), "--report-dir",
                           str(out), "--quiet", *extra], capture_output=True, text=True)
    reports = sorted(out.glob("*/report.json"))
    report = json.loads(reports[-1].read_text()) if reports else None
    return proc, report


def test_pccscope_compare_names_the_changed_op_of_a_numpy_capture(tmp_path, goldens_dir):
    """Re-record the goldens' siglip module through `Capture` (kinds, inputs and params from
    the golden records), one op changed: compare names that op, by its local check."""
    g = load_manifest(goldens_dir)
    shards: dict = {}

    def tensor(rec):
        f = rec["file"]
        if f not in shards:
            shards[f] = load_file(str(goldens_dir / f))
        return shards[f][rec.get("tensor", rec["name"])]

    target = "siglip.layers.5.mlp.fc1"
    inputs = {i["name"]: i for i in g["inputs"]}
    cap_dir = tmp_path / "port"
    with Capture(cap_dir, goldens=goldens_dir, producer={"backend": "numpy-port"}) as cap:
        cap.add_input("images", tensor(inputs["images"]))
        with cap.module("siglip"):
            for rec in next(m for m in g["modules"] if m["id"] == "siglip")["ops"]:
                data = tensor(rec)
                if rec["name"] == target:
                    data = data * np.float32(1.001) + np.float32(1e-3)
                cap.record(rec["name"], data, kind=rec["kind"], attrs=rec["attrs"],
                           inputs=rec["inputs"], params=rec["params"])
    proc, report = run_compare(goldens_dir, cap_dir, tmp_path / "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = report["summary"]["first_divergence"]
    assert (first["op"], first["module"]) == (target, "siglip"), first
    assert report["run"]["backend"] == "numpy-port"
    ops = {o["name"]: o for o in report["modules"][0]["ops"]}
    assert ops[target]["local"]["pass"] is False
    assert ops["siglip.layers.5.ln2"]["local"]["pass"] is True
    assert all(o["local"] is not None for o in ops.values())
    assert "golden modules not in the capture (10)" in proc.stdout
