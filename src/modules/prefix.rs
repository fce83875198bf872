//! Prefix construction (PI0_SPEC §3.6): image tokens then language tokens, pad and ar masks.

use crate::backend::OpKind;
use crate::modules::{lang_embed, projector, take, Ctx, Env, ModuleError, Scope};

pub const EMBS: &str = "prefix.embs";
pub const PAD: &str = "prefix.pad_masks";
pub const ATT: &str = "prefix.att_masks";

/// # Shapes
/// image tokens [C, P, W], language [1, Ll, W], img_masks [1, C], lang_masks [1, Ll]
/// → embs [1, Lp, W], pad [1, Lp], att [1, Lp].
pub fn run(ctx: &Ctx<'_>, root: &Scope, env: &mut Env) -> Result<(), ModuleError> {
    let cfg = ctx.cfg;
    let s = root.pp("prefix", "");
    let img = take(env, projector::OUTPUT)?;
    let lang = take(env, lang_embed::OUTPUT)?;
    let p = cfg.siglip.patches();
    let w = cfg.vlm.width;
    let tokens = ctx.op(
        &s,
        "image_tokens",
        OpKind::Reshape {
            shape: vec![1, cfg.cameras * p, w],
        },
        &[img],
    )?;
    let embs = ctx.op(&s, "embs", OpKind::Concat { dim: 1 }, &[&tokens, lang])?;
    let img_pad = ctx.op(
        &s,
        "img_pad",
        OpKind::RepeatInterleave { dim: 1, repeats: p },
        &[take(env, "img_masks")?],
    )?;
    let pad = ctx.op(
        &s,
        "pad_masks",
        OpKind::Concat { dim: 1 },
        &[&img_pad, take(env, "lang_masks")?],
    )?;
    let att = ctx.op(
        &s,
        "att_masks",
        OpKind::Full {
            shape: vec![1, cfg.prefix_len()],
            value: 0.0,
        },
        &[],
    )?;
    env.insert(EMBS.into(), embs);
    env.insert(PAD.into(), pad);
    env.insert(ATT.into(), att);
    Ok(())
}
