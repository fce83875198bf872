//! Suffix construction for pi0 (PI0_SPEC §3.7): state token, sinusoidal time embedding,
//! action-time MLP, pad and ar masks.

use crate::backend::OpKind;
use crate::modules::{take, Ctx, Env, ModuleError, Scope};

pub const EMBS: &str = "suffix.embs";
pub const PAD: &str = "suffix.pad_masks";
pub const ATT: &str = "suffix.att_masks";

/// Reads `state`, the time under `time_key` and the noisy actions under `x_key`.
///
/// # Shapes
/// state [1, 32], x_t [1, 50, 32], t [1] → embs [1, 51, De], pad/att [1, 51].
pub fn run(
    ctx: &Ctx<'_>,
    root: &Scope,
    env: &mut Env,
    time_key: &str,
    x_key: &str,
) -> Result<(), ModuleError> {
    let cfg = ctx.cfg;
    let de = cfg.expert.width;
    let hz = cfg.horizon;
    let s = root.pp("suffix", "");
    let state = ctx.linear(&s, "state_proj", "state_proj", take(env, "state")?, true)?;
    let state = ctx.op(
        &s,
        "state_token",
        OpKind::Reshape {
            shape: vec![1, 1, de],
        },
        &[&state],
    )?;
    let temb = ctx.op(
        &s,
        "time_embed",
        OpKind::TimeEmbed {
            dim: de,
            min_period: cfg.time_min_period,
            max_period: cfg.time_max_period,
        },
        &[take(env, time_key)?],
    )?;
    let act = ctx.linear(&s, "action_in", "action_in_proj", take(env, x_key)?, true)?;
    let tt = ctx.op(
        &s,
        "time_tokens",
        OpKind::Expand {
            shape: vec![1, hz, de],
        },
        &[&temb],
    )?;
    let z = ctx.op(&s, "concat", OpKind::Concat { dim: 2 }, &[&act, &tt])?;
    let z = ctx.linear(&s, "mlp_in", "action_time_mlp_in", &z, true)?;
    let z = ctx.op(&s, "mlp_act", OpKind::Silu, &[&z])?;
    let z = ctx.linear(&s, "mlp_out", "action_time_mlp_out", &z, true)?;
    let embs = ctx.op(&s, "embs", OpKind::Concat { dim: 1 }, &[&state, &z])?;
    let full = |leaf: &str, n: usize, value: f32| {
        ctx.op(
            &s,
            leaf,
            OpKind::Full {
                shape: vec![1, n],
                value,
            },
            &[],
        )
    };
    let pad = full("pad_masks", hz + 1, 1.0)?;
    let head = full("ar_head", 2, 1.0)?;
    let tail = full("ar_tail", hz - 1, 0.0)?;
    let att = ctx.op(&s, "att_masks", OpKind::Concat { dim: 1 }, &[&head, &tail])?;
    env.insert(EMBS.into(), embs);
    env.insert(PAD.into(), pad);
    env.insert(ATT.into(), att);
    Ok(())
}
