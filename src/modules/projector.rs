//! Multimodal projector (PI0_SPEC §3.3): one linear, SigLIP width → VLM width.

use crate::modules::checkpoint::PROJECTOR;
use crate::modules::{Ctx, ModuleError, Scope};
use crate::tensor::Tensor;

pub const OUTPUT: &str = "projector.linear";

/// # Shapes
/// [C, P, Ds] → [C, P, W].
pub fn forward(ctx: &Ctx<'_>, root: &Scope, x: &Tensor) -> Result<Tensor, ModuleError> {
    let s = root.pp("projector", PROJECTOR);
    let w = ctx.param(&s, "weight")?;
    let b = ctx.param(&s, "bias")?;
    ctx.op(&s, "linear", crate::backend::OpKind::Linear, &[x, &w, &b])
}
