"""The op semantics written in goldens/README.md, re-implemented in plain numpy, reproduce the
committed goldens (no torch). This is the contract a second implementation (the Rust cpu
backend) follows, checked on real records: bicubic position interpolation, RoPE, the time
embedding, the masks, attention including fully masked rows, the norms and GELU."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from safetensors.numpy import load_file

from _helpers import max_abs
from pccscope_capture import naming
from pccscope_capture.writer import load_manifest


def read_bf16_checkpoint(path: Path) -> Dict[str, np.ndarray]:
    """bf16 safetensors -> f32 arrays (exact: bf16 is the top half of an f32)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "BF16", name
        a, b = info["data_offsets"]
        u16 = np.frombuffer(blob[a:b], dtype="<u2").astype(np.uint32)
        out[name] = (u16 << 16).view(np.float32).reshape(info["shape"])
    return out


@pytest.fixture(scope="module")
def g(goldens_dir):
    m = load_manifest(goldens_dir)
    recs = {}
    for mod in m["modules"]:
        for op in mod["ops"]:
            recs.setdefault(op["name"], op)
    shards: Dict[str, Dict[str, np.ndarray]] = {}

    def get(name: str) -> np.ndarray:
        if name in {i["name"] for i in m["inputs"]}:
            f, t = "inputs.safetensors", name
        else:
            f, t = recs[name]["file"], recs[name]["tensor"]
        if f not in shards:
            shards[f] = load_file(str(goldens_dir / f))
        return shards[f][t]

    get.recs = recs
    get.ckpt = read_bf16_checkpoint(goldens_dir / "checkpoint.safetensors")
    return get


def cubic_weights(t: float, a: float = -0.75):
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):   # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def bicubic(table: np.ndarray, in_h: int, in_w: int, out_h: int, out_w: int) -> np.ndarray:
    d = table.shape[1]
    grid = table.reshape(in_h, in_w, d).astype(np.float64)

    def axis(n_in, n_out):
        rows = []
        for dst in range(n_out):
            src = (dst + 0.5) * (n_in / n_out) - 0.5          # not clamped (cubic)
            i0 = math.floor(src)
            w = cubic_weights(src - i0)
            taps = [min(max(i0 - 1 + k, 0), n_in - 1) for k in range(4)]
            rows.append((taps, w))
        return rows

    out = np.zeros((out_h, out_w, d))
    for y, (ty, wy) in enumerate(axis(in_h, out_h)):
        for x, (tx, wx) in enumerate(axis(in_w, out_w)):
            for a in range(4):
                for b in range(4):
                    out[y, x] += wy[a] * wx[b] * grid[ty[a], tx[b]]
    return out.reshape(out_h * out_w, d)


def test_bicubic_position_interpolation(g):
    op = g.recs["siglip.pos_embed"]["attrs"]
    table = g.ckpt[f"{naming.VISION}.embeddings.position_embedding.weight"]
    mine = bicubic(table, op["in_h"], op["in_w"], op["out_h"], op["out_w"])
    assert max_abs(mine, g("siglip.pos_embed")) < 2e-6


