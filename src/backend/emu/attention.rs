//! Attention: `rope` (`ttnn.experimental.rotary_embedding`) and `sdpa` (the Wormhole
//! flash-attention kernel), plus the softmax primitive (`ttnn.softmax`).

use rayon::prelude::*;
use serde_json::{json, Value};

use super::format::{bf16_device, bf16_rne, Side};
use super::matmul::{self, fpu_add, fpu_mul, reduce_rows, Dst, Engine};
use super::profile::{MathFidelity, SdpaKernel};
use super::sfpu::Sfpu;
use super::Ctx;
use crate::backend::OpError;
use crate::tensor::{shape_string, DType, Layout, Tensor};

/// Keys per SDPA chunk (`k_chunk_size`; TT-NN's default program config is not in
/// TT_NUMERICS — one tile is assumed).
pub const K_CHUNK: usize = 32;

/// Rotary embedding, half-split per head. cos/sin are computed on the device in fp32 and
/// typecast to bf16 (TT_NUMERICS §8, Gemma), then y = x·cos + rotate_half(x)·sin with two FPU
/// multiplies and an add (the op's fidelity, default HiFi4; BF16 Dst).
///
/// # Shapes
/// x [B, T, H·hd], positions [B, T] (or [1, T]) → [B, T, H·hd].
pub(super) fn rope(
    cx: &Ctx<'_>,
    x: &Tensor,
    pos: &Tensor,
    theta: f32,
    head_dim: usize,
) -> Result<(Tensor, Value), OpError> {
    let &[b, t, w] = x.shape() else {
        return Err(OpError::invalid(
            cx.kind(),
            format!("x must have rank 3, got shape {}", shape_string(x.shape())),
        ));
    };
    if head_dim == 0 || !head_dim.is_multiple_of(2) || w % head_dim != 0 {
        return Err(OpError::invalid(
            cx.kind(),
            format!(
                "head_dim {head_dim} must be even, non-zero and divide the width of x {}",
                shape_string(x.shape())
            ),
        ));
    }
    let pb = match pos.shape() {
        &[pb, pt] if pt == t && (pb == b || pb == 1) => pb,
        _ => {
            return Err(OpError::invalid(
                cx.kind(),
                format!(
                    "positions {} must be [{b}, {t}] (or [1, {t}]) for x {}",
                    shape_string(pos.shape()),
                    shape_string(x.shape())
                ),
            ))
        }
    };
    let out_dt = cx.out_dtype(x.meta.dtype);
    if !cx.tensix() {
        return cx.reference(&[x, pos], out_dt);
    }
    let xdt = x.meta.dtype;
    let fp32 = cx
        .set
        .fp32_dest_acc_en
        .unwrap_or(xdt == DType::F32 || out_dt == DType::F32);
    let dst = Dst::from_fp32_acc(fp32);
    let fid = cx.set.math_fidelity.unwrap_or(MathFidelity::HiFi4);
    let (tdt, idt) = if fp32 {
        (DType::F32, DType::F32)
    } else {
        (DType::Bf16, DType::Bf16)
    };
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|j| (theta as f64).powf(-2.0 * j as f64 / head_dim as f64) as f32)
        .collect();
    let xs = x.as_slice();
    let ps = pos.as_slice();
    let mut out = vec![0.0f32; xs.len()];
    let (mut cos, mut sin) = (vec![0.0f32; half], vec![0.0f32; half]);
    for bi in 0..b {
        for ti in 0..t {
            let p = ps[if pb == 1 { ti } else { bi * t + ti }];
            for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&inv_freq) {
                let a = (p * f) as f64;
                let (cv, sv) = (a.cos() as f32, a.sin() as f32);
                (*c, *s) = if tdt == DType::Bf16 {
                    (bf16_device(cv), bf16_device(sv))
                } else {
                    (cv, sv)
                };
            }
            let base = (bi * t + ti) * w;
            for (hs, hd) in xs[base..base + w]
                .chunks_exact(head_dim)
                .zip(out[base..base + w].chunks_exact_mut(head_dim))
            {
                let (x1, x2) = hs.split_at(half);
                let (y1, y2) = hd.split_at_mut(half);
                for j in 0..half {
                    let mul = |a: f32, c: f32| fpu_mul(a, xdt, c, tdt, fid, dst);
                    y1[j] = fpu_add(mul(x1[j], cos[j]), idt, -mul(x2[j], sin[j]), idt, dst);
                    y2[j] = fpu_add(mul(x2[j], cos[j]), idt, mul(x1[j], sin[j]), idt, dst);
                }
            }
        }
    }
    let detail = json!({
        "dtype": out_dt.as_str(),
        "math_fidelity": fid.as_str(),
        "fp32_dest_acc_en": fp32,
        "tables": format!("cos/sin in fp32 on device, typecast to {}", tdt.as_str()),
    });
    Ok((
        cx.output(x.shape(), out, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}

/// `ttnn.softmax` over rows of `width` logical values, as the tile kernel runs it
/// (TT_NUMERICS §4.7, §2.2): each row padded with −∞ to whole tiles, optional max
/// subtraction (`numeric_stable`), exp on the SFPU (approximate by default), the sum as an FPU
/// reduce, reciprocal on the SFPU, then an FPU multiply. Intermediates are bf16 unless Dst is
/// FP32. Returns the logical values.
pub fn softmax(
    x: &[f32],
    width: usize,
    sfpu: Sfpu,
    fidelity: MathFidelity,
    stable: bool,
) -> Vec<f32> {
    let dst = sfpu.dst;
    let idt = if dst == Dst::Fp32 {
        DType::F32
    } else {
        DType::Bf16
    };
    let padded = width.div_ceil(32).max(1) * 32;
    let rows = x.len().checked_div(width).unwrap_or(0);
    let mut e = vec![0.0f32; rows * padded];
    for (src, row) in x.chunks(width.max(1)).zip(e.chunks_mut(padded)) {
        row[..width].copy_from_slice(src);
        row[width..].fill(f32::NEG_INFINITY);
        let m = if stable {
            row.iter().copied().fold(f32::NEG_INFINITY, f32::max)
        } else {
            0.0
        };
        for v in row.iter_mut() {
            let z = if stable {
                fpu_add(*v, idt, -m, idt, dst)
            } else {
                *v
            };
            *v = if z == f32::NEG_INFINITY {
                0.0
            } else {
                sfpu.exp(z)
            };
        }
    }
    let sums = reduce_rows(&e, idt, padded, 1.0, fidelity, dst);
    let mut out = Vec::with_capacity(rows * width);
    for (row, &s) in e.chunks(padded).zip(&sums) {
        let r = sfpu.recip(s);
        out.extend(
            row[..width]
                .iter()
                .map(|&v| fpu_mul(v, idt, r, idt, fidelity, dst)),
        );
    }
    out
}

/// Head layout of an attention op.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heads {
    pub q: usize,
    pub kv: usize,
    pub dim: usize,
}

/// Element strides of a mask broadcast to [B, Hq, T, S] (0 where broadcast).
fn mask_strides(cx: &Ctx<'_>, mask: &Tensor, target: [usize; 4]) -> Result<[usize; 4], OpError> {
    let s = mask.shape();
    let bad = || {
        OpError::invalid(
            cx.kind(),
            format!(
                "mask {} does not broadcast to [B, 1, T, S] = [{}, 1, {}, {}]",
                shape_string(s),
                target[0],
                target[2],
                target[3]
            ),
        )
    };
    if s.len() > 4 {
        return Err(bad());
    }
    let mut dims = [1usize; 4];
    dims[4 - s.len()..].copy_from_slice(s);
    let mut strides = [0usize; 4];
    let mut acc = 1usize;
    for i in (0..4).rev() {
        if dims[i] == target[i] {
            strides[i] = if dims[i] == 1 { 0 } else { acc };
        } else if dims[i] != 1 {
            return Err(bad());
        }
        acc *= dims[i];
    }
    Ok(strides)
}

/// One (batch, head) of an attention op: q [t, hd], k and v [s, hd] (row-major), their
/// dtypes, the scale and the additive mask (mask(i, j) for query i, key j).
#[derive(Clone, Copy)]
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    dts: [DType; 3],
    t: usize,
    s: usize,
    hd: usize,
    scale: f32,
    mask: Option<&'a dyn Fn(usize, usize) -> f32>,
    mdt: DType,
}

