//! Attention and its inputs: `rope`, `sdpa`, `attn_mask_2d`, `positions`, `time_embed`.

use rayon::prelude::*;

use super::gemm::{matmul, MatMut, MatRef};
use super::{alloc, expect_rank, output, rank_error};
use crate::backend::{OpError, OpKind};
use crate::tensor::{shape_string, Tensor};

/// Half-split rotary embedding of every head on the packed last axis.
///
/// inv_freq_j = θ^(−2j/hd) and angle = pos·inv_freq_j are computed in f64 and cos/sin rounded
/// to f32 (as the golden producer's `rope_tables`); the rotation
/// x'_j = x_j·cos − x_{j+hd/2}·sin, x'_{j+hd/2} = x_{j+hd/2}·cos + x_j·sin is f32.
///
/// # Shapes
/// x [B, T, H·hd], positions [B, T] (or [1, T], shared by the batch) → [B, T, H·hd].
pub(super) fn rope(
    kind: &OpKind,
    x: &Tensor,
    pos: &Tensor,
    theta: f32,
    head_dim: usize,
) -> Result<Tensor, OpError> {
    let &[b, t, w] = x.shape() else {
        return Err(rank_error(kind, "x", x, 3));
    };
    if head_dim == 0 || !head_dim.is_multiple_of(2) || w % head_dim != 0 {
        return Err(OpError::invalid(
            kind,
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
                kind,
                format!(
                    "positions {} must be [{b}, {t}] (or [1, {t}]) for x {}",
                    shape_string(pos.shape()),
                    shape_string(x.shape())
                ),
            ))
        }
    };
    let half = head_dim / 2;
    let theta = theta as f64;
    let inv_freq: Vec<f64> = (0..half)
        .map(|j| theta.powf(-2.0 * j as f64 / head_dim as f64))
        .collect();
    let xs = x.as_slice();
    let ps = pos.as_slice();
    let mut out = vec![0.0f32; xs.len()];
    let (mut cos, mut sin) = (vec![0.0f32; half], vec![0.0f32; half]);
    for bi in 0..b {
        for ti in 0..t {
            let p = ps[if pb == 1 { ti } else { bi * t + ti }] as f64;
            for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&inv_freq) {
                let a = p * f;
                *c = a.cos() as f32;
                *s = a.sin() as f32;
            }
            let base = (bi * t + ti) * w;
            let src = &xs[base..base + w];
            let dst = &mut out[base..base + w];
            for (hs, hd) in src
                .chunks_exact(head_dim)
                .zip(dst.chunks_exact_mut(head_dim))
            {
                let (x1, x2) = hs.split_at(half);
                let (y1, y2) = hd.split_at_mut(half);
                for j in 0..half {
                    y1[j] = x1[j] * cos[j] - x2[j] * sin[j];
                    y2[j] = x2[j] * cos[j] + x1[j] * sin[j];
                }
            }
        }
    }
    output(kind, x.shape(), out)
}

/// Head layout of an attention op.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heads {
    pub q: usize,
    pub kv: usize,
    pub dim: usize,
}

/// Additive mask broadcast to [B, Hq, T, S]: element strides per axis (0 where broadcast).
struct MaskView<'a> {
    data: std::borrow::Cow<'a, [f32]>,
    strides: [usize; 4],
}

