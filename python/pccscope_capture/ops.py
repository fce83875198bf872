"""The op catalog of goldens/README.md ("Op kinds and attributes"), in fp32.

Each function computes one op, records it through `Scope.emit` and returns the named output.
Bool inputs (masks) are read as 1.0 / 0.0; every op output is f32.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

from .scope import Act, Scope, f32

F32 = torch.float32


def _f(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == F32 else t.to(F32)


def linear(s: Scope, leaf: str, x: Act, weight: str, bias: bool = True) -> Act:
    """y = x Wᵀ (+ b); `weight` is the module path relative to the scope (`q_proj`)."""
    wn, w = s.param(f"{weight}.weight")
    params = [wn]
    b = None
    if bias:
        bn, b = s.param(f"{weight}.bias")
        params.append(bn)
    return s.emit(leaf, "linear", {}, [x], params, F.linear(_f(x.t), w, b))


def conv2d_patch(s: Scope, leaf: str, x: Act, weight: str, patch: int) -> Act:
    """Valid conv, stride = kernel = patch, flattened row-major: [N,3,H,W] -> [N, Hp·Wp, D]."""
    wn, w = s.param(f"{weight}.weight")
    bn, b = s.param(f"{weight}.bias")
    y = F.conv2d(_f(x.t), w, b, stride=patch)
    y = y.flatten(2).transpose(1, 2).contiguous()
    return s.emit(leaf, "conv2d_patch", {"patch": patch}, [x], [wn, bn], y)


def interpolate_bicubic(s: Scope, leaf: str, table: str, in_h: int, in_w: int, out_h: int,
                        out_w: int) -> Act:
    """Table [in_h·in_w, D] -> [out_h·out_w, D]: PyTorch bicubic (A = -0.75),
    align_corners=False, clamped borders, no antialias."""
    tn, t = s.param(table)
    d = t.shape[1]
    g = t.reshape(1, in_h, in_w, d).permute(0, 3, 1, 2)
    y = F.interpolate(g, size=(out_h, out_w), mode="bicubic", align_corners=False)
    y = y.permute(0, 2, 3, 1).reshape(out_h * out_w, d).contiguous()
    attrs = {"in_h": in_h, "in_w": in_w, "out_h": out_h, "out_w": out_w}
    return s.emit(leaf, "interpolate_bicubic", attrs, [], [tn], y)


def layer_norm(s: Scope, leaf: str, x: Act, weight: str, eps: float) -> Act:
    wn, w = s.param(f"{weight}.weight")
    bn, b = s.param(f"{weight}.bias")
    y = F.layer_norm(_f(x.t), (x.t.shape[-1],), w, b, eps)
    return s.emit(leaf, "layer_norm", {"eps": eps}, [x], [wn, bn], y)


def rms_norm(s: Scope, leaf: str, x: Act, weight: str, eps: float, offset: float = 1.0) -> Act:
    """x · rsqrt(mean(x²) + eps) · (offset + w), all f32 (Gemma: offset 1)."""
    wn, w = s.param(f"{weight}.weight")
    h = _f(x.t)
    y = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    y = y * (offset + w)
    return s.emit(leaf, "rms_norm", {"eps": eps, "offset": offset}, [x], [wn], y)


def add(s: Scope, leaf: str, a: Act, b: Act) -> Act:
    return s.emit(leaf, "add", {}, [a, b], [], _f(a.t) + _f(b.t))


def add_param(s: Scope, leaf: str, a: Act, param: str) -> Act:
    """`add` whose second operand is a checkpoint tensor (broadcast)."""
    pn, p = s.param(param)
    return s.emit(leaf, "add", {}, [a], [pn], _f(a.t) + p)


def mul(s: Scope, leaf: str, a: Act, b: Act) -> Act:
    return s.emit(leaf, "mul", {}, [a, b], [], _f(a.t) * _f(b.t))


def mul_scalar(s: Scope, leaf: str, x: Act, value: float) -> Act:
    v = f32(value)
    return s.emit(leaf, "mul_scalar", {"value": v}, [x], [],
                  _f(x.t) * torch.tensor(v, dtype=F32))


def gelu(s: Scope, leaf: str, x: Act, approx: str = "tanh") -> Act:
    return s.emit(leaf, "gelu", {"approx": approx}, [x], [], F.gelu(_f(x.t), approximate=approx))


def silu(s: Scope, leaf: str, x: Act) -> Act:
    return s.emit(leaf, "silu", {}, [x], [], F.silu(_f(x.t)))


def embedding(s: Scope, leaf: str, ids: Act, table: str) -> Act:
    tn, t = s.param(table)
    return s.emit(leaf, "embedding", {}, [ids], [tn], F.embedding(ids.t, t))


def concat(s: Scope, leaf: str, xs: Sequence[Act], dim: int) -> Act:
    return s.emit(leaf, "concat", {"dim": dim}, list(xs), [],
                  torch.cat([_f(a.t) for a in xs], dim=dim))


def slice_(s: Scope, leaf: str, x: Act, dim: int, start: int, end: int) -> Act:
    y = _f(x.t).narrow(dim, start, end - start).contiguous()
    return s.emit(leaf, "slice", {"dim": dim, "start": start, "end": end}, [x], [], y)


def reshape(s: Scope, leaf: str, x: Act, shape: List[int]) -> Act:
    return s.emit(leaf, "reshape", {"shape": list(shape)}, [x], [],
                  _f(x.t).reshape(shape).contiguous())


def expand(s: Scope, leaf: str, x: Act, shape: List[int]) -> Act:
    """NumPy-style broadcast of x to `shape` (x [1,D] -> [1,50,D] aligns trailing axes)."""
    return s.emit(leaf, "expand", {"shape": list(shape)}, [x], [],
                  _f(x.t).expand(shape).contiguous())


def repeat_interleave(s: Scope, leaf: str, x: Act, dim: int, repeats: int) -> Act:
    return s.emit(leaf, "repeat_interleave", {"dim": dim, "repeats": repeats}, [x], [],
                  _f(x.t).repeat_interleave(repeats, dim=dim))


def full(s: Scope, leaf: str, shape: List[int], value: float) -> Act:
    v = f32(value)
    return s.emit(leaf, "full", {"shape": list(shape), "value": v}, [], [],
                  torch.full(tuple(shape), v, dtype=F32))


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float):
    """cos, sin [B,T,head_dim] in f32, computed in f64: inv_freq_j = θ^(−2j/hd),
    angle = pos · inv_freq_j, duplicated over the two halves."""
    half = head_dim // 2
    j = torch.arange(half, dtype=torch.float64)
    inv_freq = torch.pow(torch.tensor(theta, dtype=torch.float64), -2.0 * j / head_dim)
    ang = positions.to(torch.float64)[..., None] * inv_freq
    ang = torch.cat([ang, ang], dim=-1)
    return torch.cos(ang).to(F32), torch.sin(ang).to(F32)


def rope(s: Scope, leaf: str, x: Act, positions: Act, theta: float, head_dim: int) -> Act:
    """Half-split rotary embedding per head; x [B,T,H·hd] head-major, positions [B,T]."""
    b, t, w = x.t.shape
    h = w // head_dim
    cos, sin = rope_tables(positions.t, head_dim, theta)
    xs = _f(x.t).reshape(b, t, h, head_dim)
    half = head_dim // 2
    rot = torch.cat([-xs[..., half:], xs[..., :half]], dim=-1)
    y = xs * cos[:, :, None, :] + rot * sin[:, :, None, :]
    return s.emit(leaf, "rope", {"theta": theta, "head_dim": head_dim}, [x, positions], [],
                  y.reshape(b, t, w))


def sdpa(s: Scope, leaf: str, q: Act, k: Act, v: Act, mask: Optional[Act], q_heads: int,
         kv_heads: int, head_dim: int) -> Act:
    """softmax(q kᵀ·scale + mask) v per head, heads packed head-major on the last axis;
    kv head n // (q_heads / kv_heads) serves query head n. mask [B,1,T,S] additive."""
    scale = f32(head_dim ** -0.5)
    b, t, _ = q.t.shape
    sl = k.t.shape[1]
    qh = _f(q.t).reshape(b, t, q_heads, head_dim).transpose(1, 2)
    kh = _f(k.t).reshape(b, sl, kv_heads, head_dim).transpose(1, 2)
    vh = _f(v.t).reshape(b, sl, kv_heads, head_dim).transpose(1, 2)
    group = q_heads // kv_heads
    kh = kh.repeat_interleave(group, dim=1)
    vh = vh.repeat_interleave(group, dim=1)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * torch.tensor(scale, dtype=F32)
    inputs = [q, k, v]
    if mask is not None:
        scores = scores + mask.t
        inputs.append(mask)
    p = torch.softmax(scores, dim=-1)
    o = torch.matmul(p, vh).transpose(1, 2).reshape(b, t, q_heads * head_dim)
    attrs = {"q_heads": q_heads, "kv_heads": kv_heads, "head_dim": head_dim, "scale": scale}
    return s.emit(leaf, "sdpa", attrs, inputs, [], o)


