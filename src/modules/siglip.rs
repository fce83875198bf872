//! SigLIP vision tower (PI0_SPEC §3.2): patch conv, position embedding (bicubic-interpolated
//! when the patch grid differs from the checkpoint's table), pre-LN blocks, post-LN.

use crate::backend::{GeluApprox, OpKind};
use crate::modules::checkpoint::VISION;
use crate::modules::{Ctx, ModuleError, Scope};
use crate::tensor::Tensor;

pub const OUTPUT: &str = "siglip.post_ln";

/// # Shapes
/// images [C, 3, H, W] (cameras on the batch axis) → [C, P, D].
pub fn forward(ctx: &Ctx<'_>, root: &Scope, images: &Tensor) -> Result<Tensor, ModuleError> {
    let c = &ctx.cfg.siglip;
    let s = root.pp("siglip", VISION);
    let emb = s.pp_weight("embeddings");
    let w = ctx.param(&emb, "patch_embedding.weight")?;
    let b = ctx.param(&emb, "patch_embedding.bias")?;
    let patches = ctx.op(
        &s,
        "patch_embed",
        OpKind::Conv2dPatch { patch: c.patch },
        &[images, &w, &b],
    )?;
    let table = ctx.param(&emb, "position_embedding.weight")?;
    let grid = c.grid();
    let pos = if grid != c.pos_grid {
        ctx.op(
            &s,
            "pos_embed",
            OpKind::InterpolateBicubic {
                in_h: c.pos_grid,
                in_w: c.pos_grid,
                out_h: grid,
                out_w: grid,
            },
            &[&table],
        )?
    } else {
        table
    };
    let mut h = ctx.op(&s, "embed", OpKind::Add, &[&patches, &pos])?;
    let ln = OpKind::LayerNorm { eps: c.ln_eps };
    for i in 0..c.layers {
        let l = s.pp(format!("layers.{i}"), format!("encoder.layers.{i}"));
        let x = layer_norm(ctx, &l, "ln1", "layer_norm1", &h, &ln)?;
        let a = l.pp("attn", "self_attn");
        let q = ctx.linear(&a, "q", "q_proj", &x, true)?;
        let k = ctx.linear(&a, "k", "k_proj", &x, true)?;
        let v = ctx.linear(&a, "v", "v_proj", &x, true)?;
        let sdpa = OpKind::Sdpa {
            q_heads: c.heads,
            kv_heads: c.heads,
            head_dim: c.head_dim,
            scale: (c.head_dim as f32).powf(-0.5),
        };
        let o = ctx.op(&a, "sdpa", sdpa, &[&q, &k, &v])?;
        let o = ctx.linear(&a, "out", "out_proj", &o, true)?;
        let h1 = ctx.op(&l, "attn_residual", OpKind::Add, &[&h, &o])?;
        let x = layer_norm(ctx, &l, "ln2", "layer_norm2", &h1, &ln)?;
        let m = l.pp("mlp", "mlp");
        let f = ctx.linear(&m, "fc1", "fc1", &x, true)?;
        let f = ctx.op(
            &m,
            "act",
            OpKind::Gelu {
                approx: GeluApprox::Tanh,
            },
            &[&f],
        )?;
        let f = ctx.linear(&m, "fc2", "fc2", &f, true)?;
        h = ctx.op(&l, "mlp_residual", OpKind::Add, &[&h1, &f])?;
    }
    layer_norm(ctx, &s, "post_ln", "post_layernorm", &h, &ln)
}

fn layer_norm(
    ctx: &Ctx<'_>,
    s: &Scope,
    op_leaf: &str,
    weight_leaf: &str,
    x: &Tensor,
    kind: &OpKind,
) -> Result<Tensor, ModuleError> {
    let w = ctx.param(s, &format!("{weight_leaf}.weight"))?;
    let b = ctx.param(s, &format!("{weight_leaf}.bias"))?;
    ctx.op(s, op_leaf, kind.clone(), &[x, &w, &b])
}
