//! `linear` and `conv2d_patch` (im2col + GEMM).

use super::gemm::{matmul, MatMut, MatRef};
use super::{alloc, expect_rank, output, rank_error};
use crate::backend::{OpError, OpKind};
use crate::tensor::{shape_string, Tensor};

/// y = x Wᵀ (+ b).
///
/// # Shapes
/// x [.., in], weight [out, in], bias [out] → [.., out].
pub(super) fn linear(
    kind: &OpKind,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    threads: usize,
) -> Result<Tensor, OpError> {
    let xs = x.shape();
    let Some((&k, lead)) = xs.split_last() else {
        return Err(OpError::invalid(kind, "x must have rank ≥ 1, got a scalar"));
    };
    expect_rank(kind, "weight", w, 2)?;
    let (n, wk) = (w.shape()[0], w.shape()[1]);
    if wk != k {
        return Err(OpError::invalid(
            kind,
            format!(
                "x {} and weight {} disagree on the input width ({k} vs {wk})",
                shape_string(xs),
                shape_string(w.shape())
            ),
        ));
    }
    let m: usize = lead.iter().product();
    let mut out = bias_rows(kind, b, m, n)?;
    let xd = x.as_slice();
    let wd = w.as_slice();
    matmul(
        MatMut::row_major(&mut out, m, n),
        MatRef::row_major(&xd, m, k),
        MatRef::row_major(&wd, n, k).t(),
        b.is_some(),
        threads,
    )
    .map_err(|e| OpError::invalid(kind, e))?;
    let mut shape = lead.to_vec();
    shape.push(n);
    output(kind, &shape, out)
}

/// `m` rows each holding the bias (or zeros without one).
fn bias_rows(kind: &OpKind, b: Option<&Tensor>, m: usize, n: usize) -> Result<Vec<f32>, OpError> {
    let Some(b) = b else {
        return alloc(kind, &[m, n], 0.0);
    };
    if b.shape() != [n] {
        return Err(OpError::invalid(
            kind,
            format!(
                "bias must have shape [{n}], got {}",
                shape_string(b.shape())
            ),
        ));
    }
    let bd = b.as_slice();
    let mut out = alloc(kind, &[m, n], 0.0)?;
    if n > 0 {
        for row in out.chunks_exact_mut(n) {
            row.copy_from_slice(&bd);
        }
    }
    Ok(out)
}

/// The im2col matrix of a patch convolution: one row per patch (row-major over the patch
/// grid of each image), `C·p·p` columns in the weight's (channel, row, column) order.
pub(crate) struct Patches {
    pub cols: Vec<f32>,
    pub rows: usize,
    /// Columns per row, `C·p·p`.
    pub kk: usize,
    /// Output channels `D` of the weight.
    pub d: usize,
    /// The op's output shape `[N, Hp·Wp, D]`.
    pub out_shape: Vec<usize>,
}

/// Checks a patch convolution's shapes and unfolds the images (exact).
///
/// # Shapes
/// images [N, C, H, W], weight [D, C, p, p] → [N·(H/p)·(W/p), C·p·p] (floor division:
/// trailing rows/columns that do not fill a patch are ignored, like torch's "valid" padding).
pub(crate) fn patches(
    kind: &OpKind,
    patch: usize,
    images: &Tensor,
    w: &Tensor,
) -> Result<Patches, OpError> {
    let &[nb, c, h, wd] = images.shape() else {
        return Err(rank_error(kind, "images", images, 4));
    };
    let &[d, wc, kh, kw] = w.shape() else {
        return Err(rank_error(kind, "weight", w, 4));
    };
    if patch == 0 || kh != patch || kw != patch || wc != c {
        return Err(OpError::invalid(
            kind,
            format!(
                "weight {} must be [D, {c}, {patch}, {patch}] for images {} and patch {patch}",
                shape_string(w.shape()),
                shape_string(images.shape())
            ),
        ));
    }
    let (hp, wp) = (h / patch, wd / patch);
    if hp == 0 || wp == 0 {
        return Err(OpError::invalid(
            kind,
            format!(
                "images {} are smaller than one {patch}×{patch} patch",
                shape_string(images.shape())
            ),
        ));
    }
    let kk = c * patch * patch;
    let rows = nb * hp * wp;
    let src = images.as_slice();
    let mut cols = vec![0.0f32; rows * kk];
    for (r, dst) in cols.chunks_exact_mut(kk.max(1)).enumerate() {
        let (img, py, px) = (r / (hp * wp), (r / wp) % hp, r % wp);
        for ch in 0..c {
            for ky in 0..patch {
                let y = py * patch + ky;
                let s = ((img * c + ch) * h + y) * wd + px * patch;
                let o = (ch * patch + ky) * patch;
                dst[o..o + patch].copy_from_slice(&src[s..s + patch]);
            }
        }
    }
    Ok(Patches {
        cols,
        rows,
        kk,
        d,
        out_shape: vec![nb, hp * wp, d],
    })
}

/// Valid convolution with stride = kernel = `patch`, flattened row-major over the patch grid.
///
/// # Shapes
/// images [N, C, H, W], weight [D, C, p, p], bias [D] → [N, (H/p)·(W/p), D] (see [`patches`]).
pub(super) fn conv2d_patch(
    kind: &OpKind,
    patch: usize,
    images: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    threads: usize,
) -> Result<Tensor, OpError> {
    let p = patches(kind, patch, images, w)?;
    let mut out = bias_rows(kind, b, p.rows, p.d)?;
    let wdat = w.as_slice();
    matmul(
        MatMut::row_major(&mut out, p.rows, p.d),
        MatRef::row_major(&p.cols, p.rows, p.kk),
        MatRef::row_major(&wdat, p.d, p.kk).t(),
        b.is_some(),
        threads,
    )
    .map_err(|e| OpError::invalid(kind, e))?;
    output(kind, &p.out_shape, out)
}