/// The per-head kernel settings.
#[derive(Clone, Copy)]
struct Flash {
    fidelity: MathFidelity,
    dst: Dst,
    sfpu: Sfpu,
    /// Format of the running output and sum (bf16, or fp32 with an FP32 Dst).
    state: DType,
}

/// One (batch, head) of the streaming kernel.
///
/// TT_NUMERICS §4.7 (Wormhole legacy flash kernel): S = Q·Kᵀ at the op's fidelity, packed to
/// bf16; S ← S·scale (+ mask), bf16; per chunk of [`K_CHUNK`] keys: m' = max(m, rowmax S),
/// P = exp(S − m') (the subtraction on the FPU in bf16, exp on the SFPU, P stored bf16),
/// α = exp(m − m'), l ← α·l + rowsum(P), O ← α·O + P·V (running O and l in bf16 unless FP32
/// Dst); finally O·(1/l).
fn flash_head(h: &Head<'_>, f: Flash) -> Vec<f32> {
    let Head {
        q,
        k,
        v,
        dts,
        t,
        s,
        hd,
        scale,
        mask,
        mdt,
    } = *h;
    let [qdt, kdt, vdt] = dts;
    let e_qk = Engine::new(
        f.fidelity,
        f.dst == Dst::Fp32,
        false,
        hd,
        DType::Bf16,
        false,
    );
    let mut sc = matmul::matmul(q, qdt, k, kdt, t, hd, s, &e_qk, 1);
    let scale_b = bf16_rne(scale);
    for (i, row) in sc.chunks_mut(s).enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            let mut y = bf16_device(f.dst.store(bf16_device(*x) * scale_b));
            if let Some(m) = mask {
                y = bf16_device(fpu_add(y, DType::Bf16, m(i, j), mdt, f.dst));
            }
            *x = y;
        }
    }
    let sdt = f.state;
    let mut m_run = vec![f32::NEG_INFINITY; t];
    let mut l_run = vec![0.0f32; t];
    let mut o_run = vec![0.0f32; t * hd];
    let mut first = true;
    for c0 in (0..s).step_by(K_CHUNK) {
        let kc = K_CHUNK.min(s - c0);
        let mut p = vec![0.0f32; t * kc];
        let mut alpha = vec![1.0f32; t];
        for i in 0..t {
            let row = &sc[i * s + c0..i * s + c0 + kc];
            let m_new = row.iter().copied().fold(m_run[i], f32::max);
            for (pj, &x) in p[i * kc..(i + 1) * kc].iter_mut().zip(row) {
                *pj = if m_new == f32::NEG_INFINITY {
                    0.0
                } else {
                    let z = bf16_device(fpu_add(x, DType::Bf16, -m_new, DType::Bf16, f.dst));
                    bf16_device(f.sfpu.exp(z))
                };
            }
            if !first {
                let z = bf16_device(fpu_add(m_run[i], DType::Bf16, -m_new, DType::Bf16, f.dst));
                alpha[i] = bf16_device(f.sfpu.exp(z));
            }
            m_run[i] = m_new;
        }
        let rowsum = reduce_rows(&p, DType::Bf16, kc, 1.0, f.fidelity, f.dst);
        // V chunk as the SrcA operand: one row per output column (head dim).
        let mut vt = vec![0.0f32; hd * kc];
        for (jj, key) in (c0..c0 + kc).enumerate() {
            for d in 0..hd {
                vt[d * kc + jj] = v[key * hd + d];
            }
        }
        let e_pv = Engine::new(
            f.fidelity,
            f.dst == Dst::Fp32,
            false,
            kc,
            DType::Bf16,
            false,
        );
        let pv = matmul::matmul(&p, DType::Bf16, &vt, vdt, t, kc, hd, &e_pv, 1);
        for i in 0..t {
            if first {
                l_run[i] = f.dst.store(rowsum[i]);
            } else {
                let al = fpu_mul(alpha[i], DType::Bf16, l_run[i], sdt, f.fidelity, f.dst);
                l_run[i] = f.dst.add(al, rowsum[i]);
            }
            for d in 0..hd {
                let o = &mut o_run[i * hd + d];
                *o = if first {
                    f.dst.store(pv[i * hd + d])
                } else {
                    let ao = fpu_mul(alpha[i], DType::Bf16, *o, sdt, f.fidelity, f.dst);
                    f.dst.add(ao, pv[i * hd + d])
                };
            }
        }
        first = false;
    }
    for i in 0..t {
        let r = f.sfpu.recip(l_run[i]);
        for o in &mut o_run[i * hd..(i + 1) * hd] {
            *o = fpu_mul(*o, sdt, r, sdt, f.fidelity, f.dst);
        }
    }
    o_run
}

