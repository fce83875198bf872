//! Element-wise ops: `add`, `mul` (binary_ng broadcasting), `mul_scalar`, `gelu`, `silu`.

use ndarray::IxDyn;
use serde_json::{json, Value};

use super::format::{bf16_rne, bf16_trunc, Side};
use super::matmul::{self, Dst};
use super::sfpu::Sfpu;
use super::{validate, Ctx};
use crate::backend::{GeluApprox, OpError, OpKind};
use crate::tensor::{DType, Layout, Tensor};

/// SFPU multiply (TT_NUMERICS §3.6: bf16 `ttnn.multiply` runs on the SFPU with an explicit
/// round to nearest even since tt-metal PR #35077 — 100% ULP 0 against torch); with an FP32
/// Dst the fp32 product.
#[inline]
fn sfpu_mul(a: f32, b: f32, dst: Dst) -> f32 {
    let p = a * b;
    match dst {
        Dst::Bf16 => bf16_rne(p),
        Dst::Fp32 => p,
    }
}

/// `add` / `mul` with NumPy broadcasting as `binary_ng` accepts it.
///
/// `add` is the FPU's ELWADD: operands in source registers (fp32 as TF32, §1.2), the sum
/// rounded to Dst (§3.6). `mul` is the SFPU multiply. Dst is FP32 when the profile says so or
/// an operand or the output is FLOAT32.
///
/// # Shapes
/// a, b broadcastable → broadcast(a, b).
pub(super) fn binary(cx: &Ctx<'_>, a: &Tensor, b: &Tensor) -> Result<(Tensor, Value), OpError> {
    let shape = validate::broadcast(a.shape(), b.shape())?;
    let out_dt = cx.out_dtype(a.meta.dtype);
    if !cx.tensix() {
        return cx.reference(&[a, b], out_dt);
    }
    let any_f32 = [a.meta.dtype, b.meta.dtype, out_dt].contains(&DType::F32);
    let fp32 = cx.set.fp32_dest_acc_en.unwrap_or(any_f32);
    let dst = Dst::from_fp32_acc(fp32);
    let (adt, bdt) = (a.meta.dtype, b.meta.dtype);
    let is_add = matches!(cx.kind(), OpKind::Add);
    let f = |x: f32, y: f32| {
        if is_add {
            matmul::fpu_add(x, adt, y, bdt, dst)
        } else {
            sfpu_mul(x, y, dst)
        }
    };
    let data: Vec<f32> = if a.shape() == b.shape() {
        let (x, y) = (a.as_slice(), b.as_slice());
        x.iter().zip(y.iter()).map(|(&p, &q)| f(p, q)).collect()
    } else {
        let dim = IxDyn(&shape);
        let bad = || OpError::invalid(cx.kind(), "internal: broadcast view failed");
        let av = a.array().broadcast(dim.clone()).ok_or_else(bad)?;
        let bv = b.array().broadcast(dim).ok_or_else(bad)?;
        av.iter().zip(bv.iter()).map(|(&p, &q)| f(p, q)).collect()
    };
    let detail = json!({
        "dtype": out_dt.as_str(),
        "unit": if is_add { "FPU (ELWADD)" } else { "SFPU (multiply, RNE)" },
        "fp32_dest_acc_en": fp32,
    });
    Ok((
        cx.output(&shape, data, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}

/// `ttnn.multiply(x, scalar)`: the scalar is passed to the kernel truncated to bf16 for a
/// bf16 (or block-float) tensor (TT_NUMERICS §1.3, "truncation in scalar passing to kernel in
/// binary ops"), then the SFPU multiply.
pub(super) fn mul_scalar(cx: &Ctx<'_>, x: &Tensor, value: f32) -> Result<(Tensor, Value), OpError> {
    let out_dt = cx.out_dtype(x.meta.dtype);
    if !cx.tensix() {
        return cx.reference(&[x], out_dt);
    }
    let fp32 = cx
        .set
        .fp32_dest_acc_en
        .unwrap_or(x.meta.dtype == DType::F32 || out_dt == DType::F32);
    let dst = Dst::from_fp32_acc(fp32);
    let s = if x.meta.dtype == DType::F32 {
        value
    } else {
        bf16_trunc(value)
    };
    let data: Vec<f32> = x.as_slice().iter().map(|&v| sfpu_mul(v, s, dst)).collect();
    let detail = json!({
        "dtype": out_dt.as_str(),
        "scalar": s,
        "fp32_dest_acc_en": fp32,
    });
    Ok((
        cx.output(x.shape(), data, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}

/// `gelu` and `silu` on the SFPU (TT_NUMERICS §4.4, §4.6). Unfused `ttnn.gelu` defaults to the
/// accurate kernel (`math_approx_mode` false).
pub(super) fn unary(cx: &Ctx<'_>, x: &Tensor) -> Result<(Tensor, Value), OpError> {
    let out_dt = cx.out_dtype(x.meta.dtype);
    if !cx.tensix() {
        return cx.reference(&[x], out_dt);
    }
    let fp32 = cx
        .set
        .fp32_dest_acc_en
        .unwrap_or(x.meta.dtype == DType::F32 || out_dt == DType::F32);
    let approx = cx.set.math_approx_mode.unwrap_or(false);
    let sfpu = Sfpu {
        approx,
        dst: Dst::from_fp32_acc(fp32),
    };
    let xs = x.as_slice();
    let (data, variant): (Vec<f32>, &str) = match cx.kind() {
        OpKind::Gelu { approx: form } => {
            let tanh = *form == GeluApprox::Tanh;
            let variant = match (approx, tanh) {
                (true, _) => "approximate (6-segment LUT)",
                (false, true) => "accurate (tanh form)",
                (false, false) => "accurate (erf form)",
            };
            (xs.iter().map(|&v| sfpu.gelu(v, tanh)).collect(), variant)
        }
        _ => (xs.iter().map(|&v| sfpu.silu(v)).collect(), "x·sigmoid(x)"),
    };
    let detail = json!({
        "dtype": out_dt.as_str(),
        "math_approx_mode": approx,
        "fp32_dest_acc_en": fp32,
        "variant": variant,
    });
    Ok((
        cx.output(x.shape(), data, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}
