//! Language token embedding (PI0_SPEC §3.5): tied table rows × √width.

use crate::backend::OpKind;
use crate::modules::checkpoint::TIED_EMBEDDING;
use crate::modules::{Ctx, ModuleError, Scope};
use crate::tensor::Tensor;

pub const OUTPUT: &str = "lang_embed.scale";

/// # Shapes
/// tokens [1, Ll] → [1, Ll, W].
pub fn forward(ctx: &Ctx<'_>, root: &Scope, tokens: &Tensor) -> Result<Tensor, ModuleError> {
    let s = root.pp("lang_embed", "");
    let table = ctx.weights.get(ctx.backend, TIED_EMBEDDING)?;
    let e = ctx.op(&s, "embedding", OpKind::Embedding, &[tokens, &table])?;
    let value = (ctx.cfg.vlm.width as f64).sqrt() as f32;
    ctx.op(&s, "scale", OpKind::MulScalar { value }, &[&e])
}
