//! Data movement: `embedding`, `concat`, `slice`, `reshape`, `expand`, `repeat_interleave`,
//! `full`. All exact.

use ndarray::IxDyn;

use super::{alloc, expect_rank, numel, output};
use crate::backend::{OpError, OpKind};
use crate::tensor::{shape_string, Tensor};

fn dim_error(kind: &OpKind, dim: usize, shape: &[usize]) -> OpError {
    OpError::invalid(
        kind,
        format!(
            "dim {dim} is out of range for shape {} (rank {})",
            shape_string(shape),
            shape.len()
        ),
    )
}

/// (outer, size of `dim`, inner) element counts around axis `dim`.
fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

/// Rows of `table` picked by integral ids.
///
/// # Shapes
/// ids [..] (f32 holding integers), table [vocab, D] → [.., D].
pub(super) fn embedding(kind: &OpKind, ids: &Tensor, table: &Tensor) -> Result<Tensor, OpError> {
    expect_rank(kind, "table", table, 2)?;
    let (vocab, d) = (table.shape()[0], table.shape()[1]);
    let t = table.as_slice();
    let idv = ids.as_slice();
    let mut out = Vec::with_capacity(idv.len() * d);
    for (i, &id) in idv.iter().enumerate() {
        if !(id >= 0.0 && id.fract() == 0.0 && (id as f64) < vocab as f64) {
            return Err(OpError::invalid(
                kind,
                format!(
                    "id {id} (element {i} of ids {}) is not a row of the {vocab}-row table {}",
                    shape_string(ids.shape()),
                    shape_string(table.shape())
                ),
            ));
        }
        let row = id as usize;
        out.extend_from_slice(&t[row * d..(row + 1) * d]);
    }
    let mut shape = ids.shape().to_vec();
    shape.push(d);
    output(kind, &shape, out)
}

/// Concatenation along `dim`.
///
/// # Shapes
/// inputs of equal rank that agree on every axis but `dim` → sum of their `dim` sizes there.
pub(super) fn concat(kind: &OpKind, inputs: &[&Tensor], dim: usize) -> Result<Tensor, OpError> {
    let first = inputs[0].shape();
    if dim >= first.len() {
        return Err(dim_error(kind, dim, first));
    }
    let mut total = 0usize;
    for t in inputs {
        let s = t.shape();
        let agree = s.len() == first.len()
            && s.iter()
                .zip(first)
                .enumerate()
                .all(|(i, (a, b))| i == dim || a == b);
        if !agree {
            let all: Vec<String> = inputs.iter().map(|t| shape_string(t.shape())).collect();
            return Err(OpError::invalid(
                kind,
                format!("shapes {} do not agree off dim {dim}", all.join(", ")),
            ));
        }
        total += s[dim];
    }
    let mut shape = first.to_vec();
    shape[dim] = total;
    let (outer, _, inner) = split_at_dim(&shape, dim);
    let datas: Vec<_> = inputs.iter().map(|t| t.as_slice()).collect();
    let mut out = Vec::with_capacity(outer * total * inner);
    for o in 0..outer {
        for (t, data) in inputs.iter().zip(&datas) {
            let chunk = t.shape()[dim] * inner;
            out.extend_from_slice(&data[o * chunk..(o + 1) * chunk]);
        }
    }
    output(kind, &shape, out)
}

/// Elements `start..end` of axis `dim`.
///
/// # Shapes
/// x [.., n, ..] → [.., end − start, ..].
pub(super) fn slice(
    kind: &OpKind,
    x: &Tensor,
    dim: usize,
    start: usize,
    end: usize,
) -> Result<Tensor, OpError> {
    let s = x.shape();
    if dim >= s.len() {
        return Err(dim_error(kind, dim, s));
    }
    if start > end || end > s[dim] {
        return Err(OpError::invalid(
            kind,
            format!(
                "range {start}..{end} is not within dim {dim} of shape {}",
                shape_string(s)
            ),
        ));
    }
    let (outer, n, inner) = split_at_dim(s, dim);
    let data = x.as_slice();
    let mut out = Vec::with_capacity(outer * (end - start) * inner);
    for o in 0..outer {
        let base = o * n * inner;
        out.extend_from_slice(&data[base + start * inner..base + end * inner]);
    }
    let mut shape = s.to_vec();
    shape[dim] = end - start;
    output(kind, &shape, out)
}

/// Same data, new shape (row-major order kept).
pub(super) fn reshape(kind: &OpKind, x: &Tensor, shape: &[usize]) -> Result<Tensor, OpError> {
    if numel(shape) != Some(x.len()) {
        return Err(OpError::invalid(
            kind,
            format!(
                "cannot reshape {} ({} elements) to {}",
                shape_string(x.shape()),
                x.len(),
                shape_string(shape)
            ),
        ));
    }
    output(kind, shape, x.as_slice().into_owned())
}

/// NumPy broadcast of x to `shape` (trailing axes aligned; size-1 axes stretch; leading axes
/// may be added).
pub(super) fn expand(kind: &OpKind, x: &Tensor, shape: &[usize]) -> Result<Tensor, OpError> {
    let view = x.array().broadcast(IxDyn(shape)).ok_or_else(|| {
        OpError::invalid(
            kind,
            format!(
                "cannot expand {} to {}",
                shape_string(x.shape()),
                shape_string(shape)
            ),
        )
    })?;
    let mut out = alloc(kind, shape, 0.0)?;
    for (o, &v) in out.iter_mut().zip(view.iter()) {
        *o = v;
    }
    output(kind, shape, out)
}

/// Each element of axis `dim` repeated `repeats` times in place (torch `repeat_interleave`).
///
/// # Shapes
/// x [.., n, ..] → [.., n·repeats, ..].
pub(super) fn repeat_interleave(
    kind: &OpKind,
    x: &Tensor,
    dim: usize,
    repeats: usize,
) -> Result<Tensor, OpError> {
    let s = x.shape();
    if dim >= s.len() {
        return Err(dim_error(kind, dim, s));
    }
    let mut shape = s.to_vec();
    shape[dim] = s[dim].checked_mul(repeats).ok_or_else(|| {
        OpError::invalid(
            kind,
            format!("{repeats} repeats of {} overflow", shape_string(s)),
        )
    })?;
    let mut out = alloc(kind, &shape, 0.0)?;
    out.clear();
    let (outer, n, inner) = split_at_dim(s, dim);
    let data = x.as_slice();
    for o in 0..outer {
        for i in 0..n {
            let chunk = &data[(o * n + i) * inner..][..inner];
            for _ in 0..repeats {
                out.extend_from_slice(chunk);
            }
        }
    }
    output(kind, &shape, out)
}

/// A tensor of `shape` filled with `value`.
pub(super) fn full(kind: &OpKind, shape: &[usize], value: f32) -> Result<Tensor, OpError> {
    let out = alloc(kind, shape, value)?;
    output(kind, shape, out)
}
