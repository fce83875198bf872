"""Stats, hash and capture writer (numpy + safetensors only)."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from pccscope_capture.stats import compute_stats, fnv1a64
from pccscope_capture.writer import CaptureError, CaptureWriter, ModuleRecord, OpRecord


def test_fnv1a64_reference_vectors():
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_stats_over_finite_values():
    a = np.array([1.0, -3.0, np.nan, np.inf, 2.0], dtype=np.float32)
    st = compute_stats(a)
    assert (st["min"], st["max"], st["nan"], st["inf"]) == (-3.0, 2.0, 1, 1)
    assert st["mean"] == pytest.approx(0.0)
    assert st["std"] == pytest.approx(np.sqrt(14 / 3))
    assert st["l2"] == pytest.approx(np.sqrt(14))
    assert st["hash"] == f"fnv1a64:{fnv1a64(a.tobytes()):016x}"


def _op(name, data, store=True, inputs=()):
    return OpRecord(name=name, kind="add", attrs={}, inputs=list(inputs), params=[],
                    shape=data.shape, data=data, store=store)


def test_writer_dedups_identical_data_and_keeps_stats_only(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    w = CaptureWriter(tmp_path, producer={"name": "t"}, model="pi0", preset="tiny", config={},
                      checkpoint=None)
    w.add_input("x", x)
    w.add_module(ModuleRecord("a", ["x"], ["a.copy"], [
        _op("a.copy", x.copy(), inputs=["x"]),                 # same bytes as the input
        _op("a.twice", x * 2, inputs=["a.copy"]),
        _op("a.reshaped", (x * 2).reshape(3, 2)),              # same bytes, other shape
        _op("a.big", x * 3, store=False),
    ]))
    w.add_module(ModuleRecord("b", ["a.twice"], ["b.again"], [_op("b.again", x * 2)]))
    w.write()
    m = json.loads((tmp_path / "manifest.json").read_text())
    ops = {op["name"]: op for mod in m["modules"] for op in mod["ops"]}
    assert (ops["a.copy"]["file"], ops["a.copy"]["tensor"]) == ("inputs.safetensors", "x")
    assert (ops["a.twice"]["file"], ops["a.twice"]["tensor"]) == ("a.safetensors", "a.twice")
    assert (ops["a.reshaped"]["file"], ops["a.reshaped"]["tensor"]) == ("a.safetensors",
                                                                        "a.reshaped")
    assert "file" not in ops["a.big"] and ops["a.big"]["stats"]["max"] == 15.0
    assert (ops["b.again"]["file"], ops["b.again"]["tensor"]) == ("a.safetensors", "a.twice")
    assert not (tmp_path / "b.safetensors").exists()
    assert set(load_file(str(tmp_path / "a.safetensors"))) == {"a.twice", "a.reshaped"}


def test_writer_rejects_a_name_reused_for_other_data(tmp_path):
    x = np.ones(3, dtype=np.float32)
    w = CaptureWriter(tmp_path, producer={}, model="pi0", preset="t", config={}, checkpoint=None)
    w.add_module(ModuleRecord("a", [], [], [_op("n", x)]))
    w.add_module(ModuleRecord("b", [], [], [_op("n", x * 2)]))
    with pytest.raises(CaptureError, match="one name must always mean one tensor"):
        w.write()


def test_writer_is_deterministic(tmp_path):
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    for d in ("one", "two"):
        w = CaptureWriter(tmp_path / d, producer={"seed": 0}, model="pi0", preset="t",
                          config={"a": 1}, checkpoint=None)
        w.add_input("x", x)
        w.add_module(ModuleRecord("m", ["x"], ["m.y"], [_op("m.y", x + 1, inputs=["x"])]))
        w.write()
    for f in ("manifest.json", "inputs.safetensors", "m.safetensors"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()
