"""The pi0 reference (LeRobot semantics, docs PI0_SPEC §3), fp32, as the 11 modules of
goldens/README.md. Every function takes the `Scope` it runs under; names and weight paths
come only from `Scope.pp` chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch

from . import naming
from . import ops
from .config import GemmaConfig, Pi0Config, SiglipConfig
from .scope import Act, Params, Recorder, Scope

KV = Tuple[Act, Act]


def configure_torch(threads: int = 1) -> None:
    """fp32 matmuls without TF32/bf16 shortcuts, deterministic kernels, fixed thread count."""
    torch.set_float32_matmul_precision("highest")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


# ---- 1. siglip -------------------------------------------------------------------------------

def siglip(s: Scope, cfg: SiglipConfig, images: Act) -> Act:
    """# Shapes: images [C,3,H,W] -> [C,P,D]."""
    patches = ops.conv2d_patch(s, "patch_embed", images, "embeddings.patch_embedding", cfg.patch)
    table = "embeddings.position_embedding.weight"
    if cfg.grid != cfg.pos_grid:
        pos = ops.interpolate_bicubic(s, "pos_embed", table, cfg.pos_grid, cfg.pos_grid,
                                      cfg.grid, cfg.grid)
        h = ops.add(s, "embed", patches, pos)
    else:
        h = ops.add_param(s, "embed", patches, table)
    layers = s.pp("layers", "encoder.layers")
    for i in range(cfg.layers):
        h = siglip_layer(layers.pp(i), cfg, h)
    return ops.layer_norm(s, "post_ln", h, "post_layernorm", cfg.ln_eps)


def siglip_layer(s: Scope, cfg: SiglipConfig, h: Act) -> Act:
    x = ops.layer_norm(s, "ln1", h, "layer_norm1", cfg.ln_eps)
    at = s.pp("attn", "self_attn")
    q = ops.linear(at, "q", x, "q_proj")
    k = ops.linear(at, "k", x, "k_proj")
    v = ops.linear(at, "v", x, "v_proj")
    o = ops.sdpa(at, "sdpa", q, k, v, None, cfg.heads, cfg.heads, cfg.head_dim)
    o = ops.linear(at, "out", o, "out_proj")
    h = ops.add(s, "attn_residual", h, o)
    x = ops.layer_norm(s, "ln2", h, "layer_norm2", cfg.ln_eps)
    mlp = s.pp("mlp")
    x = ops.linear(mlp, "fc1", x, "fc1")
    x = ops.gelu(mlp, "act", x, "tanh")
    x = ops.linear(mlp, "fc2", x, "fc2")
    return ops.add(s, "mlp_residual", h, x)


# ---- 2. projector, 3. lang_embed, 4. prefix ----------------------------------------------------

def projector(s: Scope, x: Act) -> Act:
    """# Shapes: [C,P,Dv] -> [C,P,W]."""
    return ops.linear(s, "linear", x, "linear")


def lang_embed(s: Scope, cfg: GemmaConfig, tokens: Act) -> Act:
    """Tied table rows × f32(√width). # Shapes: [1,Ll] -> [1,Ll,W]."""
    e = ops.embedding(s, "embedding", tokens, naming.TIED_EMBEDDING)
    return ops.mul_scalar(s, "scale", e, cfg.width ** 0.5)


@dataclass
class PrefixOut:
    embs: Act
    pad: Act
    att: Act


def prefix(s: Scope, cfg: Pi0Config, img_tokens: Act, lang: Act, img_masks: Act,
           lang_masks: Act) -> PrefixOut:
    """Image tokens (camera by camera) then language tokens. # Shapes: -> [1,Lp,W], [1,Lp]."""
    c, p, w = img_tokens.t.shape
    tok = ops.reshape(s, "image_tokens", img_tokens, [1, c * p, w])
    embs = ops.concat(s, "embs", [tok, lang], 1)
    img_pad = ops.repeat_interleave(s, "img_pad", img_masks, 1, p)
    pad = ops.concat(s, "pad_masks", [img_pad, lang_masks], 1)
    att = ops.full(s, "att_masks", [1, c * p + lang.t.shape[1]], 0.0)
    return PrefixOut(embs, pad, att)


# ---- Gemma (VLM and expert alike) --------------------------------------------------------------

