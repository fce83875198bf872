//! `layer_norm` and `rms_norm` as TT-NN's tile kernels compute them (TT_NUMERICS §4.8):
//! statistics by `reduce_tile` with a 1/N scaler (divide-then-sum) on the FPU, centring,
//! squaring and scaling on the FPU with the op's fidelity, `rsqrt` on the SFPU; intermediates
//! in Float16_b unless `fp32_dest_acc_en` (then Float32). Defaults (§3.5): HiFi4, approximate
//! rsqrt, BF16 Dst.

use serde_json::{json, Value};

use super::format::{bf16_rne, Side};
use super::matmul::{fpu_add, fpu_mul, reduce_rows, Dst};
use super::profile::MathFidelity;
use super::sfpu::Sfpu;
use super::Ctx;
use crate::backend::OpError;
use crate::tensor::{shape_string, DType, Layout, Tensor};

/// Checks that `p` is a vector of the last-axis width of `x`.
fn width(cx: &Ctx<'_>, what: &str, x: &Tensor, p: &Tensor) -> Result<usize, OpError> {
    let Some(&d) = x.shape().last() else {
        return Err(OpError::invalid(
            cx.kind(),
            "x must have rank ≥ 1, got a scalar",
        ));
    };
    if p.shape() != [d] {
        return Err(OpError::invalid(
            cx.kind(),
            format!(
                "{what} must have shape [{d}] for x {}, got {}",
                shape_string(x.shape()),
                shape_string(p.shape())
            ),
        ));
    }
    Ok(d)
}

/// The kernel settings of a norm.
struct NormCfg {
    fidelity: MathFidelity,
    dst: Dst,
    /// Format of the intermediate circular buffers.
    interm: DType,
    sfpu: Sfpu,
}

impl NormCfg {
    fn new(cx: &Ctx<'_>) -> NormCfg {
        let fp32 = cx.set.fp32_dest_acc_en.unwrap_or(false);
        let dst = Dst::from_fp32_acc(fp32);
        NormCfg {
            fidelity: cx.set.math_fidelity.unwrap_or(MathFidelity::HiFi4),
            dst,
            interm: if fp32 { DType::F32 } else { DType::Bf16 },
            sfpu: Sfpu {
                approx: cx.set.math_approx_mode.unwrap_or(true),
                dst,
            },
        }
    }

    /// A host scalar (the 1/N scaler tile, eps) in the intermediate format.
    fn scalar(&self, v: f32) -> f32 {
        if self.interm == DType::F32 {
            v
        } else {
            bf16_rne(v)
        }
    }

    fn detail(&self, out_dt: DType) -> Value {
        json!({
            "dtype": out_dt.as_str(),
            "math_fidelity": self.fidelity.as_str(),
            "fp32_dest_acc_en": self.dst == Dst::Fp32,
            "math_approx_mode": self.sfpu.approx,
            "intermediates": self.interm.as_str(),
        })
    }

    /// Per-row reduce of `v` with the 1/`d` scaler.
    fn mean(&self, v: &[f32], vdt: DType, d: usize) -> Vec<f32> {
        let s = self.scalar(1.0 / d as f32);
        reduce_rows(v, vdt, d, s, self.fidelity, self.dst)
    }
}