def rope(x: np.ndarray, pos: np.ndarray, theta: float, hd: int) -> np.ndarray:
    b, t, w = x.shape
    j = np.arange(hd // 2, dtype=np.float64)
    ang = pos.astype(np.float64)[..., None] * theta ** (-2.0 * j / hd)
    ang = np.concatenate([ang, ang], -1)
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    xs = x.reshape(b, t, w // hd, hd)
    rot = np.concatenate([-xs[..., hd // 2:], xs[..., :hd // 2]], -1)
    return (xs * cos[:, :, None] + rot * sin[:, :, None]).reshape(b, t, w)


@pytest.mark.parametrize("name", ["vlm.layers.3.attn.q_rope", "vlm.layers.0.attn.k_rope",
                                  "expert.layers.5.attn.q_rope", "denoise.9.expert.layers.17.attn.k_rope"])
def test_rope(g, name):
    rec = g.recs[name]
    x, pos = (g(i) for i in rec["inputs"])
    mine = rope(x, pos, rec["attrs"]["theta"], rec["attrs"]["head_dim"])
    assert max_abs(mine, g(name)) <= 2e-6


@pytest.mark.parametrize("k", [0, 9])
def test_time_embedding(g, k):
    rec = g.recs[f"denoise.{k}.suffix.time_embed"]
    a = rec["attrs"]
    t = g(rec["inputs"][0]).astype(np.float64)
    f = np.linspace(0.0, 1.0, a["dim"] // 2)
    period = a["min_period"] * (a["max_period"] / a["min_period"]) ** f
    arg = (1.0 / period * 2 * math.pi)[None, :] * t[:, None]
    mine = np.concatenate([np.sin(arg), np.cos(arg)], 1).astype(np.float32)
    assert max_abs(mine, g(rec["name"])) <= 1.2e-7


def test_masks_positions_and_expand(g):
    pad, ar = g("attn_masks.pad")[0], g("attn_masks.ar")[0]
    c = np.cumsum(ar)
    allowed = (c[None, :] <= c[:, None]) & (pad[:, None] > 0) & (pad[None, :] > 0)
    mv = np.float32(g.recs["attn_masks.full"]["attrs"]["mask_value"])
    np.testing.assert_array_equal(np.where(allowed, np.float32(0), mv)[None, None],
                                  g("attn_masks.full"))
    np.testing.assert_array_equal((np.cumsum(pad) - 1)[None], g("attn_masks.positions"))
    np.testing.assert_array_equal(np.broadcast_to(g("suffix.time_embed"), (1, 50, 32)),
                                  g("suffix.time_tokens"))


def sdpa(q, k, v, mask, hq, hkv, hd, scale):
    b, t, _ = q.shape
    s = k.shape[1]
    qh = q.reshape(b, t, hq, hd).transpose(0, 2, 1, 3).astype(np.float64)
    kh = np.repeat(k.reshape(b, s, hkv, hd).transpose(0, 2, 1, 3), hq // hkv, 1)
    vh = np.repeat(v.reshape(b, s, hkv, hd).transpose(0, 2, 1, 3), hq // hkv, 1)
    logits = (qh @ kh.transpose(0, 1, 3, 2)) * scale
    if mask is not None:
        logits = logits + mask
    logits -= logits.max(-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(-1, keepdims=True)
    return (p @ vh).transpose(0, 2, 1, 3).reshape(b, t, hq * hd)


@pytest.mark.parametrize("name", ["siglip.layers.4.attn.sdpa", "vlm.layers.6.attn.sdpa",
                                  "expert.layers.11.attn.sdpa"])
def test_sdpa_including_fully_masked_rows(g, name):
    rec = g.recs[name]
    ins = [g(i) for i in rec["inputs"]]
    mask = ins[3].astype(np.float64) if len(ins) == 4 else None
    a = rec["attrs"]
    mine = sdpa(*ins[:3], mask, a["q_heads"], a["kv_heads"], a["head_dim"], a["scale"])
    assert max_abs(mine, g(name)) <= 2e-6
    if name.startswith("vlm"):
        # padded prefix queries: all logits equal -> the mean of v over every key
        nv = int(g("prefix.pad_masks").sum())
        mean_v = np.tile(ins[2][0].mean(0), a["q_heads"])
        assert max_abs(g(name)[0, nv:], np.broadcast_to(mean_v, g(name)[0, nv:].shape)) <= 2e-6


def test_norms_gelu_linear_embedding(g):
    ck = g.ckpt
    h = g("vlm.layers.2.attn_residual").astype(np.float64)
    w = ck[f"{naming.LANGUAGE}.layers.2.post_attention_layernorm.weight"]
    rms = h / np.sqrt((h * h).mean(-1, keepdims=True) + 1e-6) * (1.0 + w)
    assert max_abs(rms, g("vlm.layers.2.post_norm")) <= 2e-6

    x = g("siglip.layers.8.attn_residual").astype(np.float64)
    p = f"{naming.VISION}.encoder.layers.8.layer_norm2."
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    ln = (x - mu) / np.sqrt(var + 1e-6) * ck[p + "weight"] + ck[p + "bias"]
    assert max_abs(ln, g("siglip.layers.8.ln2")) <= 2e-6

    u = g("vlm.layers.2.mlp.gate").astype(np.float64)
    gelu = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
    assert max_abs(gelu, g("vlm.layers.2.mlp.act")) <= 2e-6

    y = g("suffix.mlp_act").astype(np.float64) @ ck["action_time_mlp_out.weight"].T.astype(
        np.float64) + ck["action_time_mlp_out.bias"]
    assert max_abs(y, g("suffix.mlp_out")) <= 2e-6

    rows = ck[naming.TIED_EMBEDDING][g("tokens")[0]]
    np.testing.assert_array_equal(rows[None], g("lang_embed.embedding"))
