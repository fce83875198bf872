//! `layer_norm` and `rms_norm` over the last axis, with f64 statistics.

use super::{fma32, output};
use crate::backend::{OpError, OpKind};
use crate::tensor::{shape_string, Tensor};

/// Checks that `p` is a vector of the last-axis width of `x`.
fn check_param(kind: &OpKind, what: &str, x: &Tensor, p: &Tensor) -> Result<usize, OpError> {
    let Some(&d) = x.shape().last() else {
        return Err(OpError::invalid(kind, "x must have rank ≥ 1, got a scalar"));
    };
    if p.shape() != [d] {
        return Err(OpError::invalid(
            kind,
            format!(
                "{what} must have shape [{d}] for x {}, got {}",
                shape_string(x.shape()),
                shape_string(p.shape())
            ),
        ));
    }
    Ok(d)
}

/// LayerNorm with biased variance: y = (x − μ)·rstd·w + b, rstd = 1/√(var + eps).
///
/// μ and var are accumulated in f64 (two passes) and rounded to f32; rstd is then formed in
/// f32 and the affine step is one fused multiply-add, as in torch's CPU kernel.
///
/// # Shapes
/// x [.., D], weight [D], bias [D] → [.., D].
pub(super) fn layer_norm(
    kind: &OpKind,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f32,
) -> Result<Tensor, OpError> {
    let d = check_param(kind, "weight", x, w)?;
    check_param(kind, "bias", x, b)?;
    let xs = x.as_slice();
    let (wd, bd) = (w.as_slice(), b.as_slice());
    let mut out = vec![0.0f32; xs.len()];
    if d > 0 {
        for (row, dst) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row
                .iter()
                .map(|&v| {
                    let c = v as f64 - mean;
                    c * c
                })
                .sum::<f64>()
                / d as f64;
            let mean = mean as f32;
            let rstd = 1.0 / (var as f32 + eps).sqrt();
            for (((o, &v), &g), &be) in dst.iter_mut().zip(row).zip(wd.iter()).zip(bd.iter()) {
                *o = fma32((v - mean) * rstd, g, be);
            }
        }
    }
    output(kind, x.shape(), out)
}

/// RMSNorm: y = x · rsqrt(mean(x²) + eps) · (offset + w).
///
/// mean(x²) is accumulated in f64 and rounded to f32; the rest is f32 in torch's order
/// ((x · r) · (offset + w)).
///
/// # Shapes
/// x [.., D], weight [D] → [.., D].
pub(super) fn rms_norm(
    kind: &OpKind,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
    offset: f32,
) -> Result<Tensor, OpError> {
    let d = check_param(kind, "weight", x, w)?;
    let xs = x.as_slice();
    let scale: Vec<f32> = w.as_slice().iter().map(|&g| offset + g).collect();
    let mut out = vec![0.0f32; xs.len()];
    if d > 0 {
        for (row, dst) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / d as f64;
            let r = 1.0 / (ms as f32 + eps).sqrt();
            for ((o, &v), &s) in dst.iter_mut().zip(row).zip(&scale) {
                *o = (v * r) * s;
            }
        }
    }
    output(kind, x.shape(), out)
}
