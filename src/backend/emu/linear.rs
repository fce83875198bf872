//! `linear` (`ttnn.linear(x, w, transpose_b=True, bias)`) and `conv2d_patch` (host unfold +
//! linear, as TT's pi0 port embeds SigLIP patches; TTNN_CPP_API §1.7).

use serde_json::{json, Value};

use super::format::Side;
use super::matmul::{self, BlockEnd, Dst, Engine};
use super::profile::MathFidelity;
use super::{validate, Ctx};
use crate::backend::cpu;
use crate::backend::OpError;
use crate::tensor::{shape_string, DType, Layout, Tensor};

/// TT-NN's default matmul fidelity (TT_NUMERICS §3.5, 2026 code): HiFi3 for two FLOAT32
/// inputs on Wormhole; LoFi with `core_grid=` or when both inputs are block floats; else HiFi2.
fn default_fidelity(a: DType, b: DType, core_grid: bool) -> (MathFidelity, &'static str) {
    let bfp = |d: DType| matches!(d, DType::Bfloat8B | DType::Bfloat4B);
    if a == DType::F32 && b == DType::F32 {
        (
            MathFidelity::HiFi3,
            "default: both inputs FLOAT32 on Wormhole",
        )
    } else if core_grid {
        (MathFidelity::LoFi, "default: core_grid set")
    } else if bfp(a) && bfp(b) {
        (MathFidelity::LoFi, "default: both inputs block float")
    } else {
        (MathFidelity::HiFi2, "default")
    }
}

/// Operands of one product, already validated.
struct Product<'a> {
    x: &'a [f32],
    xdt: DType,
    /// The weight tensor (for the packed-planes cache) and its values as [n, k].
    wt: &'a Tensor,
    w: &'a [f32],
    wdt: DType,
    m: usize,
    k: usize,
    n: usize,
    bias: Option<&'a Tensor>,
}

fn block_end_name(b: BlockEnd) -> &'static str {
    match b {
        BlockEnd::Keep => "none",
        BlockEnd::L1Bf16 => "packer L1 acc (Float16_b)",
        BlockEnd::L1Fp32 => "packer L1 acc (Float32)",
        BlockEnd::ReloadTf32 => "spill Float32, reload TF32",
        BlockEnd::SpillBfp(7) => "spill bfloat8_b",
        BlockEnd::SpillBfp(_) => "spill bfloat4_b",
    }
}

/// The emulated product: matmul engine and fused bias (TT_NUMERICS §3.3–§3.4); the caller
/// packs the result into the output dtype.
fn product(cx: &Ctx<'_>, p: Product<'_>, out_dt: DType) -> (Vec<f32>, Value) {
    let core_grid = cx.set.core_grid.unwrap_or(false);
    let (fidelity, source) = match cx.set.math_fidelity {
        Some(f) => (f, "profile"),
        None => default_fidelity(p.xdt, p.wdt, core_grid),
    };
    // §3.5: fp32 Dst iff the output is FLOAT32, packer L1 acc iff it is not.
    let fp32 = cx.set.fp32_dest_acc_en.unwrap_or(out_dt == DType::F32);
    let l1 = cx.set.packer_l1_acc.unwrap_or(out_dt != DType::F32);
    let e = Engine::new(fidelity, fp32, l1, p.k, out_dt, p.bias.is_some());
    let pw = cx.packed.get(p.wt, p.w, p.n, p.k, fidelity);
    let mut v = matmul::matmul_packed(p.x, p.xdt, &pw, p.m, p.k, p.n, &e, cx.threads);
    if let Some(b) = p.bias {
        // §3.4: the product is packed to the intermediate CB, then unpacked beside the bias
        // for the FPU add (a Float32 intermediate enters SrcA as TF32).
        let interm = if e.dst == Dst::Fp32 {
            DType::F32
        } else {
            DType::Bf16
        };
        let bd = b.as_slice();
        for row in v.chunks_mut(p.n) {
            for (o, &bv) in row.iter_mut().zip(bd.iter()) {
                *o = matmul::fpu_add(*o, interm, bv, b.meta.dtype, e.dst);
            }
        }
    }
    let kt = p.k.div_ceil(32).max(1);
    let mut detail = json!({
        "dtype": out_dt.as_str(),
        "weight_dtype": p.wdt.as_str(),
        "math_fidelity": fidelity.as_str(),
        "math_fidelity_source": source,
        "fp32_dest_acc_en": fp32,
        "packer_l1_acc": l1,
        "in0_block_w": e.block_k / 32,
        "num_blocks": kt / (e.block_k / 32),
        "k_block_end": block_end_name(e.block_end),
        "operands": "in0 (activations) → SrcB, in1 (weights) → SrcA",
    });
    if let Some(b) = p.bias {
        detail["bias_dtype"] = json!(b.meta.dtype.as_str());
    }
    if fidelity == MathFidelity::HiFi4 && fp32 {
        detail["warning"] = json!(
            "HiFi4 with fp32_dest_acc_en: on Wormhole a hardware bug corrupts rare output elements by a power of two (TT_NUMERICS §3.3); not emulated"
        );
    }
    (v, detail)
}