def gemma_layer(s: Scope, cfg: GemmaConfig, h: Act, pos: Act, mask: Act,
                cache: KV = None) -> Tuple[Act, Act, Act]:
    """One decoder layer. With `cache` (the VLM's K/V of this layer) the layer attends to
    [cache ; own]. Returns (h, k_rope, v). # Shapes: h [1,T,D]."""
    x = ops.rms_norm(s, "input_norm", h, "input_layernorm", cfg.rms_eps)
    at = s.pp("attn", "self_attn")
    q = ops.linear(at, "q", x, "q_proj", bias=False)
    k = ops.linear(at, "k", x, "k_proj", bias=False)
    v = ops.linear(at, "v", x, "v_proj", bias=False)
    q = ops.rope(at, "q_rope", q, pos, cfg.rope_theta, cfg.head_dim)
    k = ops.rope(at, "k_rope", k, pos, cfg.rope_theta, cfg.head_dim)
    keys, values = k, v
    if cache is not None:
        keys = ops.concat(at, "k_cat", [cache[0], k], 1)
        values = ops.concat(at, "v_cat", [cache[1], v], 1)
    o = ops.sdpa(at, "sdpa", q, keys, values, mask, cfg.heads, cfg.kv_heads, cfg.head_dim)
    o = ops.linear(at, "o", o, "o_proj", bias=False)
    h = ops.add(s, "attn_residual", h, o)
    x = ops.rms_norm(s, "post_norm", h, "post_attention_layernorm", cfg.rms_eps)
    mlp = s.pp("mlp")
    g = ops.linear(mlp, "gate", x, "gate_proj", bias=False)
    u = ops.linear(mlp, "up", x, "up_proj", bias=False)
    g = ops.gelu(mlp, "act", g, "tanh")
    m = ops.mul(mlp, "mul", g, u)
    d = ops.linear(mlp, "down", m, "down_proj", bias=False)
    return ops.add(s, "mlp_residual", h, d), k, v


@dataclass
class VlmOut:
    norm: Act
    cache: List[KV]


def vlm(s: Scope, cfg: Pi0Config, pre: PrefixOut) -> VlmOut:
    """Prefix pass, filling the per-layer post-RoPE K/V cache. # Shapes: [1,Lp,W]."""
    mask = ops.attn_mask_2d(s, "mask", pre.pad, pre.att, cfg.mask_value)
    pos = ops.positions(s, "positions", pre.pad)
    h = pre.embs
    cache: List[KV] = []
    layers = s.pp("layers")
    for i in range(cfg.vlm.layers):
        h, k, v = gemma_layer(layers.pp(i), cfg.vlm, h, pos, mask)
        cache.append((k, v))
    return VlmOut(ops.rms_norm(s, "norm", h, "norm", cfg.vlm.rms_eps), cache)


# ---- 6.–10. one denoise step -------------------------------------------------------------------

@dataclass
class SuffixOut:
    embs: Act
    pad: Act
    att: Act


def suffix(s: Scope, cfg: Pi0Config, state: Act, x_t: Act, time: Act) -> SuffixOut:
    """State token then 50 action-time tokens. # Shapes: -> [1,51,De], [1,51]."""
    de, h = cfg.expert.width, cfg.horizon
    st = ops.linear(s, "state_proj", state, "state_proj")
    st = ops.reshape(s, "state_token", st, [1, 1, de])
    te = ops.time_embed(s, "time_embed", time, de, cfg.time_min_period, cfg.time_max_period)
    a = ops.linear(s, "action_in", x_t, "action_in_proj")
    tt = ops.expand(s, "time_tokens", te, [1, h, de])
    z = ops.concat(s, "concat", [a, tt], 2)
    z = ops.linear(s, "mlp_in", z, "action_time_mlp_in")
    z = ops.silu(s, "mlp_act", z)
    z = ops.linear(s, "mlp_out", z, "action_time_mlp_out")
    embs = ops.concat(s, "embs", [st, z], 1)
    pad = ops.full(s, "pad_masks", [1, h + 1], 1.0)
    head = ops.full(s, "ar_head", [1, 2], 1.0)
    tail = ops.full(s, "ar_tail", [1, h - 1], 0.0)
    att = ops.concat(s, "att_masks", [head, tail], 1)
    return SuffixOut(embs, pad, att)


