//! Safe, bounds-checked wrapper over the `gemm` crate's f32 kernel.
//!
//! The `gemm` crate (with its `x86-v4` AVX-512 kernels, picked at run time) measured 1.45× the
//! throughput of ndarray's matrixmultiply at the SigLIP MLP shape; see `bench/README.md`.

/// Below this many multiply-adds a product runs on one thread (spawn cost dominates).
pub(crate) const PARALLEL_MIN_MACS: usize = 1 << 20;

/// A strided read-only f32 matrix: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose view (no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn in_bounds(&self) -> bool {
        span(self.rows, self.cols, self.rs, self.cs).is_some_and(|s| s <= self.data.len())
    }
}

/// A row-major output matrix with row stride `rs ≥ cols` (rows never overlap).
pub(crate) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
}

impl<'a> MatMut<'a> {
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        MatMut {
            data,
            rows,
            cols,
            rs: cols,
        }
    }
}

/// One past the largest offset a view touches; `None` on overflow. 0 for an empty view.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)
}

fn isize_of(v: usize) -> Option<isize> {
    isize::try_from(v).ok()
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; f32 accumulation.
///
/// Uses `threads` rayon workers when the product has at least [`PARALLEL_MIN_MACS`]
/// multiply-adds. Returns an error text when the dimensions disagree or a view does not fit
/// in its buffer (the caller turns it into an `OpError`).
pub(crate) fn matmul(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    threads: usize,
) -> Result<(), String> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k || dst.rows != m || dst.cols != n {
        return Err(format!(
            "matmul dims disagree: [{m}×{k}]·[{}×{n}] → [{}×{}]",
            rhs.rows, dst.rows, dst.cols
        ));
    }
    if !lhs.in_bounds() || !rhs.in_bounds() {
        return Err("matmul operand view exceeds its buffer".into());
    }
    if dst.rs < n || span(m, n, dst.rs, 1).is_none_or(|s| s > dst.data.len()) {
        return Err("matmul output view exceeds its buffer".into());
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for row in dst.data.chunks_mut(dst.rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return Ok(());
    }
    let strides = [lhs.rs, lhs.cs, rhs.rs, rhs.cs, dst.rs];
    let Some(&[l_rs, l_cs, r_rs, r_cs, d_rs]) = strides
        .iter()
        .map(|&s| isize_of(s))
        .collect::<Option<Vec<_>>>()
        .as_deref()
    else {
        return Err("matmul stride overflows isize".into());
    };
    let macs = m.saturating_mul(n).saturating_mul(k);
    let parallelism = if threads > 1 && macs >= PARALLEL_MIN_MACS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every element the kernel reads lies inside `lhs.data` / `rhs.data` and every
    // element it writes inside `dst.data` (checked by `in_bounds` / `span` above, with all
    // strides non-negative); `dst` rows are disjoint because `dst.rs >= n`; `dst` is a unique
    // borrow, so it aliases neither operand. With `read_dst` the kernel computes
    // dst = 1·dst + 1·lhs·rhs, otherwise dst = lhs·rhs (dst is never read).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            d_rs,
            accumulate,
            lhs.data.as_ptr(),
            l_cs,
            l_rs,
            rhs.data.as_ptr(),
            r_cs,
            r_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum();
            }
        }
        out
    }

    #[test]
    fn matches_naive_with_transposed_rhs_and_accumulate() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut b = vec![0.0f32; k * n];
        for p in 0..k {
            for j in 0..n {
                b[p * n + j] = bt[j * k + p];
            }
        }
        let want = naive(&a, &b, m, k, n);
        let mut out = vec![1.0f32; m * n];
        matmul(
            MatMut::row_major(&mut out, m, n),
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&bt, n, k).t(),
            true,
            2,
        )
        .unwrap();
        for (g, w) in out.iter().zip(&want) {
            assert!((*g as f64 - (w + 1.0)).abs() < 1e-5, "{g} vs {}", w + 1.0);
        }
    }

    #[test]
    fn rejects_views_outside_buffers() {
        let a = [0.0f32; 5];
        let mut out = [0.0f32; 4];
        let err = matmul(
            MatMut::row_major(&mut out, 2, 2),
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&a, 3, 2),
            false,
            1,
        );
        assert!(err.is_err());
    }

    #[test]
    fn k_zero_gives_zeros() {
        let mut out = [7.0f32; 4];
        matmul(
            MatMut::row_major(&mut out, 2, 2),
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 2),
            false,
            1,
        )
        .unwrap();
        assert_eq!(out, [0.0; 4]);
    }
}
