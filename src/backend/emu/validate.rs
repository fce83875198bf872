//! TT-NN's own validation, as op errors in TT-NN's text format (TTNN_CPP_API §2):
//! `TT_FATAL @ <file>:<line>: <condition>` / `info:` / the message. The emulator names the
//! tt-metal file whose `validate` raises the error and line 0 (the line is not known).

use crate::backend::OpError;
use crate::tensor::{shape_string, DType, Layout, Tensor};

use super::format;

const MATMUL: &str = "ttnn/cpp/ttnn/operations/matmul/device/matmul_device_operation.cpp";
const BINARY_NG: &str =
    "ttnn/cpp/ttnn/operations/eltwise/binary_ng/device/binary_ng_device_operation.cpp";
const TENSOR: &str = "ttnn/cpp/ttnn-nanobind/pytensor.cpp";
const EMBEDDING: &str = "ttnn/cpp/ttnn/operations/embedding/device/embedding_device_operation.cpp";

/// A `TT_FATAL` failure.
pub(crate) fn fatal(file: &str, condition: &str, message: impl AsRef<str>) -> OpError {
    OpError::Device {
        message: format!(
            "TT_FATAL @ {file}:0: {condition}\ninfo:\n{}",
            message.as_ref()
        ),
    }
}

/// A `TT_THROW` failure.
pub(crate) fn throw(file: &str, message: impl AsRef<str>) -> OpError {
    OpError::Device {
        message: format!(
            "TT_THROW @ {file}:0: tt::exception\ninfo:\n{}",
            message.as_ref()
        ),
    }
}

/// "Layout must be Layout::TILE for bfloat8_b or bfloat4_b!" (TT_NUMERICS §2.3).
pub(crate) fn storage(dtype: DType, layout: Layout) -> Result<(), OpError> {
    if format::layout_allows(dtype, layout) {
        Ok(())
    } else {
        Err(fatal(
            TENSOR,
            "layout == Layout::TILE",
            format!(
                "Layout must be Layout::TILE for bfloat8_b or bfloat4_b! (got {} in {})",
                dtype.tt_name(),
                layout.tt_name()
            ),
        ))
    }
}

/// Matmul/linear operands: both tilized, inner dimensions equal (TT_NUMERICS §2.3; the
/// matmul device op's `validate`). `k_b` is the height of the second operand (the weight's
/// input width for `linear`, which passes it transposed).
pub(crate) fn matmul(a: &Tensor, b: &Tensor, k_b: usize, padded_k_b: usize) -> Result<(), OpError> {
    if a.meta.layout != Layout::Tile || b.meta.layout != Layout::Tile {
        return Err(fatal(
            MATMUL,
            "input_tensor_a.layout() == Layout::TILE && input_tensor_b.layout() == Layout::TILE",
            format!(
                "Inputs to matmul must be tilized (got {} and {})",
                a.meta.layout.tt_name(),
                b.meta.layout.tt_name()
            ),
        ));
    }
    let k_a = a.shape().last().copied().unwrap_or(1);
    if k_a != k_b {
        return Err(fatal(
            MATMUL,
            "a_shape[-1] == b_shape[-2]",
            format!(
                "The width of the first tensor must be equal to the height of the second tensor. Mismatch: width={k_a} height={k_b} (shapes {} and {})",
                shape_string(a.shape()),
                shape_string(b.shape())
            ),
        ));
    }
    let pk_a = a.meta.padded_shape.last().copied().unwrap_or(1);
    if pk_a != padded_k_b || pk_a % format::TILE != 0 {
        return Err(fatal(
            MATMUL,
            "a_shape_padded[-1] == b_shape_padded[-2] && a_shape_padded[-1] % TILE_WIDTH == 0",
            format!(
                "Inner dimension of the padded shapes must match and be tile aligned: {pk_a} vs {padded_k_b}"
            ),
        ));
    }
    Ok(())
}

/// `binary_ng` broadcasting: outer dims equal or 1; the last two dims must form one of the
/// subtile broadcast types (none, scalar, row, column, row × column) or TT throws "Invalid
/// subtile broadcast type" (TTNN_CPP_API §1.7). Returns the output shape.
pub(crate) fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, OpError> {
    let r = a.len().max(b.len()).max(2);
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    let compatible = |x: usize, y: usize| x == y || x == 1 || y == 1;
    let (ah, aw, bh, bw) = (dim(a, r - 2), dim(a, r - 1), dim(b, r - 2), dim(b, r - 1));
    if !(compatible(ah, bh) && compatible(aw, bw)) {
        return Err(throw(
            BINARY_NG,
            format!(
                "Invalid subtile broadcast type (a {} and b {}: last two dims [{ah}, {aw}] and [{bh}, {bw}])",
                shape_string(a),
                shape_string(b)
            ),
        ));
    }
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let (x, y) = (dim(a, i), dim(b, i));
        if !compatible(x, y) {
            return Err(fatal(
                BINARY_NG,
                "a_dim == b_dim || a_dim == 1 || b_dim == 1",
                format!(
                    "Broadcasting rule violation for rank {r}, dim {i}: a {} vs b {}",
                    shape_string(a),
                    shape_string(b)
                ),
            ));
        }
        out.push(x.max(y));
    }
    // Rank-1 operands were viewed as [1, n]; keep the NumPy rank.
    let rank = a.len().max(b.len());
    Ok(out[out.len() - rank..].to_vec())
}

/// Embedding table: ROW_MAJOR BFLOAT16 (TTNN_CPP_API §1.7).
pub(crate) fn embedding_table(t: &Tensor, tensix: bool) -> Result<(), OpError> {
    if t.meta.layout != Layout::RowMajor || (tensix && t.meta.dtype != DType::Bf16) {
        return Err(fatal(
            EMBEDDING,
            "weights.layout() == Layout::ROW_MAJOR && weights.dtype() == DataType::BFLOAT16",
            format!(
                "Embedding weights must be ROW_MAJOR BFLOAT16 (got {} in {})",
                t.meta.dtype.tt_name(),
                t.meta.layout.tt_name()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtile_broadcast_types() {
        assert_eq!(broadcast(&[2, 25, 32], &[25, 32]).unwrap(), vec![2, 25, 32]);
        assert_eq!(broadcast(&[1, 4, 8], &[1, 1, 8]).unwrap(), vec![1, 4, 8]);
        assert_eq!(broadcast(&[4, 1], &[1, 8]).unwrap(), vec![4, 8]);
        assert_eq!(broadcast(&[5], &[3, 5]).unwrap(), vec![3, 5]);
        let e = broadcast(&[4, 3], &[2, 3]).unwrap_err().to_string();
        assert!(
            e.starts_with("TT_THROW @ ") && e.contains("Invalid subtile broadcast type"),
            "{e}"
        );
        let e = broadcast(&[2, 4, 3], &[3, 4, 3]).unwrap_err().to_string();
        assert!(
            e.starts_with("TT_FATAL @ ") && e.contains("Broadcasting"),
            "{e}"
        );
    }

    #[test]
    fn fatal_format() {
        let e = storage(DType::Bfloat8B, Layout::RowMajor)
            .unwrap_err()
            .to_string();
        let mut lines = e.lines();
        assert!(lines.next().unwrap().starts_with("TT_FATAL @ ttnn/"));
        assert_eq!(lines.next(), Some("info:"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("Layout must be Layout::TILE for bfloat8_b or bfloat4_b!"));
        assert!(storage(DType::Bf16, Layout::RowMajor).is_ok());
    }
}
