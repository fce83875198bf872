//! Ops whose values are exact or computed on the host: data movement (exact in the storage
//! dtype), embedding lookups, constants, masks and positions (built with torch on the host in
//! TT's pi0 port), the bicubic position-table resize (host, PI0_SPEC §4 item 7), and the
//! sinusoidal time embedding (fp32 on the device).

use serde_json::{json, Value};

use super::format::{bf16_device, Side};
use super::{validate, Ctx};
use crate::backend::{Backend, OpError, OpKind};
use crate::tensor::{DType, Layout, Tensor};

/// The output layout of a dtype: integers ROW_MAJOR, everything else TILE.
fn layout_of(dtype: DType) -> Layout {
    if dtype == DType::U32 {
        Layout::RowMajor
    } else {
        Layout::Tile
    }
}

/// Concat, slice, reshape, expand, repeat_interleave: the values move unchanged; the output
/// keeps the (first) input's dtype and is re-stored in it, which re-blocks a block-float tensor
/// whose 16-element face rows were cut or joined (the device unpacks and repacks it). Inputs
/// of another dtype are typecast to it first (TT-NN would refuse mixed dtypes; this happens when
/// an isolated module is fed a golden uploaded in the activation dtype).
pub(super) fn movement(cx: &Ctx<'_>, inputs: &[&Tensor]) -> Result<(Tensor, Value), OpError> {
    let dt = cx.out_dtype(inputs[0].meta.dtype);
    let out = cx.cpu.exec(cx.op, inputs)?;
    let mut detail = json!({ "dtype": dt.as_str(), "exact": true });
    let mixed: Vec<&str> = inputs
        .iter()
        .filter(|t| t.meta.dtype != inputs[0].meta.dtype)
        .filter_map(|t| t.origin.as_deref())
        .collect();
    if !mixed.is_empty() {
        detail["typecast_inputs"] = json!(mixed);
    }
    let t = cx.output(
        out.shape(),
        out.as_slice().into_owned(),
        dt,
        layout_of(dt),
        Side::Device,
    )?;
    Ok((t, detail))
}

/// Embedding rows (TTNN_CPP_API §1.7: table ROW_MAJOR BFLOAT16, ids uint32 ROW_MAJOR); the
/// output is the table's dtype, TILE.
pub(super) fn embedding(cx: &Ctx<'_>, inputs: &[&Tensor]) -> Result<(Tensor, Value), OpError> {
    validate::embedding_table(inputs[1], cx.tensix())?;
    let dt = cx.out_dtype(inputs[1].meta.dtype);
    let out = cx.cpu.exec(cx.op, inputs)?;
    let t = cx.output(
        out.shape(),
        out.as_slice().into_owned(),
        dt,
        Layout::Tile,
        Side::Device,
    )?;
    Ok((
        t,
        json!({ "dtype": dt.as_str(), "ids": inputs[0].meta.dtype.as_str() }),
    ))
}

/// Constants, masks, positions and the bicubic resize: computed on the host in f32 (exactly as
/// the reference does) and uploaded in the op's dtype (host rounding). A `full` with no input
/// takes the profile's activation dtype unless a rule sets one.
pub(super) fn computed(
    cx: &Ctx<'_>,
    inputs: &[&Tensor],
    activation: DType,
    side: Side,
) -> Result<(Tensor, Value), OpError> {
    let dt = cx.out_dtype(inputs.first().map_or(activation, |t| t.meta.dtype));
    let out = cx.cpu.exec(cx.op, inputs)?;
    let t = cx.output(
        out.shape(),
        out.as_slice().into_owned(),
        dt,
        layout_of(dt),
        side,
    )?;
    let what = match cx.kind() {
        OpKind::InterpolateBicubic { .. } => "host (torch bicubic, f32)",
        _ => "host",
    };
    Ok((t, json!({ "dtype": dt.as_str(), "computed": what })))
}

/// Sinusoidal time embedding on the device in fp32: the frequencies ω_i (f64 on the host,
/// stored fp32), arg = t·ω_i as an fp32 multiply, sin/cos by the accurate SFPU kernels (fp32,
/// evaluated in f64 and rounded), then the typecast to the output dtype (PI0_SPEC §4 item 10:
/// TT computes the embedding in the time tensor's dtype on the device).
///
/// # Shapes
/// t [B] → [B, dim].
pub(super) fn time_embed(
    cx: &Ctx<'_>,
    t: &Tensor,
    dim: usize,
    min_period: f64,
    max_period: f64,
) -> Result<(Tensor, Value), OpError> {
    let out_dt = cx.out_dtype(t.meta.dtype);
    // The reference validates the attributes (and is the `math = "reference"` path).
    let reference = cx.cpu.exec(cx.op, &[t])?;
    if !cx.tensix() {
        let v = reference.as_slice().into_owned();
        let out = cx.output(reference.shape(), v, out_dt, Layout::Tile, Side::Device)?;
        return Ok((out, json!({ "dtype": out_dt.as_str() })));
    }
    let half = dim / 2;
    let ratio = max_period / min_period;
    let two_pi = 2.0 * std::f64::consts::PI;
    let omega: Vec<f32> = (0..half)
        .map(|i| {
            let f = if half == 1 {
                0.0
            } else {
                i as f64 / (half - 1) as f64
            };
            ((1.0 / (min_period * ratio.powf(f))) * two_pi) as f32
        })
        .collect();
    let mut out = Vec::with_capacity(t.len() * dim);
    for &tv in t.as_slice().iter() {
        let args: Vec<f64> = omega.iter().map(|&w| (tv * w) as f64).collect();
        out.extend(args.iter().map(|a| a.sin() as f32));
        out.extend(args.iter().map(|a| a.cos() as f32));
    }
    if out_dt == DType::Bf16 {
        out.iter_mut().for_each(|v| *v = bf16_device(*v));
    }
    let detail = json!({
        "dtype": out_dt.as_str(),
        "computed": "device fp32 (t·ω, sin, cos), typecast to the output dtype",
    });
    Ok((
        cx.output(reference.shape(), out, out_dt, Layout::Tile, Side::Device)?,
        detail,
    ))
}