fn mask_view<'a>(
    kind: &OpKind,
    mask: &'a Tensor,
    target: [usize; 4],
) -> Result<MaskView<'a>, OpError> {
    let s = mask.shape();
    let bad = || {
        OpError::invalid(
            kind,
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
    Ok(MaskView {
        data: mask.as_slice(),
        strides,
    })
}

/// Scaled dot-product attention, heads packed head-major on the last axis.
///
/// Per (batch, query head h) with kv head g = h / (Hq/Hkv): S = (Q Kᵀ)·scale (+ mask), both
/// f32 as torch; softmax with max subtraction, exp in f32, sum and normalisation in f64;
/// O = P V (f32 GEMM). (b, h) pairs run in parallel when `threads > 1`.
///
/// # Shapes
/// q [B, T, Hq·hd], k [B, S, Hkv·hd], v [B, S, Hkv·hd], mask broadcastable to [B, Hq, T, S]
/// (typically [B, 1, T, S], [1, 1, T, S] or [T, S]) → [B, T, Hq·hd].
#[allow(clippy::too_many_arguments)]
pub(super) fn sdpa(
    kind: &OpKind,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    heads: Heads,
    scale: f32,
    threads: usize,
) -> Result<Tensor, OpError> {
    let Heads {
        q: hq,
        kv: hkv,
        dim: hd,
    } = heads;
    if hq == 0 || hkv == 0 || hd == 0 || hq % hkv != 0 {
        return Err(OpError::invalid(
            kind,
            format!(
                "q_heads {hq} must be a non-zero multiple of kv_heads {hkv}; head_dim {hd} > 0"
            ),
        ));
    }
    let &[b, t, wq] = q.shape() else {
        return Err(rank_error(kind, "q", q, 3));
    };
    expect_rank(kind, "k", k, 3)?;
    let (s, wk) = (k.shape()[1], k.shape()[2]);
    if wq != hq * hd || k.shape() != [b, s, hkv * hd] || v.shape() != k.shape() {
        return Err(OpError::invalid(
            kind,
            format!(
                "q {}, k {}, v {} do not fit q [B, T, {hq}·{hd}], k/v [B, S, {hkv}·{hd}]",
                shape_string(q.shape()),
                shape_string(k.shape()),
                shape_string(v.shape())
            ),
        ));
    }
    let mask = mask
        .map(|m| mask_view(kind, m, [b, hq, t, s]))
        .transpose()?;
    if b * t == 0 || s == 0 {
        return output(kind, &[b, t, wq], alloc(kind, &[b, t, wq], 0.0)?);
    }
    let (qd, kd, vd) = (q.as_slice(), k.as_slice(), v.as_slice());
    let group = hq / hkv;
    let one_head = |bh: usize| -> Result<Vec<f32>, String> {
        let (bi, h) = (bh / hq, bh % hq);
        let g = h / group;
        let qo = bi * t * wq + h * hd;
        let ko = bi * s * wk + g * hd;
        let qm = MatRef {
            data: &qd[qo..],
            rows: t,
            cols: hd,
            rs: wq,
            cs: 1,
        };
        let km = MatRef {
            data: &kd[ko..],
            rows: s,
            cols: hd,
            rs: wk,
            cs: 1,
        };
        let vm = MatRef {
            data: &vd[ko..],
            ..km
        };
        let mut scores = Vec::new();
        scores
            .try_reserve_exact(t * s)
            .map_err(|_| format!("cannot allocate {t}×{s} attention scores"))?;
        scores.resize(t * s, 0.0);
        matmul(MatMut::row_major(&mut scores, t, s), qm, km.t(), false, 1)?;
        for (ti, row) in scores.chunks_exact_mut(s).enumerate() {
            for x in row.iter_mut() {
                *x *= scale;
            }
            if let Some(m) = &mask {
                let [sb, sh, st, ss] = m.strides;
                let base = bi * sb + h * sh + ti * st;
                for (si, x) in row.iter_mut().enumerate() {
                    *x += m.data[base + si * ss];
                }
            }
            softmax_row(row);
        }
        let mut o = vec![0.0f32; t * hd];
        matmul(
            MatMut::row_major(&mut o, t, hd),
            MatRef::row_major(&scores, t, s),
            vm,
            false,
            1,
        )?;
        Ok(o)
    };
    let per_head: Result<Vec<Vec<f32>>, String> = if threads > 1 && b * hq > 1 {
        (0..b * hq).into_par_iter().map(one_head).collect()
    } else {
        (0..b * hq).map(one_head).collect()
    };
    let per_head = per_head.map_err(|e| OpError::invalid(kind, e))?;
    let mut out = alloc(kind, &[b, t, wq], 0.0)?;
    for (bh, o) in per_head.iter().enumerate() {
        let (bi, h) = (bh / hq, bh % hq);
        for ti in 0..t {
            let dst = (bi * t + ti) * wq + h * hd;
            out[dst..dst + hd].copy_from_slice(&o[ti * hd..(ti + 1) * hd]);
        }
    }
    output(kind, &[b, t, wq], out)
}

/// In-place softmax of one row: max subtraction, f32 exp, f64 sum and division.
fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x as f64;
    }
    for x in row.iter_mut() {
        *x = (*x as f64 / sum) as f32;
    }
}

/// Checks pad/ar style inputs: rank 2 [B, L].
fn rows_2d(kind: &OpKind, what: &str, t: &Tensor) -> Result<(usize, usize), OpError> {
    match t.shape() {
        &[b, l] => Ok((b, l)),
        _ => Err(rank_error(kind, what, t, 2)),
    }
}

