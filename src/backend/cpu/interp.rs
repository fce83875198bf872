//! `interpolate_bicubic`: torch `F.interpolate(mode="bicubic", align_corners=False)` on a
//! position table.

use super::{alloc, expect_rank, fma32, output};
use crate::backend::{OpError, OpKind};
use crate::tensor::{shape_string, Tensor};

/// Cubic-convolution coefficient (Keys, A = −0.75, as torch).
const A: f32 = -0.75;

/// Four source indices (border-clamped) and weights of one output coordinate.
struct Taps {
    idx: [usize; 4],
    w: [f32; 4],
}

/// |x| ≤ 1 branch: ((A+2)x − (A+3))·x·x + 1.
fn cubic1(x: f32) -> f32 {
    let t = fma32(A + 2.0, x, -(A + 3.0));
    t * x * x + 1.0
}

/// 1 < |x| < 2 branch: ((A·x − 5A)·x + 8A)·x − 4A.
///
/// The first two steps are fused multiply-adds and the last is not: that is what torch's
/// compiled kernel does, and it is observable because the polynomial cancels heavily.
fn cubic2(x: f32) -> f32 {
    let t = fma32(A, x, -5.0 * A);
    let t = fma32(t, x, 8.0 * A);
    t * x - 4.0 * A
}

/// Taps for every output coordinate along one axis (torch's `area_pixel_compute_source_index`
/// with cubic = true, `guard_index_and_lambda`, `get_cubic_upsample_coefficients`, all f32).
fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f32 / out_size as f32;
    let last = in_size as i64 - 1;
    (0..out_size)
        .map(|o| {
            let real = fma32(scale, o as f32 + 0.5, -0.5);
            let i0 = (real.floor() as i64).min(last);
            let lambda = (real - i0 as f32).clamp(0.0, 1.0);
            let x2 = 1.0 - lambda;
            let w = [
                cubic2(lambda + 1.0),
                cubic1(lambda),
                cubic1(x2),
                cubic2(x2 + 1.0),
            ];
            let idx = [0i64, 1, 2, 3].map(|j| (i0 - 1 + j).clamp(0, last) as usize);
            Taps { idx, w }
        })
        .collect()
}

/// Bicubic resize of a grid table.
///
/// # Shapes
/// table [in_h·in_w, D] (rows row-major over the grid) → [out_h·out_w, D].
pub(super) fn bicubic(
    kind: &OpKind,
    table: &Tensor,
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Result<Tensor, OpError> {
    expect_rank(kind, "table", table, 2)?;
    let (rows, d) = (table.shape()[0], table.shape()[1]);
    if [in_h, in_w, out_h, out_w].contains(&0) || in_h.checked_mul(in_w) != Some(rows) {
        return Err(OpError::invalid(
            kind,
            format!(
                "table {} does not hold a {in_h}×{in_w} grid (resize to {out_h}×{out_w})",
                shape_string(table.shape())
            ),
        ));
    }
    let src = table.as_slice();
    let (ty, tx) = (taps(in_h, out_h), taps(in_w, out_w));
    let mut out = alloc(kind, &[out_h, out_w, d], 0.0)?;
    let mut inner = vec![0.0f32; d];
    for (oy, ry) in ty.iter().enumerate() {
        for (ox, rx) in tx.iter().enumerate() {
            let dst = &mut out[(oy * out_w + ox) * d..][..d];
            for (a, (&iy, &wy)) in ry.idx.iter().zip(&ry.w).enumerate() {
                let row = |b: usize| &src[(iy * in_w + rx.idx[b]) * d..][..d];
                for (acc, &v) in inner.iter_mut().zip(row(0)) {
                    *acc = v * rx.w[0];
                }
                for b in 1..4 {
                    let wx = rx.w[b];
                    for (acc, &v) in inner.iter_mut().zip(row(b)) {
                        *acc = fma32(v, wx, *acc);
                    }
                }
                if a == 0 {
                    for (o, &t) in dst.iter_mut().zip(&inner) {
                        *o = t * wy;
                    }
                } else {
                    for (o, &t) in dst.iter_mut().zip(&inner) {
                        *o = fma32(t, wy, *o);
                    }
                }
            }
        }
    }
    output(kind, &[out_h * out_w, d], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_identity_is_exact() {
        for t in taps(16, 27) {
            let s: f32 = t.w.iter().sum();
            assert!((s - 1.0).abs() < 1e-6, "{:?}", t.w);
        }
        for (o, t) in taps(5, 5).iter().enumerate() {
            let want: [f32; 4] = [0.0, 1.0, 0.0, 0.0];
            assert_eq!(t.w, want);
            assert_eq!(t.idx[1], o);
        }
    }

    /// torch: F.interpolate(torch.eye(5).reshape(5,1,1,5), size=(1,9), mode="bicubic",
    /// align_corners=False) — output 5 is the one-hot response, i.e. the weights.
    #[test]
    fn weights_match_torch_bitwise() {
        let t = &taps(5, 9)[5];
        assert_eq!(t.idx, [1, 2, 3, 4]);
        assert_eq!(t.w, [-0.082304716, 0.51988995, 0.66529524, -0.10288024]);
        let t = &taps(5, 9)[3];
        assert_eq!(t.w[3], -0.08230424);
    }
}