def attn_mask_2d(s: Scope, leaf: str, pad: Act, ar: Act, mask_value: float) -> Act:
    """allowed[q,k] = cumsum(ar)[k] <= cumsum(ar)[q] ∧ pad[q] ∧ pad[k];
    0 where allowed, mask_value elsewhere; [B,1,L,L]."""
    mv = f32(mask_value)
    p = _f(pad.t) > 0.5
    c = torch.cumsum(_f(ar.t), dim=1)
    allowed = (c[:, None, :] <= c[:, :, None]) & p[:, :, None] & p[:, None, :]
    y = torch.where(allowed, torch.tensor(0.0, dtype=F32), torch.tensor(mv, dtype=F32))
    return s.emit(leaf, "attn_mask_2d", {"mask_value": mv}, [pad, ar], [], y[:, None, :, :])


def positions(s: Scope, leaf: str, pad: Act) -> Act:
    """cumsum(pad) − 1, as f32."""
    return s.emit(leaf, "positions", {}, [pad], [], torch.cumsum(_f(pad.t), dim=1) - 1.0)


def time_embed(s: Scope, leaf: str, t: Act, dim: int, min_period: float,
               max_period: float) -> Act:
    """[sin(ω_i t)…, cos(ω_i t)…] with fraction_i = linspace(0,1,dim/2),
    period_i = min·(max/min)^fraction_i, ω_i = (1/period_i)·2π; f64 math, then f32."""
    half = dim // 2
    fraction = torch.linspace(0.0, 1.0, half, dtype=torch.float64)
    period = min_period * (max_period / min_period) ** fraction
    omega = 1.0 / period * 2 * math.pi
    arg = omega[None, :] * t.t.to(torch.float64)[:, None]
    y = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).to(F32)
    attrs = {"dim": dim, "min_period": min_period, "max_period": max_period}
    return s.emit(leaf, "time_embed", attrs, [t], [], y)