/// Block-causal additive mask from padding and autoregressive flags (PI0_SPEC §3.8).
///
/// c = cumsum(ar) (f32, per row); allowed[q, k] = c[k] ≤ c[q] ∧ pad[q] ∧ pad[k] (pad read as
/// > 0.5); output 0 where allowed, `mask_value` elsewhere.
///
/// # Shapes
/// pad [B, L], ar [B, L] → [B, 1, L, L].
pub(super) fn attn_mask_2d(
    kind: &OpKind,
    pad: &Tensor,
    ar: &Tensor,
    mask_value: f32,
) -> Result<Tensor, OpError> {
    let (b, l) = rows_2d(kind, "pad", pad)?;
    if ar.shape() != pad.shape() {
        return Err(OpError::invalid(
            kind,
            format!(
                "pad {} and ar {} must have the same [B, L] shape",
                shape_string(pad.shape()),
                shape_string(ar.shape())
            ),
        ));
    }
    let (p, a) = (pad.as_slice(), ar.as_slice());
    let mut out = alloc(kind, &[b, l, l], 0.0)?;
    let mut c = vec![0.0f32; l];
    for bi in 0..b {
        let (pr, arow) = (&p[bi * l..][..l], &a[bi * l..][..l]);
        let mut acc = 0.0f32;
        for (ci, &x) in c.iter_mut().zip(arow) {
            acc += x;
            *ci = acc;
        }
        for qi in 0..l {
            let row = &mut out[(bi * l + qi) * l..][..l];
            for (ki, o) in row.iter_mut().enumerate() {
                let allowed = c[ki] <= c[qi] && pr[qi] > 0.5 && pr[ki] > 0.5;
                *o = if allowed { 0.0 } else { mask_value };
            }
        }
    }
    output(kind, &[b, 1, l, l], out)
}

/// Position ids: cumsum(pad) − 1 per row, in f32.
///
/// # Shapes
/// pad [B, L] → [B, L].
pub(super) fn positions(kind: &OpKind, pad: &Tensor) -> Result<Tensor, OpError> {
    let (_, l) = rows_2d(kind, "pad", pad)?;
    let p = pad.as_slice();
    let mut out = Vec::with_capacity(p.len());
    if l > 0 {
        for row in p.chunks_exact(l) {
            let mut acc = 0.0f32;
            for &x in row {
                acc += x;
                out.push(acc - 1.0);
            }
        }
    }
    output(kind, pad.shape(), out)
}

/// Sinusoidal time embedding (PI0_SPEC §3.7), f64 throughout, rounded to f32 at the end.
///
/// fraction = torch.linspace(0, 1, dim/2) (reproduced exactly), period_i =
/// min·(max/min)^fraction_i, ω_i = (1/period_i)·2π, out = [sin(ω t)…, cos(ω t)…].
///
/// # Shapes
/// t [B] → [B, dim].
pub(super) fn time_embed(
    kind: &OpKind,
    t: &Tensor,
    dim: usize,
    min_period: f64,
    max_period: f64,
) -> Result<Tensor, OpError> {
    expect_rank(kind, "t", t, 1)?;
    let periods_ok = min_period > 0.0 && max_period > 0.0 && max_period.is_finite();
    if dim < 2 || !dim.is_multiple_of(2) || !periods_ok {
        return Err(OpError::invalid(
            kind,
            format!(
                "dim {dim} must be even and ≥ 2, periods ({min_period}, {max_period}) positive"
            ),
        ));
    }
    let half = dim / 2;
    let ratio = max_period / min_period;
    let two_pi = 2.0 * std::f64::consts::PI;
    let omega: Vec<f64> = linspace01(half)
        .into_iter()
        .map(|f| (1.0 / (min_period * ratio.powf(f))) * two_pi)
        .collect();
    let ts = t.as_slice();
    let mut out = alloc(kind, &[ts.len(), dim], 0.0)?;
    out.clear();
    for &tv in ts.iter() {
        let tv = tv as f64;
        out.extend(omega.iter().map(|&w| (w * tv).sin() as f32));
        out.extend(omega.iter().map(|&w| (w * tv).cos() as f32));
    }
    output(kind, &[ts.len(), dim], out)
}

/// `torch.linspace(0.0, 1.0, n, dtype=float64)`, bit for bit: the first half is
/// fma(step, i, 0), the second fma(−step, n−1−i, 1).
fn linspace01(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![0.0];
    }
    let step = 1.0 / (n - 1) as f64;
    (0..n)
        .map(|i| {
            if i < n / 2 {
                step.mul_add(i as f64, 0.0)
            } else {
                (-step).mul_add((n - 1 - i) as f64, 1.0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_torch_rounding() {
        // torch.linspace(0, 1, 16, dtype=float64)[10] == 0.6666666666666666 (10/15 rounds the
        // same); the naive 1 − 5·step gives 0.6666666666666667.
        assert_eq!(linspace01(16)[10], 0.666_666_666_666_666_6);
        let l = linspace01(512);
        assert_eq!((l[0], l[511]), (0.0, 1.0));
    }

    #[test]
    fn softmax_row_is_normalised_and_shift_invariant() {
        let mut a = [1.0f32, 2.0, 3.0];
        let mut b = [101.0f32, 102.0, 103.0];
        softmax_row(&mut a);
        softmax_row(&mut b);
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(a, b);
    }
}
