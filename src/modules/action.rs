//! Action-token extraction (the last `horizon` suffix tokens) and the action projection.

use crate::backend::OpKind;
use crate::modules::{expert, take, Ctx, Env, ModuleError, Scope};

pub const EXTRACT_OUTPUT: &str = "action_extract.slice";
pub const PROJ_OUTPUT: &str = "action_proj.linear";

/// # Shapes
/// [1, 51, De] → [1, 50, De].
pub fn run_extract(ctx: &Ctx<'_>, root: &Scope, env: &mut Env) -> Result<(), ModuleError> {
    let s = root.pp("action_extract", "");
    let l = ctx.cfg.suffix_len();
    let out = ctx.op(
        &s,
        "slice",
        OpKind::Slice {
            dim: 1,
            start: l - ctx.cfg.horizon,
            end: l,
        },
        &[take(env, expert::OUTPUT)?],
    )?;
    env.insert(EXTRACT_OUTPUT.into(), out);
    Ok(())
}

/// # Shapes
/// [1, 50, De] → velocity [1, 50, 32].
pub fn run_proj(ctx: &Ctx<'_>, root: &Scope, env: &mut Env) -> Result<(), ModuleError> {
    let s = root.pp("action_proj", "action_out_proj");
    let w = ctx.param(&s, "weight")?;
    let b = ctx.param(&s, "bias")?;
    let out = ctx.op(
        &s,
        "linear",
        OpKind::Linear,
        &[take(env, EXTRACT_OUTPUT)?, &w, &b],
    )?;
    env.insert(PROJ_OUTPUT.into(), out);
    Ok(())
}