def attn_masks(s: Scope, cfg: Pi0Config, pre: PrefixOut, suf: SuffixOut) -> Tuple[Act, Act]:
    """Suffix rows of the full [prefix|suffix] mask and suffix positions (Nv + 0..50)."""
    lp = pre.pad.t.shape[1]
    total = lp + suf.pad.t.shape[1]
    pad = ops.concat(s, "pad", [pre.pad, suf.pad], 1)
    ar = ops.concat(s, "ar", [pre.att, suf.att], 1)
    full = ops.attn_mask_2d(s, "full", pad, ar, cfg.mask_value)
    pos = ops.positions(s, "positions", pad)
    rows = ops.slice_(s, "suffix_rows", full, 2, lp, total)
    spos = ops.slice_(s, "suffix_positions", pos, 1, lp, total)
    return rows, spos


def expert(s: Scope, cfg: Pi0Config, embs: Act, rows: Act, pos: Act,
           cache: List[KV]) -> Act:
    """Expert stack over the suffix, layer i attending to [VLM K/V of layer i ; own]."""
    h = embs
    layers = s.pp("layers")
    for i in range(cfg.expert.layers):
        h, _, _ = gemma_layer(layers.pp(i), cfg.expert, h, pos, rows, cache[i])
    return ops.rms_norm(s, "norm", h, "norm", cfg.expert.rms_eps)


def denoise_step(s: Scope, cfg: Pi0Config, pre: PrefixOut, kv: VlmOut, state: Act,
                 x_t: Act, time: Act) -> Act:
    """Velocity v_t for x_t at time t. # Shapes: x_t [1,50,A] -> [1,50,A]."""
    suf = suffix(s.pp("suffix", ""), cfg, state, x_t, time)
    rows, pos = attn_masks(s.pp("attn_masks", ""), cfg, pre, suf)
    out = expert(s.pp("expert", naming.EXPERT), cfg, suf.embs, rows, pos, kv.cache)
    last = ops.slice_(s.pp("action_extract", ""), "slice", out, 1, 1, cfg.horizon + 1)
    return ops.linear(s.pp("action_proj", ""), "linear", last, "action_out_proj")


# ---- 11. the sampler ---------------------------------------------------------------------------

@dataclass
class PrefixRun:
    pre: PrefixOut
    kv: VlmOut


def run_prefix(root: Scope, cfg: Pi0Config, inputs: Dict[str, Act]) -> PrefixRun:
    """Modules 1–5: siglip, projector, lang_embed, prefix, vlm."""
    img = siglip(root.pp("siglip", naming.VISION), cfg.siglip, inputs["images"])
    img = projector(root.pp("projector", naming.PROJECTOR), img)
    lang = lang_embed(root.pp("lang_embed", ""), cfg.vlm, inputs["tokens"])
    pre = prefix(root.pp("prefix", ""), cfg, img, lang, inputs["img_masks"],
                 inputs["lang_masks"])
    kv = vlm(root.pp("vlm", naming.LANGUAGE), cfg, pre)
    return PrefixRun(pre, kv)


def sample(root: Scope, cfg: Pi0Config, run: PrefixRun, inputs: Dict[str, Act]) -> Act:
    """10 Euler steps t = 1 → 0 (dt = −1/steps): x ← x + dt·v. Returns the actions."""
    dt = -1.0 / cfg.steps
    x = inputs["noise"]
    den = root.pp("denoise", "")
    for k in range(cfg.steps):
        step = den.pp(k, "")
        t = ops.full(step, "time", [1], 1.0 + k * dt)
        v = denoise_step(step, cfg, run.pre, run.kv, inputs["state"], x, t)
        dx = ops.mul_scalar(step.pp("euler", ""), "step", v, dt)
        x = ops.add(step, "euler", x, dx)
    return x


def as_acts(inputs: Dict[str, torch.Tensor]) -> Dict[str, Act]:
    return {k: Act(k, v) for k, v in inputs.items()}


def sample_actions(params: Params, cfg: Pi0Config, inputs: Dict[str, torch.Tensor],
                   recorder: Recorder = None) -> torch.Tensor:
    """Convenience: the whole sampler, optionally recorded. Returns actions [1,50,A]."""
    rec = recorder or Recorder(enabled=False)
    root = Scope(rec, params)
    acts = as_acts(inputs)
    with torch.no_grad():
        run = run_prefix(root, cfg, acts)
        return sample(root, cfg, run, acts).t
