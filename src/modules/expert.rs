//! The action expert (Gemma 300M) over the suffix, each layer attending to
//! [cached VLM K/V ; its own K/V].

use crate::modules::checkpoint::EXPERT;
use crate::modules::{attn_masks, gemma, suffix, take, vlm, Ctx, Env, ModuleError, Scope};

pub const OUTPUT: &str = "expert.norm";

/// # Shapes
/// suffix embs [1, 51, De], mask rows [1, 1, 51, L], positions [1, 51], VLM cache
/// → [1, 51, De].
pub fn run(ctx: &Ctx<'_>, root: &Scope, env: &mut Env) -> Result<(), ModuleError> {
    let s = root.pp("expert", EXPERT);
    let cache = vlm::cache_from_env(ctx.cfg, env)?;
    let h = take(env, suffix::EMBS)?.clone();
    let mask = take(env, attn_masks::SUFFIX_ROWS)?;
    let positions = take(env, attn_masks::SUFFIX_POSITIONS)?;
    let (out, _) = gemma::stack(ctx, &s, &ctx.cfg.expert, h, positions, mask, Some(&cache))?;
    env.insert(OUTPUT.into(), out);
    Ok(())
}
