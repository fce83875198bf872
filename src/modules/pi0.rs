//! The full sampler (PI0_SPEC §3.11–3.12): the prefix pass once, then `steps` Euler steps
//! t = 1 → 0 with x ← x + dt·v, dt = −1/steps. Each step runs the suffix … action_proj modules
//! under the op prefix `denoise.{k}`.

use crate::backend::OpKind;
use crate::modules::{
    action, attn_masks, expert, lang_embed, prefix, projector, siglip, suffix, take, vlm, Ctx, Env,
    ModuleError, Pi0Config, Scope,
};

/// Name of the sampler's output (the actions).
pub fn output_name(cfg: &Pi0Config) -> String {
    step_scope(&Scope::root(), cfg.steps.saturating_sub(1)).op("euler")
}

fn step_scope(root: &Scope, k: usize) -> Scope {
    root.pp_op(format!("denoise.{k}"))
}

/// # Shapes
/// images [C, 3, H, W], img_masks [1, C], tokens/lang_masks [1, Ll], state [1, 32],
/// noise [1, 50, 32] → actions [1, 50, 32].
pub fn run(ctx: &Ctx<'_>, root: &Scope, env: &mut Env) -> Result<(), ModuleError> {
    let cfg = ctx.cfg;
    let img = siglip::forward(ctx, root, take(env, "images")?)?;
    let img = projector::forward(ctx, root, &img)?;
    let lang = lang_embed::forward(ctx, root, take(env, "tokens")?)?;
    env.insert(projector::OUTPUT.into(), img);
    env.insert(lang_embed::OUTPUT.into(), lang);
    prefix::run(ctx, root, env)?;
    vlm::run(ctx, root, env)?;

    let dt = -1.0 / cfg.steps as f64;
    let mut x = take(env, "noise")?.clone();
    for k in 0..cfg.steps {
        let s = step_scope(root, k);
        let t = ctx.op(
            &s,
            "time",
            OpKind::Full {
                shape: vec![1],
                value: (1.0 + k as f64 * dt) as f32,
            },
            &[],
        )?;
        let mut step: Env = Env::new();
        for name in [prefix::PAD, prefix::ATT, "state"] {
            step.insert(name.to_string(), take(env, name)?.clone());
        }
        for name in vlm::cache_names(cfg) {
            let t = take(env, &name)?.clone();
            step.insert(name, t);
        }
        step.insert("t".into(), t);
        step.insert("x_t".into(), x.clone());
        suffix::run(ctx, &s, &mut step, "t", "x_t")?;
        attn_masks::run(ctx, &s, &mut step)?;
        expert::run(ctx, &s, &mut step)?;
        action::run_extract(ctx, &s, &mut step)?;
        action::run_proj(ctx, &s, &mut step)?;
        let v = take(&step, action::PROJ_OUTPUT)?;
        let e = s.pp_op("euler");
        let delta = ctx.op(&e, "step", OpKind::MulScalar { value: dt as f32 }, &[v])?;
        x = ctx.op(&s, "euler", OpKind::Add, &[&x, &delta])?;
    }
    env.insert(output_name(cfg), x);
    Ok(())
}