fn check_bias(cx: &Ctx<'_>, b: Option<&Tensor>, n: usize) -> Result<(), OpError> {
    match b {
        Some(b) if b.shape() != [n] => Err(OpError::invalid(
            cx.kind(),
            format!(
                "bias must have shape [{n}], got {}",
                shape_string(b.shape())
            ),
        )),
        _ => Ok(()),
    }
}

/// y = x Wᵀ (+ b).
///
/// # Shapes
/// x [.., K], weight [N, K], bias [N] → [.., N].
pub(super) fn linear(
    cx: &Ctx<'_>,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<(Tensor, Value), OpError> {
    let Some((_, lead)) = x.shape().split_last() else {
        return Err(OpError::invalid(
            cx.kind(),
            "x must have rank ≥ 1, got a scalar",
        ));
    };
    let &[n, k] = w.shape() else {
        return Err(OpError::invalid(
            cx.kind(),
            format!(
                "weight must have rank 2, got shape {}",
                shape_string(w.shape())
            ),
        ));
    };
    // `linear` passes the weight transposed: its height is the weight's input width.
    let padded_k = w.meta.padded_shape.get(1).copied().unwrap_or(k);
    validate::matmul(x, w, k, padded_k)?;
    check_bias(cx, b, n)?;
    let out_dt = cx.out_dtype(x.meta.dtype);
    if !cx.tensix() {
        return cx.reference(&[x, w].into_iter().chain(b).collect::<Vec<_>>(), out_dt);
    }
    let m: usize = lead.iter().product();
    let (xd, wd) = (x.as_slice(), w.as_slice());
    let (v, detail) = product(
        cx,
        Product {
            x: &xd,
            xdt: x.meta.dtype,
            wt: w,
            w: &wd,
            wdt: w.meta.dtype,
            m,
            k,
            n,
            bias: b,
        },
        out_dt,
    );
    let mut shape = lead.to_vec();
    shape.push(n);
    Ok((
        cx.output(&shape, v, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}

/// Patch embedding: the images unfolded on the host (exact), then `linear` with the weight
/// reshaped to [D, C·p·p].
///
/// # Shapes
/// images [N, C, H, W], weight [D, C, p, p], bias [D] → [N, (H/p)·(W/p), D].
pub(super) fn conv2d_patch(
    cx: &Ctx<'_>,
    patch: usize,
    images: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<(Tensor, Value), OpError> {
    let p = cpu::patches(cx.kind(), patch, images, w)?;
    check_bias(cx, b, p.d)?;
    let out_dt = cx.out_dtype(images.meta.dtype);
    if !cx.tensix() {
        return cx.reference(
            &[images, w].into_iter().chain(b).collect::<Vec<_>>(),
            out_dt,
        );
    }
    let wd = w.as_slice();
    let (v, mut detail) = product(
        cx,
        Product {
            x: &p.cols,
            xdt: images.meta.dtype,
            wt: w,
            w: &wd,
            wdt: w.meta.dtype,
            m: p.rows,
            k: p.kk,
            n: p.d,
            bias: b,
        },
        out_dt,
    );
    detail["unfold"] = json!("host");
    Ok((
        cx.output(&p.out_shape, v, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}
