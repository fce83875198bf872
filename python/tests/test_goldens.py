"""Checks of the committed capture goldens/pi0-tiny against goldens/README.md.

numpy + safetensors only (these run in CI without torch). The expected op sequence below is
written from the README tables, independently of the reference's Scope code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from safetensors.numpy import load_file

from _helpers import safetensors_header
from pccscope_capture import naming
from pccscope_capture.config import preset
from pccscope_capture.stats import compute_stats, fnv1a64
from pccscope_capture.writer import SCHEMA, load_manifest

CFG = preset("tiny")
MODULE_IDS = ["siglip", "projector", "lang_embed", "prefix", "vlm", "suffix", "attn_masks",
              "expert", "action_extract", "action_proj", "pi0"]
BOUNDARIES = {"time", "suffix.embs", "attn_masks.suffix_rows", "attn_masks.suffix_positions",
              "expert.norm", "action_extract.slice", "action_proj.linear", "euler.step", "euler"}
MIB = 1024 * 1024


# ---- the op sequence of goldens/README.md -----------------------------------------------------

def siglip_names() -> List[str]:
    out = ["siglip.patch_embed", "siglip.pos_embed", "siglip.embed"]
    for i in range(27):
        p = f"siglip.layers.{i}."
        out += [p + n for n in ("ln1", "attn.q", "attn.k", "attn.v", "attn.sdpa", "attn.out",
                                "attn_residual", "ln2", "mlp.fc1", "mlp.act", "mlp.fc2",
                                "mlp_residual")]
    return out + ["siglip.post_ln"]


def gemma_names(s: str, cached: bool) -> List[str]:
    out = []
    for i in range(18):
        p = f"{s}.layers.{i}."
        attn = ["attn.q", "attn.k", "attn.v", "attn.q_rope", "attn.k_rope"]
        if cached:
            attn += ["attn.k_cat", "attn.v_cat"]
        out += [p + n for n in ["input_norm"] + attn + [
            "attn.sdpa", "attn.o", "attn_residual", "post_norm", "mlp.gate", "mlp.up", "mlp.act",
            "mlp.mul", "mlp.down", "mlp_residual"]]
    return out + [f"{s}.norm"]


def step_names(p: str) -> Dict[str, List[str]]:
    return {
        "suffix": [p + "suffix." + n for n in (
            "state_proj", "state_token", "time_embed", "action_in", "time_tokens", "concat",
            "mlp_in", "mlp_act", "mlp_out", "embs", "pad_masks", "ar_head", "ar_tail",
            "att_masks")],
        "attn_masks": [p + "attn_masks." + n for n in (
            "pad", "ar", "full", "positions", "suffix_rows", "suffix_positions")],
        "expert": gemma_names(p + "expert", cached=True),
        "action_extract": [p + "action_extract.slice"],
        "action_proj": [p + "action_proj.linear"],
    }


def expected_names() -> Dict[str, List[str]]:
    mods = {
        "siglip": siglip_names(),
        "projector": ["projector.linear"],
        "lang_embed": ["lang_embed.embedding", "lang_embed.scale"],
        "prefix": ["prefix." + n for n in ("image_tokens", "embs", "img_pad", "pad_masks",
                                           "att_masks")],
        "vlm": ["vlm.mask", "vlm.positions"] + gemma_names("vlm", cached=False),
    }
    mods.update(step_names(""))
    pi0 = [n for m in ("siglip", "projector", "lang_embed", "prefix", "vlm") for n in mods[m]]
    for k in range(10):
        p = f"denoise.{k}."
        pi0.append(p + "time")
        for names in step_names(p).values():
            pi0 += names
        pi0 += [p + "euler.step", p + "euler"]
    mods["pi0"] = pi0
    return mods


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifest(goldens_dir):
    return load_manifest(goldens_dir)


@pytest.fixture(scope="module")
def shards(goldens_dir, manifest) -> Dict[str, Dict[str, np.ndarray]]:
    files = {i["file"] for i in manifest["inputs"]}
    files |= {op["file"] for m in manifest["modules"] for op in m["ops"] if "file" in op}
    return {f: load_file(str(goldens_dir / f)) for f in sorted(files)}


@pytest.fixture(scope="module")
def records(manifest) -> Dict[str, dict]:
    out = {}
    for m in manifest["modules"]:
        for op in m["ops"]:
            out.setdefault(op["name"], op)
    return out


def data(shards, rec) -> np.ndarray:
    return shards[rec["file"]][rec.get("tensor", rec["name"])]


# ---- structure --------------------------------------------------------------------------------

def test_header(manifest):
    assert manifest["schema"] == SCHEMA
    prod = manifest["producer"]
    assert prod["name"] == "pccscope-capture" and prod["kind"] == "torch-reference"
    assert prod["seed"] == 0 and prod["torch"]
    assert manifest["model"] == "pi0" and manifest["preset"] == "tiny"
    assert manifest["config"] == CFG.to_dict()


def test_lists_the_eleven_modules_in_order(manifest):
    assert [m["id"] for m in manifest["modules"]] == MODULE_IDS


def test_op_sequence_is_the_readme_one(manifest):
    exp = expected_names()
    for m in manifest["modules"]:
        got = [op["name"] for op in m["ops"]]
        assert got == exp[m["id"]], f"module {m['id']}: op names/order differ from the README"


def test_inputs(manifest, shards):
    inputs = {i["name"]: i for i in manifest["inputs"]}
    assert list(inputs) == ["images", "img_masks", "tokens", "lang_masks", "state", "noise",
                            "time"]
    spec = {"images": ([2, 3, 70, 70], "F32"), "img_masks": ([1, 2], "BOOL"),
            "tokens": ([1, 8], "I64"), "lang_masks": ([1, 8], "BOOL"), "state": ([1, 32], "F32"),
            "noise": ([1, 50, 32], "F32"), "time": ([1], "F32")}
    for name, (shape, dtype) in spec.items():
        assert (inputs[name]["shape"], inputs[name]["dtype"]) == (shape, dtype), name
        assert list(shards["inputs.safetensors"][name].shape) == shape
    t = shards["inputs.safetensors"]
    assert t["images"].min() >= -1.0 and t["images"].max() <= 1.0
    assert t["img_masks"].all()
    tokens = t["tokens"][0]
    assert tokens[0] == 2 and (tokens[:6] < CFG.vlm.vocab).all() and (tokens[:6] > 0).all()
    assert (tokens[6:] == 0).all()
    assert t["lang_masks"][0].tolist() == [True] * 6 + [False] * 2
    assert t["time"].tolist() == [1.0]


def test_module_dataflow_is_closed(manifest):
    """Every op input is a module input or an earlier op of the same module; every output is
    an op of the module; shard paths stay inside the capture."""
    for m in manifest["modules"]:
        known = set(m["inputs"])
        for op in m["ops"]:
            for i in op["inputs"]:
                assert i in known, f"{m['id']}: {op['name']} reads {i}, not available there"
            known.add(op["name"])
            if "file" in op:
                p = Path(op["file"])
                assert not p.is_absolute() and ".." not in p.parts
        for o in m["outputs"]:
            assert o in {op["name"] for op in m["ops"]}, f"{m['id']}: output {o} is no op"


def test_every_record_has_stats_and_dtype(manifest):
    for m in manifest["modules"]:
        for op in m["ops"]:
            assert op["dtype"] == "F32"
            st = op["stats"]
            assert set(st) == {"min", "max", "mean", "std", "l2", "nan", "inf", "hash"}
            assert st["hash"].startswith("fnv1a64:") and len(st["hash"]) == 8 + 16
            assert st["nan"] == 0 and st["inf"] == 0, op["name"]


def test_stored_tensors_match_their_records(manifest, shards):
    for m in manifest["modules"]:
        for op in m["ops"]:
            if "file" not in op:
                continue
            a = data(shards, op)
            assert a.dtype == np.float32 and list(a.shape) == op["shape"], op["name"]
            st = op["stats"]
            assert f"fnv1a64:{fnv1a64(a.astype('<f4').tobytes()):016x}" == st["hash"], op["name"]
            assert float(a.min()) == st["min"] and float(a.max()) == st["max"], op["name"]


def test_stats_of_a_sample_recompute(manifest, shards):
    ops = [op for m in manifest["modules"] for op in m["ops"] if "file" in op][::97]
    for op in ops:
        mine = compute_stats(data(shards, op))
        for k in ("mean", "std", "l2"):
            assert mine[k] == pytest.approx(op["stats"][k], rel=1e-9, abs=1e-30), op["name"]


def test_size_budget_policy(manifest):
    ops = next(m for m in manifest["modules"] if m["id"] == "pi0")["ops"]
    for op in ops:
        n = op["name"]
        if n.startswith("denoise."):
            _, k, rest = n.split(".", 2)
            full = int(k) in (0, 9) or rest in BOUNDARIES
        else:
            full = True
        assert ("file" in op) == full, f"{n}: full={'file' in op}, expected {full}"
    for m in manifest["modules"][:10]:
        assert all("file" in op for op in m["ops"]), m["id"]


def test_same_name_same_tensor_and_step0_twins(manifest):
    seen: Dict[str, Tuple[str, str]] = {}
    for m in manifest["modules"]:
        for op in m["ops"]:
            key = (op["stats"]["hash"], op.get("file"), op.get("tensor"))
            assert seen.setdefault(op["name"], key) == key, op["name"]
    recs = {op["name"]: op for m in manifest["modules"] for op in m["ops"]}
    for mid in ("suffix", "attn_masks", "expert", "action_extract", "action_proj"):
        m = next(x for x in manifest["modules"] if x["id"] == mid)
        for op in m["ops"]:
            twin = recs["denoise.0." + op["name"]]
            assert twin["stats"]["hash"] == op["stats"]["hash"]
            assert (twin["file"], twin["tensor"]) == (op["file"], op["tensor"]), op["name"]


def test_size_within_budget(goldens_dir):
    total = sum(p.stat().st_size for p in goldens_dir.iterdir() if p.is_file())
    assert total <= 25 * MIB, f"goldens/pi0-tiny is {total / MIB:.1f} MiB > 25 MiB"


# ---- checkpoint -------------------------------------------------------------------------------

def test_checkpoint_has_777_tensors_with_the_real_names(goldens_dir, manifest):
    ref = manifest["checkpoint"]
    assert ref == {"file": "checkpoint.safetensors", "naming": "current", "dtype": "BF16",
                   "tensors": 777}
    header = safetensors_header(goldens_dir / ref["file"])
    assert len(header) == 777
    expected = naming.expected_tensors(CFG)
    assert set(header) == set(expected)
    for name, info in header.items():
        assert info["dtype"] == "BF16", name
        assert tuple(info["shape"]) == expected[name], name
    assert naming.TIED_EMBEDDING in header and naming.TIED_EMBEDDING_ALIAS not in header
    assert naming.EXPERT_LM_HEAD in header


def test_params_name_checkpoint_tensors(goldens_dir, manifest):
    header = safetensors_header(goldens_dir / "checkpoint.safetensors")
    used = {p for m in manifest["modules"] for op in m["ops"] for p in op["params"]}
    assert used <= set(header)
    assert set(header) - used == {naming.EXPERT_LM_HEAD}


# ---- values that need no torch to check -------------------------------------------------------

def test_actions(records, shards):
    rec = records["denoise.9.euler"]
    assert rec["shape"] == [1, 50, 32]
    a = data(shards, rec)
    assert np.isfinite(a).all() and a.std() > 0.1


def test_euler_steps_are_exact(records, shards):
    dt = np.float32(-0.1)
    x = shards["inputs.safetensors"]["noise"]
    for k in range(10):
        v = data(shards, records[f"denoise.{k}.action_proj.linear"])
        step = data(shards, records[f"denoise.{k}.euler.step"])
        assert records[f"denoise.{k}.euler.step"]["attrs"]["value"] == float(dt)
        np.testing.assert_array_equal(step, v * dt)
        x_next = data(shards, records[f"denoise.{k}.euler"])
        np.testing.assert_array_equal(x_next, x + step)
        x = x_next
        t = data(shards, records[f"denoise.{k}.time"])
        assert t.tolist() == [float(np.float32(1.0 + k * -0.1))]


def test_masks_and_positions(records, shards):
    lp, nv = CFG.prefix_len, CFG.prefix_valid
    pad = data(shards, records["prefix.pad_masks"])[0]
    assert pad.tolist() == [1.0] * nv + [0.0] * (lp - nv)
    pos = data(shards, records["vlm.positions"])[0]
    np.testing.assert_array_equal(pos, np.cumsum(pad) - 1)
    spos = data(shards, records["attn_masks.suffix_positions"])[0]
    np.testing.assert_array_equal(spos, nv + np.arange(51, dtype=np.float32))
    rows = data(shards, records["attn_masks.suffix_rows"])[0, 0]
    mv = np.float32(CFG.mask_value)
    allowed = rows == 0
    assert set(np.unique(rows).tolist()) == {0.0, float(mv)}
    assert allowed[:, :nv].all() and not allowed[:, nv:lp].any()
    assert allowed[0, lp] and not allowed[0, lp + 1:].any()      # state: prefix + itself
    assert allowed[1:, lp:].all()                                 # actions: everything valid
    vm = data(shards, records["vlm.mask"])[0, 0]
    assert (vm[:nv, :nv] == 0).all() and (vm[:, nv:] == mv).all() and (vm[nv:, :] == mv).all()


def test_lang_embed_scale(records, shards):
    e = data(shards, records["lang_embed.embedding"])
    s = data(shards, records["lang_embed.scale"])
    assert records["lang_embed.scale"]["attrs"]["value"] == 8.0
    np.testing.assert_array_equal(s, e * np.float32(8.0))


# ---- kinds, attrs, params of every op (README tables) -----------------------------------------

F32 = lambda x: float(np.float32(x))  # noqa: E731
GEMMA_OPS = {
    "input_norm": ("rms_norm", {"eps": 1e-6, "offset": 1.0}, ["input_layernorm.weight"]),
    "attn.q": ("linear", {}, ["self_attn.q_proj.weight"]),
    "attn.k": ("linear", {}, ["self_attn.k_proj.weight"]),
    "attn.v": ("linear", {}, ["self_attn.v_proj.weight"]),
    "attn.q_rope": ("rope", {"theta": 10000.0, "head_dim": 16}, []),
    "attn.k_rope": ("rope", {"theta": 10000.0, "head_dim": 16}, []),
    "attn.k_cat": ("concat", {"dim": 1}, []),
    "attn.v_cat": ("concat", {"dim": 1}, []),
    "attn.sdpa": ("sdpa", {"q_heads": 8, "kv_heads": 1, "head_dim": 16, "scale": 0.25}, []),
    "attn.o": ("linear", {}, ["self_attn.o_proj.weight"]),
    "attn_residual": ("add", {}, []),
    "post_norm": ("rms_norm", {"eps": 1e-6, "offset": 1.0}, ["post_attention_layernorm.weight"]),
    "mlp.gate": ("linear", {}, ["mlp.gate_proj.weight"]),
    "mlp.up": ("linear", {}, ["mlp.up_proj.weight"]),
    "mlp.act": ("gelu", {"approx": "tanh"}, []),
    "mlp.mul": ("mul", {}, []),
    "mlp.down": ("linear", {}, ["mlp.down_proj.weight"]),
    "mlp_residual": ("add", {}, []),
}
LN = {"eps": 1e-6}
SIGLIP_OPS = {
    "ln1": ("layer_norm", LN, ["layer_norm1.weight", "layer_norm1.bias"]),
    "attn.q": ("linear", {}, ["self_attn.q_proj.weight", "self_attn.q_proj.bias"]),
    "attn.k": ("linear", {}, ["self_attn.k_proj.weight", "self_attn.k_proj.bias"]),
    "attn.v": ("linear", {}, ["self_attn.v_proj.weight", "self_attn.v_proj.bias"]),
    "attn.sdpa": ("sdpa", {"q_heads": 2, "kv_heads": 2, "head_dim": 16, "scale": 0.25}, []),
    "attn.out": ("linear", {}, ["self_attn.out_proj.weight", "self_attn.out_proj.bias"]),
    "attn_residual": ("add", {}, []),
    "ln2": ("layer_norm", LN, ["layer_norm2.weight", "layer_norm2.bias"]),
    "mlp.fc1": ("linear", {}, ["mlp.fc1.weight", "mlp.fc1.bias"]),
    "mlp.act": ("gelu", {"approx": "tanh"}, []),
    "mlp.fc2": ("linear", {}, ["mlp.fc2.weight", "mlp.fc2.bias"]),
    "mlp_residual": ("add", {}, []),
}


def _wb(p):
    return [p + ".weight", p + ".bias"]


V, L, E = naming.VISION, naming.LANGUAGE, naming.EXPERT
MV = F32(-2.3819763e38)
FLAT = {
    "siglip.patch_embed": ("conv2d_patch", {"patch": 14}, _wb(f"{V}.embeddings.patch_embedding")),
    "siglip.pos_embed": ("interpolate_bicubic", {"in_h": 4, "in_w": 4, "out_h": 5, "out_w": 5},
                         [f"{V}.embeddings.position_embedding.weight"]),
    "siglip.embed": ("add", {}, []),
    "siglip.post_ln": ("layer_norm", LN, _wb(f"{V}.post_layernorm")),
    "projector.linear": ("linear", {}, _wb(f"{naming.PROJECTOR}.linear")),
    "lang_embed.embedding": ("embedding", {}, [naming.TIED_EMBEDDING]),
    "lang_embed.scale": ("mul_scalar", {"value": 8.0}, []),
    "prefix.image_tokens": ("reshape", {"shape": [1, 50, 64]}, []),
    "prefix.embs": ("concat", {"dim": 1}, []),
    "prefix.img_pad": ("repeat_interleave", {"dim": 1, "repeats": 25}, []),
    "prefix.pad_masks": ("concat", {"dim": 1}, []),
    "prefix.att_masks": ("full", {"shape": [1, 58], "value": 0.0}, []),
    "vlm.mask": ("attn_mask_2d", {"mask_value": MV}, []),
    "vlm.positions": ("positions", {}, []),
    "vlm.norm": ("rms_norm", {"eps": 1e-6, "offset": 1.0}, [f"{L}.norm.weight"]),
    "suffix.state_proj": ("linear", {}, _wb("state_proj")),
    "suffix.state_token": ("reshape", {"shape": [1, 1, 32]}, []),
    "suffix.time_embed": ("time_embed", {"dim": 32, "min_period": 0.004, "max_period": 4.0}, []),
    "suffix.action_in": ("linear", {}, _wb("action_in_proj")),
    "suffix.time_tokens": ("expand", {"shape": [1, 50, 32]}, []),
    "suffix.concat": ("concat", {"dim": 2}, []),
    "suffix.mlp_in": ("linear", {}, _wb("action_time_mlp_in")),
    "suffix.mlp_act": ("silu", {}, []),
    "suffix.mlp_out": ("linear", {}, _wb("action_time_mlp_out")),
    "suffix.embs": ("concat", {"dim": 1}, []),
    "suffix.pad_masks": ("full", {"shape": [1, 51], "value": 1.0}, []),
    "suffix.ar_head": ("full", {"shape": [1, 2], "value": 1.0}, []),
    "suffix.ar_tail": ("full", {"shape": [1, 49], "value": 0.0}, []),
    "suffix.att_masks": ("concat", {"dim": 1}, []),
    "attn_masks.pad": ("concat", {"dim": 1}, []),
    "attn_masks.ar": ("concat", {"dim": 1}, []),
    "attn_masks.full": ("attn_mask_2d", {"mask_value": MV}, []),
    "attn_masks.positions": ("positions", {}, []),
    "attn_masks.suffix_rows": ("slice", {"dim": 2, "start": 58, "end": 109}, []),
    "attn_masks.suffix_positions": ("slice", {"dim": 1, "start": 58, "end": 109}, []),
    "expert.norm": ("rms_norm", {"eps": 1e-6, "offset": 1.0}, [f"{E}.norm.weight"]),
    "action_extract.slice": ("slice", {"dim": 1, "start": 1, "end": 51}, []),
    "action_proj.linear": ("linear", {}, _wb("action_out_proj")),
    "euler.step": ("mul_scalar", {"value": F32(-0.1)}, []),
    "euler": ("add", {}, []),
}


def expected_op(name: str):
    n = name
    k = None
    if n.startswith("denoise."):
        _, k, n = n.split(".", 2)
        if n == "time":
            return "full", {"shape": [1], "value": F32(1.0 + int(k) * -0.1)}, []
    if n in FLAT:
        return FLAT[n]
    stack, _, rest = n.partition(".layers.")
    i, _, leaf = rest.partition(".")
    if stack == "siglip":
        kind, attrs, params = SIGLIP_OPS[leaf]
        return kind, attrs, [f"{V}.encoder.layers.{i}.{p}" for p in params]
    kind, attrs, params = GEMMA_OPS[leaf]
    prefix = {"vlm": L, "expert": E}[stack]
    return kind, attrs, [f"{prefix}.layers.{i}.{p}" for p in params]


def test_kinds_attrs_and_params_are_the_readme_ones(manifest):
    for m in manifest["modules"]:
        for op in m["ops"]:
            kind, attrs, params = expected_op(op["name"])
            assert (op["kind"], op["attrs"], op["params"]) == (kind, attrs, params), op["name"]


def test_op_inputs_follow_the_dataflow(records):
    """Spot checks of `inputs` for the ops whose operands are easy to get wrong."""
    exp = {
        "siglip.layers.0.attn_residual": ["siglip.embed", "siglip.layers.0.attn.out"],
        "siglip.layers.1.ln1": ["siglip.layers.0.mlp_residual"],
        "siglip.layers.3.attn.sdpa": ["siglip.layers.3.attn.q", "siglip.layers.3.attn.k",
                                      "siglip.layers.3.attn.v"],
        "prefix.pad_masks": ["prefix.img_pad", "lang_masks"],
        "vlm.layers.0.input_norm": ["prefix.embs"],
        "vlm.layers.4.attn.q_rope": ["vlm.layers.4.attn.q", "vlm.positions"],
        "vlm.layers.4.attn.sdpa": ["vlm.layers.4.attn.q_rope", "vlm.layers.4.attn.k_rope",
                                   "vlm.layers.4.attn.v", "vlm.mask"],
        "vlm.layers.4.mlp.mul": ["vlm.layers.4.mlp.act", "vlm.layers.4.mlp.up"],
        "vlm.layers.4.mlp_residual": ["vlm.layers.4.attn_residual", "vlm.layers.4.mlp.down"],
        "suffix.time_embed": ["time"],
        "suffix.action_in": ["noise"],
        "suffix.concat": ["suffix.action_in", "suffix.time_tokens"],
        "attn_masks.ar": ["prefix.att_masks", "suffix.att_masks"],
        "expert.layers.0.input_norm": ["suffix.embs"],
        "expert.layers.2.attn.k_rope": ["expert.layers.2.attn.k",
                                        "attn_masks.suffix_positions"],
        "expert.layers.2.attn.k_cat": ["vlm.layers.2.attn.k_rope", "expert.layers.2.attn.k_rope"],
        "expert.layers.2.attn.v_cat": ["vlm.layers.2.attn.v", "expert.layers.2.attn.v"],
        "expert.layers.2.attn.sdpa": ["expert.layers.2.attn.q_rope", "expert.layers.2.attn.k_cat",
                                      "expert.layers.2.attn.v_cat", "attn_masks.suffix_rows"],
        "denoise.0.suffix.action_in": ["noise"],
        "denoise.3.suffix.action_in": ["denoise.2.euler"],
        "denoise.3.suffix.time_embed": ["denoise.3.time"],
        "denoise.3.attn_masks.pad": ["prefix.pad_masks", "denoise.3.suffix.pad_masks"],
        "denoise.3.expert.layers.7.attn.k_cat": ["vlm.layers.7.attn.k_rope",
                                                 "denoise.3.expert.layers.7.attn.k_rope"],
        "denoise.3.euler.step": ["denoise.3.action_proj.linear"],
        "denoise.3.euler": ["denoise.2.euler", "denoise.3.euler.step"],
        "denoise.0.euler": ["noise", "denoise.0.euler.step"],
    }
    for name, inputs in exp.items():
        assert records[name]["inputs"] == inputs, name
