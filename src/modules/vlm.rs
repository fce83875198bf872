//! The VLM (Gemma 2B) prefix pass: mask and positions from the prefix masks, 18 blocks, final
//! norm; yields the per-layer post-RoPE K/V cache.

use crate::backend::OpKind;
use crate::modules::checkpoint::LANGUAGE;
use crate::modules::gemma::{self, LayerKv};
use crate::modules::{prefix, take, Ctx, Env, ModuleError, Pi0Config, Scope};

pub const OUTPUT: &str = "vlm.norm";

fn scope(root: &Scope) -> Scope {
    root.pp("vlm", LANGUAGE)
}

/// Env names of layer `i`'s cached keys and values (the names of the ops that made them).
pub fn cache_name(root: &Scope, i: usize) -> (String, String) {
    let a = scope(root).pp(format!("layers.{i}"), "").pp("attn", "");
    (a.op("k_rope"), a.op("v"))
}

/// All cache names, keys then values per layer.
pub fn cache_names(cfg: &Pi0Config) -> Vec<String> {
    (0..cfg.vlm.layers)
        .flat_map(|i| {
            let (k, v) = cache_name(&Scope::root(), i);
            [k, v]
        })
        .collect()
}

/// Reads the cache back from an env.
pub fn cache_from_env(cfg: &Pi0Config, env: &Env) -> Result<Vec<LayerKv>, ModuleError> {
    (0..cfg.vlm.layers)
        .map(|i| {
            let (k, v) = cache_name(&Scope::root(), i);
            Ok(LayerKv {
                k: take(env, &k)?.clone(),
                v: take(env, &v)?.clone(),
            })
        })
        .collect()
}

/// # Shapes
/// prefix embs [1, Lp, W], pad/att [1, Lp] → norm [1, Lp, W] and 18 × K/V [1, Lp, 16].
pub fn run(ctx: &Ctx<'_>, root: &Scope, env: &mut Env) -> Result<(), ModuleError> {
    let s = scope(root);
    let pad = take(env, prefix::PAD)?;
    let att = take(env, prefix::ATT)?;
    let mask = ctx.op(
        &s,
        "mask",
        OpKind::AttnMask2d {
            mask_value: ctx.cfg.mask_value,
        },
        &[pad, att],
    )?;
    let positions = ctx.op(&s, "positions", OpKind::Positions, &[pad])?;
    let h = take(env, prefix::EMBS)?.clone();
    let (out, kvs) = gemma::stack(ctx, &s, &ctx.cfg.vlm, h, &positions, &mask, None)?;
    for (i, kv) in kvs.into_iter().enumerate() {
        let (kn, vn) = cache_name(root, i);
        env.insert(kn, kv.k);
        env.insert(vn, kv.v);
    }
    env.insert(s.op("norm"), out);
    Ok(())
}