/// LayerNorm: μ = reduce(x/N); c = x − μ; σ² = reduce(c²/N); r = rsqrt(σ² + eps);
/// y = ((c·r)·γ) + β.
///
/// # Shapes
/// x [.., D], weight [D], bias [D] → [.., D].
pub(super) fn layer_norm(
    cx: &Ctx<'_>,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f32,
) -> Result<(Tensor, Value), OpError> {
    let d = width(cx, "weight", x, w)?;
    width(cx, "bias", x, b)?;
    let out_dt = cx.out_dtype(x.meta.dtype);
    if !cx.tensix() {
        return cx.reference(&[x, w, b], out_dt);
    }
    let c = NormCfg::new(cx);
    let (xs, gs, bs) = (x.as_slice(), w.as_slice(), b.as_slice());
    let (xdt, gdt, bdt, idt) = (x.meta.dtype, w.meta.dtype, b.meta.dtype, c.interm);
    let mut out = vec![0.0f32; xs.len()];
    if d > 0 {
        let mean = c.mean(&xs, xdt, d);
        let mut cent = vec![0.0f32; xs.len()];
        for ((row, dst), &m) in xs.chunks(d).zip(cent.chunks_mut(d)).zip(&mean) {
            for (o, &v) in dst.iter_mut().zip(row) {
                *o = fpu_add(v, xdt, -m, idt, c.dst);
            }
        }
        let sq: Vec<f32> = cent
            .iter()
            .map(|&v| fpu_mul(v, idt, v, idt, c.fidelity, c.dst))
            .collect();
        let var = c.mean(&sq, idt, d);
        let e = c.scalar(eps);
        for ((row, dst), &v) in cent.chunks(d).zip(out.chunks_mut(d)).zip(&var) {
            let r = c.sfpu.rsqrt(fpu_add(v, idt, e, idt, c.dst));
            for (((o, &cv), &g), &be) in dst.iter_mut().zip(row).zip(gs.iter()).zip(bs.iter()) {
                let y = fpu_mul(cv, idt, r, idt, c.fidelity, c.dst);
                let y = fpu_mul(y, idt, g, gdt, c.fidelity, c.dst);
                *o = fpu_add(y, idt, be, bdt, c.dst);
            }
        }
    }
    Ok((
        cx.output(x.shape(), out, out_dt, Layout::Tile, Side::Device)?,
        c.detail(out_dt),
    ))
}

/// RMSNorm: r = rsqrt(reduce(x²/N) + eps); y = (x·r)·γ with γ = offset + w precomputed on the
/// host and stored in the weight's dtype (TTNN_CPP_API §1.7: "Gemma scales by (1+w) →
/// precompute 1+w on the host").
///
/// # Shapes
/// x [.., D], weight [D] → [.., D].
pub(super) fn rms_norm(
    cx: &Ctx<'_>,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
    offset: f32,
) -> Result<(Tensor, Value), OpError> {
    let d = width(cx, "weight", x, w)?;
    let out_dt = cx.out_dtype(x.meta.dtype);
    if !cx.tensix() {
        return cx.reference(&[x, w], out_dt);
    }
    let c = NormCfg::new(cx);
    let gdt = w.meta.dtype;
    let mut gamma: Vec<f32> = w.as_slice().iter().map(|&g| offset + g).collect();
    super::format::store(&mut gamma, d.max(1), gdt, Side::Host);
    let xs = x.as_slice();
    let (xdt, idt) = (x.meta.dtype, c.interm);
    let mut out = vec![0.0f32; xs.len()];
    if d > 0 {
        let sq: Vec<f32> = xs
            .iter()
            .map(|&v| fpu_mul(v, xdt, v, xdt, c.fidelity, c.dst))
            .collect();
        let ms = c.mean(&sq, idt, d);
        let e = c.scalar(eps);
        for ((row, dst), &m) in xs.chunks(d).zip(out.chunks_mut(d)).zip(&ms) {
            let r = c.sfpu.rsqrt(fpu_add(m, idt, e, idt, c.dst));
            for ((o, &v), &g) in dst.iter_mut().zip(row).zip(&gamma) {
                let y = fpu_mul(v, xdt, r, idt, c.fidelity, c.dst);
                *o = fpu_mul(y, idt, g, gdt, c.fidelity, c.dst);
            }
        }
    }
    let mut detail = c.detail(out_dt);
    detail["gamma"] = json!(format!("offset + w on the host, stored {}", gdt.as_str()));
    Ok((
        cx.output(x.shape(), out, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}