/// One (batch, head) as `ttnn.matmul` → `ttnn.transformer.attention_softmax` →
/// `ttnn.matmul`: Q·Kᵀ packed to bf16; x·scale + mask; softmax without max subtraction
/// (`attention_softmax` hard-codes `numeric_stable = false`, TT_NUMERICS §4.7) at the
/// softmax defaults (HiFi4, approximate exp unless the profile says otherwise); P in bf16;
/// P·V. A fully masked row sums to 0; 1/0 = ∞ and the FPU's 0·∞ = 0 give a zero output row.
fn composed_head(h: &Head<'_>, f: Flash) -> Vec<f32> {
    let Head {
        q,
        k,
        v,
        dts,
        t,
        s,
        hd,
        scale,
        mask,
        mdt,
    } = *h;
    let [qdt, kdt, vdt] = dts;
    let fp32 = f.dst == Dst::Fp32;
    let e_qk = Engine::new(f.fidelity, fp32, true, hd, DType::Bf16, false);
    let mut sc = matmul::matmul(q, qdt, k, kdt, t, hd, s, &e_qk, 1);
    let scale_b = bf16_rne(scale);
    for (i, row) in sc.chunks_mut(s).enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            let mut y = bf16_device(f.dst.store(bf16_device(*x) * scale_b));
            if let Some(m) = mask {
                y = bf16_device(fpu_add(y, DType::Bf16, m(i, j), mdt, f.dst));
            }
            *x = y;
        }
    }
    let mut p = softmax(&sc, s, f.sfpu, MathFidelity::HiFi4, false);
    p.iter_mut().for_each(|x| *x = bf16_device(*x));
    let mut vt = vec![0.0f32; hd * s];
    for key in 0..s {
        for d in 0..hd {
            vt[d * s + key] = v[key * hd + d];
        }
    }
    let e_pv = Engine::new(f.fidelity, fp32, true, s, DType::Bf16, false);
    matmul::matmul(&p, DType::Bf16, &vt, vdt, t, s, hd, &e_pv, 1)
}

