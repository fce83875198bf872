//! One Gemma decoder stack (PI0_SPEC §3.9), used by both the VLM and the action expert with
//! their own configs. Heads stay packed on the last axis (head-major).

use crate::backend::{GeluApprox, OpKind};
use crate::modules::{Ctx, GemmaConfig, ModuleError, Scope};
use crate::tensor::Tensor;

/// A layer's post-RoPE keys and its values, as cached by the prefix pass.
pub struct LayerKv {
    pub k: Tensor,
    pub v: Tensor,
}

/// Runs `g.layers` blocks then the final norm.
///
/// `cache` holds, per layer, the VLM keys/values this stack attends to before its own
/// (the expert's cross-stream attention); `None` for the VLM itself.
///
/// # Shapes
/// h [1, T, D], positions [1, T], mask [1, 1, T, S] with S = T (+ cached length) → [1, T, D],
/// plus per-layer k/v [1, T, kv_heads·head_dim].
pub fn stack(
    ctx: &Ctx<'_>,
    s: &Scope,
    g: &GemmaConfig,
    mut h: Tensor,
    positions: &Tensor,
    mask: &Tensor,
    cache: Option<&[LayerKv]>,
) -> Result<(Tensor, Vec<LayerKv>), ModuleError> {
    let mut kvs = Vec::with_capacity(g.layers);
    for i in 0..g.layers {
        let l = s.pp(format!("layers.{i}"), format!("layers.{i}"));
        let past = cache.and_then(|c| c.get(i));
        let (out, kv) = layer(ctx, &l, g, &h, positions, mask, past)?;
        h = out;
        kvs.push(kv);
    }
    let out = rms_norm(ctx, s, "norm", "norm.weight", g, &h)?;
    Ok((out, kvs))
}

fn rms_norm(
    ctx: &Ctx<'_>,
    s: &Scope,
    op_leaf: &str,
    weight: &str,
    g: &GemmaConfig,
    x: &Tensor,
) -> Result<Tensor, ModuleError> {
    let w = ctx.param(s, weight)?;
    ctx.op(
        s,
        op_leaf,
        OpKind::RmsNorm {
            eps: g.rms_eps,
            offset: 1.0,
        },
        &[x, &w],
    )
}

fn layer(
    ctx: &Ctx<'_>,
    l: &Scope,
    g: &GemmaConfig,
    h: &Tensor,
    positions: &Tensor,
    mask: &Tensor,
    past: Option<&LayerKv>,
) -> Result<(Tensor, LayerKv), ModuleError> {
    let x = rms_norm(ctx, l, "input_norm", "input_layernorm.weight", g, h)?;
    let a = l.pp("attn", "self_attn");
    let q = ctx.linear(&a, "q", "q_proj", &x, false)?;
    let k = ctx.linear(&a, "k", "k_proj", &x, false)?;
    let v = ctx.linear(&a, "v", "v_proj", &x, false)?;
    let rope = OpKind::Rope {
        theta: g.rope_theta,
        head_dim: g.head_dim,
    };
    let q = ctx.op(&a, "q_rope", rope.clone(), &[&q, positions])?;
    let k = ctx.op(&a, "k_rope", rope, &[&k, positions])?;
    let (keys, values) = match past {
        Some(p) => (
            ctx.op(&a, "k_cat", OpKind::Concat { dim: 1 }, &[&p.k, &k])?,
            ctx.op(&a, "v_cat", OpKind::Concat { dim: 1 }, &[&p.v, &v])?,
        ),
        None => (k.clone(), v.clone()),
    };
    let sdpa = OpKind::Sdpa {
        q_heads: g.heads,
        kv_heads: g.kv_heads,
        head_dim: g.head_dim,
        scale: (g.head_dim as f32).powf(-0.5),
    };
    let o = ctx.op(&a, "sdpa", sdpa, &[&q, &keys, &values, mask])?;
    let o = ctx.linear(&a, "o", "o_proj", &o, false)?;
    let h1 = ctx.op(l, "attn_residual", OpKind::Add, &[h, &o])?;
    let x = rms_norm(
        ctx,
        l,
        "post_norm",
        "post_attention_layernorm.weight",
        g,
        &h1,
    )?;
    let m = l.pp("mlp", "mlp");
    let gate = ctx.linear(&m, "gate", "gate_proj", &x, false)?;
    let up = ctx.linear(&m, "up", "up_proj", &x, false)?;
    let act = ctx.op(
        &m,
        "act",
        OpKind::Gelu {
            approx: GeluApprox::Tanh,
        },
        &[&gate],
    )?;
    let prod = ctx.op(&m, "mul", OpKind::Mul, &[&act, &up])?;
    let down = ctx.linear(&m, "down", "down_proj", &prod, false)?;
    let out = ctx.op(l, "mlp_residual", OpKind::Add, &[&h1, &down])?;
    Ok((out, LayerKv { k, v }))
}
