//! Prefix + suffix masks and positions (PI0_SPEC §3.8): the cumsum rule, then the suffix rows
//! and positions the denoise step uses.

use crate::backend::OpKind;
use crate::modules::{prefix, suffix, take, Ctx, Env, ModuleError, Scope};

pub const SUFFIX_ROWS: &str = "attn_masks.suffix_rows";
pub const SUFFIX_POSITIONS: &str = "attn_masks.suffix_positions";

/// # Shapes
/// prefix pad/att [1, Lp], suffix pad/att [1, 51] → rows [1, 1, 51, L], positions [1, 51].
pub fn run(ctx: &Ctx<'_>, root: &Scope, env: &mut Env) -> Result<(), ModuleError> {
    let s = root.pp("attn_masks", "");
    let lp = ctx.cfg.prefix_len();
    let l = lp + ctx.cfg.suffix_len();
    let cat = OpKind::Concat { dim: 1 };
    let pad = ctx.op(
        &s,
        "pad",
        cat.clone(),
        &[take(env, prefix::PAD)?, take(env, suffix::PAD)?],
    )?;
    let ar = ctx.op(
        &s,
        "ar",
        cat,
        &[take(env, prefix::ATT)?, take(env, suffix::ATT)?],
    )?;
    let full = ctx.op(
        &s,
        "full",
        OpKind::AttnMask2d {
            mask_value: ctx.cfg.mask_value,
        },
        &[&pad, &ar],
    )?;
    let positions = ctx.op(&s, "positions", OpKind::Positions, &[&pad])?;
    let rows = ctx.op(
        &s,
        "suffix_rows",
        OpKind::Slice {
            dim: 2,
            start: lp,
            end: l,
        },
        &[&full],
    )?;
    let pos = ctx.op(
        &s,
        "suffix_positions",
        OpKind::Slice {
            dim: 1,
            start: lp,
            end: l,
        },
        &[&positions],
    )?;
    env.insert(SUFFIX_ROWS.into(), rows);
    env.insert(SUFFIX_POSITIONS.into(), pos);
    Ok(())
}