/// Scaled dot-product attention, heads packed head-major on the last axis. Defaults
/// (TT-NN's SDPA compute config): HiFi2, approximate exp, BF16 Dst; `sdpa_kernel =
/// "matmul_softmax"` runs the composition of [`composed_head`] instead of the flash kernel.
///
/// # Shapes
/// q [B, T, Hq·hd], k [B, S, Hkv·hd], v [B, S, Hkv·hd], mask broadcastable to [B, Hq, T, S]
/// → [B, T, Hq·hd].
pub(super) fn sdpa(
    cx: &Ctx<'_>,
    [q, k, v]: [&Tensor; 3],
    mask: Option<&Tensor>,
    heads: Heads,
    scale: f32,
) -> Result<(Tensor, Value), OpError> {
    let Heads {
        q: hq,
        kv: hkv,
        dim: hd,
    } = heads;
    if hq == 0 || hkv == 0 || hd == 0 || hq % hkv != 0 {
        return Err(OpError::invalid(
            cx.kind(),
            format!(
                "q_heads {hq} must be a non-zero multiple of kv_heads {hkv}; head_dim {hd} > 0"
            ),
        ));
    }
    let &[b, t, wq] = q.shape() else {
        return Err(OpError::invalid(
            cx.kind(),
            format!("q must have rank 3, got shape {}", shape_string(q.shape())),
        ));
    };
    let s = k.shape().get(1).copied().unwrap_or(0);
    if wq != hq * hd || k.shape() != [b, s, hkv * hd] || v.shape() != k.shape() {
        return Err(OpError::invalid(
            cx.kind(),
            format!(
                "q {}, k {}, v {} do not fit q [B, T, {hq}·{hd}], k/v [B, S, {hkv}·{hd}]",
                shape_string(q.shape()),
                shape_string(k.shape()),
                shape_string(v.shape())
            ),
        ));
    }
    let strides = mask
        .map(|m| mask_strides(cx, m, [b, hq, t, s]))
        .transpose()?;
    let out_dt = cx.out_dtype(q.meta.dtype);
    if !cx.tensix() {
        let inputs: Vec<&Tensor> = [q, k, v].into_iter().chain(mask).collect();
        return cx.reference(&inputs, out_dt);
    }
    let fp32 = cx.set.fp32_dest_acc_en.unwrap_or(false);
    let dst = Dst::from_fp32_acc(fp32);
    let f = Flash {
        fidelity: cx.set.math_fidelity.unwrap_or(MathFidelity::HiFi2),
        dst,
        sfpu: Sfpu {
            approx: cx.set.math_approx_mode.unwrap_or(true),
            dst,
        },
        state: if fp32 { DType::F32 } else { DType::Bf16 },
    };
    let kernel = cx.set.sdpa_kernel.unwrap_or(SdpaKernel::Flash);
    let (qd, kd, vd) = (q.as_slice(), k.as_slice(), v.as_slice());
    let md = mask.map(|m| m.as_slice());
    let mdt = mask.map_or(DType::Bf16, |m| m.meta.dtype);
    let wk = hkv * hd;
    let group = hq / hkv;
    let dts = [q.meta.dtype, k.meta.dtype, v.meta.dtype];
    let one_head = |bh: usize| -> Vec<f32> {
        let (bi, h) = (bh / hq, bh % hq);
        let g = h / group;
        let gather = |src: &[f32], rows: usize, width: usize, col: usize, base: usize| {
            let mut o = Vec::with_capacity(rows * hd);
            for r in 0..rows {
                let at = base + r * width + col;
                o.extend_from_slice(&src[at..at + hd]);
            }
            o
        };
        let qh = gather(&qd, t, wq, h * hd, bi * t * wq);
        let kh = gather(&kd, s, wk, g * hd, bi * s * wk);
        let vh = gather(&vd, s, wk, g * hd, bi * s * wk);
        let mfun = |i: usize, j: usize| -> f32 {
            match (&md, strides) {
                (Some(m), Some([sb, sh, st, ss])) => m[bi * sb + h * sh + i * st + j * ss],
                _ => 0.0,
            }
        };
        let mref: Option<&dyn Fn(usize, usize) -> f32> =
            if md.is_some() { Some(&mfun) } else { None };
        let head = Head {
            q: &qh,
            k: &kh,
            v: &vh,
            dts,
            t,
            s,
            hd,
            scale,
            mask: mref,
            mdt,
        };
        match kernel {
            SdpaKernel::Flash => flash_head(&head, f),
            SdpaKernel::MatmulSoftmax => composed_head(&head, f),
        }
    };
    let per_head: Vec<Vec<f32>> = if b * t == 0 || s == 0 {
        vec![vec![0.0; t * hd]; b * hq]
    } else if cx.threads > 1 && b * hq > 1 {
        (0..b * hq).into_par_iter().map(one_head).collect()
    } else {
        (0..b * hq).map(one_head).collect()
    };
    let mut out = vec![0.0f32; b * t * wq];
    for (bh, o) in per_head.iter().enumerate() {
        let (bi, h) = (bh / hq, bh % hq);
        for ti in 0..t {
            let at = (bi * t + ti) * wq + h * hd;
            out[at..at + hd].copy_from_slice(&o[ti * hd..(ti + 1) * hd]);
        }
    }
    let mut detail = json!({
        "dtype": out_dt.as_str(),
        "sdpa_kernel": kernel.as_str(),
        "math_fidelity": f.fidelity.as_str(),
        "fp32_dest_acc_en": fp32,
        "exp_approx_mode": f.sfpu.approx,
    });
    match kernel {
        SdpaKernel::Flash => detail["k_chunk_size"] = json!(K_CHUNK),
        SdpaKernel::MatmulSoftmax => {
            detail["softmax"] = json!("attention_softmax: HiFi4, numeric_stable = false")
        }
    }
    Ok((
        cx.output(&[b, t, wq], out, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_pads_with_minus_infinity() {
        let sfpu = Sfpu {
            approx: true,
            dst: Dst::Bf16,
        };
        // 20 logical values in a 32-wide tile row: the 12 padding slots must not count.
        let x: Vec<f32> = (0..20).map(|i| bf16_rne(i as f32 * 0.1 - 1.0)).collect();
        let y = softmax(&x, 20, sfpu, MathFidelity::HiFi4, true);
        let sum: f32 = y.iter().sum();
        assert!((sum - 1.0).abs() < 0.02, "sum {sum}");
        // Zero padding instead of −∞ would add 12·exp(0 − max) to the denominator.
        let mut padded_zero = x.clone();
        padded_zero.resize(32, 0.0);
        let z = softmax(&padded_zero, 32, sfpu, MathFidelity::HiFi4, true);
        assert!(z[0] < y[0] * 0.9, "{} vs {}", z[0], y[0]);
        // Approximate exp: within a few percent of the exact softmax.
        let m = x.iter().copied().fold(f32::MIN, f32::max);
        let exact: Vec<f64> = x.iter().map(|&v| ((v - m) as f64).exp()).collect();
        let total: f64 = exact.iter().sum();
        for (a, e) in y.iter().zip(&exact) {
            assert!((*a as f64 / (e / total) - 1.0).abs() < 0.07);
        }
        // Without max subtraction the result is the same here (small logits).
        let u = softmax(&x, 20, sfpu, MathFidelity::HiFi4, false);
        assert!((u.iter().sum::<f32>() - 1.0).abs() < 0.03);
    }
}
