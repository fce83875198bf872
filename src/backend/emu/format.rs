//! Storage formats: how a value is rounded when the host or the device stores it, and the tile
//! geometry that decides which values share a block-float exponent.
//!
//! Everything here works on f32 *values*: a stored tensor is held as the f32 numbers its device
//! bits decode to (the dequantized values), so a bfloat8_b tensor is a `Vec<f32>` whose every
//! 16-element face row is exactly representable with one shared exponent.
//!
//! | dtype | host (`from_torch`) | device (packer / SFPU store) |
//! |---|---|---|
//! | float32 | identity | identity |
//! | bfloat16 | round to nearest, ties to even; NaN → 0x7FC0 (TT_NUMERICS §1.3) | round to nearest, ties away from zero; denormals → 0, −0 → +0, NaN → ∞ (§1.3, §1.6) |
//! | bfloat8_b / bfloat4_b | max exponent per 16-element face row, RNE on the aligned significand, saturation, zero sign cleared, denormals → 0 (§1.4) | bf16 (device) then the same block quantisation with ties away; bfloat4_b = the bfloat8_b magnitude truncated by 4 bits (§1.4 "Device packing") |
//! | uint32 | identity | identity |
//!
//! Matrix-engine operand formats (TF32 truncation, fidelity bit planes) live in
//! [`super::matmul`].

use crate::tensor::{DType, Layout};

/// Tile edge (TT_NUMERICS §2.1).
pub const TILE: usize = 32;
/// Face edge; also the length of one block-float exponent group (§1.4).
pub const FACE: usize = 16;

/// Who stores the value: the host conversion or the device packer / SFPU store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `ttnn.from_torch` on the host: round to nearest even (§1.3, §1.4).
    Host,
    /// The packer or an SFPU store on the device: round to nearest, ties away (§1.3, §1.4).
    Device,
}

/// Bit pattern of `x`, with every field named for readability.
#[inline]
fn parts(bits: u32) -> (u32, u32, u32) {
    (bits >> 31, (bits >> 23) & 0xFF, bits & 0x7F_FFFF)
}

/// fp32 → bf16 on the host: round to nearest, ties to even; NaN → canonical quiet NaN 0x7FC0
/// (TT_NUMERICS §1.3, `fp32_to_bf16_bits_round_to_nearest_even`). Returns the bf16 value as f32.
#[inline]
pub fn bf16_rne(x: f32) -> f32 {
    let b = x.to_bits();
    if x.is_nan() {
        return f32::from_bits(0x7FC0_0000);
    }
    let r = b.wrapping_add(0x7FFF + ((b >> 16) & 1));
    f32::from_bits(r & 0xFFFF_0000)
}

/// fp32 → bf16 on the device: round to nearest, ties away from zero (TT_NUMERICS §1.3: "Emulate
/// ties-away-from-zero for device-side roundings"); denormals → +0, −0 → +0, NaN → ∞ with the
/// NaN's sign (§1.6, packer rounding conversions). Overflow rounds to ∞.
#[inline]
pub fn bf16_device(x: f32) -> f32 {
    let b = x.to_bits();
    let (s, e, _) = parts(b);
    if e == 0 {
        return 0.0;
    }
    if e == 0xFF {
        return f32::from_bits((s << 31) | 0x7F80_0000);
    }
    f32::from_bits(b.wrapping_add(0x8000) & 0xFFFF_0000)
}

/// fp32 → bf16 by dropping the low 16 bits (SFPSTORE to a BF16 Dst, the pre-2025 host path;
/// TT_NUMERICS §1.3).
#[inline]
pub fn bf16_trunc(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xFFFF_0000)
}

/// Flushes denormals to (positive) zero, as the FPU and SFPU read them (TT_NUMERICS §1.2, §1.6).
#[inline]
pub fn ftz(x: f32) -> f32 {
    if x.to_bits() & 0x7F80_0000 == 0 {
        0.0
    } else {
        x
    }
}

/// Magnitude bits of a block-float dtype (7 for bfloat8_b, 3 for bfloat4_b; §1.4).
pub fn bfp_width(dtype: DType) -> Option<u32> {
    match dtype {
        DType::Bfloat8B => Some(7),
        DType::Bfloat4B => Some(3),
        _ => None,
    }
}

/// Rounding of the aligned significand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tie {
    Even,
    Away,
}

/// Quantises one exponent group (≤ 16 values, the rest of the face row being zero padding) to
/// a block float of `w` magnitude bits, in place, and returns the shared exponent.
///
/// The host algorithm of TT_NUMERICS §1.4: shared exponent = max raw exponent (zeros count 0,
/// inf/NaN 255); a value with exponent field 0 (zero or denormal) → 0; the 24-bit significand
/// is shifted right by the exponent difference (bits lost before rounding), then reduced to `w`
/// bits with `tie` rounding; an overflow saturates to 2^w − 1; a zero magnitude loses its sign.
/// The stored datum is decoded as the host unpacker does: normalise, flush to 0 when the
/// exponent would reach 0, exponent 255 decodes as inf/NaN.
fn quantize_group(vals: &mut [f32], w: u32, tie: Tie) -> u32 {
    let exp = vals
        .iter()
        .map(|v| (v.to_bits() >> 23) & 0xFF)
        .max()
        .unwrap_or(0);
    let drop = 24 - w;
    let half = 1u32 << (drop - 1);
    for v in vals.iter_mut() {
        let (s, e, m) = parts(v.to_bits());
        if e == 0 {
            *v = 0.0;
            continue;
        }
        let shift = exp - e;
        let sig = if shift >= 24 {
            0
        } else {
            ((1u32 << 23) | m) >> shift
        };
        let mut mag = sig >> drop;
        let rem = sig & ((1u32 << drop) - 1);
        let up = match tie {
            Tie::Even => rem > half || (rem == half && mag & 1 == 1),
            Tie::Away => rem >= half,
        };
        if up {
            mag += 1;
        }
        if mag >= 1 << w {
            mag = (1 << w) - 1;
        }
        *v = decode_bfp(s, mag, exp, w);
    }
    exp
}

/// Value of a block-float datum: sign `s`, magnitude `mag` of `w` bits, shared exponent `exp`
/// (the host unpacker of TT_NUMERICS §1.4).
fn decode_bfp(s: u32, mag: u32, exp: u32, w: u32) -> f32 {
    if mag == 0 {
        return 0.0;
    }
    // Leading one of `mag` at bit `lead`; the value is mag / 2^(w-1) · 2^(exp-127).
    let lead = 31 - mag.leading_zeros();
    let shift = (w - 1) - lead;
    if exp == 0xFF {
        let frac = (mag << (23 - lead)) & 0x7F_FFFF;
        return f32::from_bits((s << 31) | 0x7F80_0000 | frac);
    }
    if shift >= exp {
        return 0.0;
    }
    let e = exp - shift;
    let frac = (mag << (23 - lead)) & 0x7F_FFFF;
    f32::from_bits((s << 31) | (e << 23) | frac)
}

/// Host packing of one row of a TILE tensor into a block float (`ttnn.from_torch(...,
/// dtype=bfloat8_b / bfloat4_b, layout=TILE)`): groups of 16 consecutive values starting at
/// column 0; a trailing partial group is padded with the tile padding value 0 (§1.4, §2.2).
fn bfp_row(row: &mut [f32], w: u32, side: Side) {
    for g in row.chunks_mut(FACE) {
        match side {
            Side::Host => {
                quantize_group(g, w, Tie::Even);
            }
            Side::Device => {
                // bf16 first (packer early conversion), then the BFP8 grid with ties away;
                // bfloat4_b is the BFP8 magnitude truncated by 4 bits (§1.4 "Device packing").
                for v in g.iter_mut() {
                    *v = bf16_device(*v);
                }
                let exp = quantize_group(g, 7, Tie::Away);
                if w < 7 {
                    for v in g.iter_mut() {
                        let (s, e, m) = parts(v.to_bits());
                        if e == 0 {
                            continue;
                        }
                        // Recover the 7-bit magnitude, truncate, decode again.
                        let sig = ((1u32 << 23) | m) >> (exp - e).min(31);
                        let mag7 = sig >> 17;
                        *v = decode_bfp(s, mag7 >> (7 - w), exp, w);
                    }
                }
            }
        }
    }
}

/// Rounds `data` (row-major, last axis `width`) to what a tensor of `dtype` stores.
///
/// Block floats share an exponent over each run of 16 values along the last axis, aligned to
/// multiples of 16 from column 0 (the face rows of the TILE layout, §1.4); rows never share.
pub fn store(data: &mut [f32], width: usize, dtype: DType, side: Side) {
    match dtype {
        DType::F32 | DType::U32 => {}
        DType::Bf16 => match side {
            Side::Host => data.iter_mut().for_each(|v| *v = bf16_rne(*v)),
            Side::Device => data.iter_mut().for_each(|v| *v = bf16_device(*v)),
        },
        DType::Bfloat8B | DType::Bfloat4B => {
            let w = bfp_width(dtype).unwrap_or(7);
            if width == 0 {
                return;
            }
            for row in data.chunks_mut(width) {
                bfp_row(row, w, side);
            }
        }
    }
}

/// The padded shape of a tensor in `layout`: TILE rounds the last two dims up to 32 (a rank-1
/// tensor its only dim; TT_NUMERICS §2.2); ROW_MAJOR is unpadded.
pub fn padded_shape(shape: &[usize], layout: Layout) -> Vec<usize> {
    let mut p = shape.to_vec();
    if layout == Layout::Tile {
        let n = p.len();
        for d in p.iter_mut().skip(n.saturating_sub(2)) {
            *d = d.div_ceil(TILE) * TILE;
        }
    }
    p
}

/// Whether `dtype` may be stored in `layout` ("Layout must be Layout::TILE for bfloat8_b or
/// bfloat4_b!", TT_NUMERICS §2.3).
pub fn layout_allows(dtype: DType, layout: Layout) -> bool {
    layout == Layout::Tile || bfp_width(dtype).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(bits: u32) -> f32 {
        f32::from_bits(bits)
    }

    #[test]
    fn bf16_rne_vs_ties_away_on_exact_ties() {
        // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125.
        let tie_even_down = f(0x3F80_8000);
        assert_eq!(bf16_rne(tie_even_down), 1.0);
        assert_eq!(bf16_device(tie_even_down), 1.0078125);
        // 1.0078125 + 2^-8: halfway, kept LSB is 1 → both round up.
        let tie_odd = f(0x3F81_8000);
        assert_eq!(bf16_rne(tie_odd), f(0x3F82_0000));
        assert_eq!(bf16_device(tie_odd), f(0x3F82_0000));
        // 128.5: the tt-metal#30147 example (typecast 129, from_torch 128).
        assert_eq!(bf16_rne(128.5), 128.0);
        assert_eq!(bf16_device(128.5), 129.0);
        assert_eq!(bf16_device(-128.5), -129.0);
        assert_eq!(bf16_rne(-128.5), -128.0);
        // Not a tie: both agree.
        assert_eq!(bf16_rne(f(0x3F80_8001)), 1.0078125);
        assert_eq!(bf16_device(f(0x3F80_7FFF)), 1.0);
        assert_eq!(bf16_trunc(f(0x3F80_FFFF)), 1.0);
    }

    #[test]
    fn bf16_special_values() {
        assert_eq!(bf16_rne(f32::NAN).to_bits(), 0x7FC0_0000);
        assert_eq!(bf16_device(f32::NAN), f32::INFINITY);
        assert_eq!(bf16_device(f32::INFINITY), f32::INFINITY);
        assert_eq!(bf16_device(-0.0).to_bits(), 0);
        assert_eq!(bf16_device(f(0x0000_1234)), 0.0, "denormal flushed");
        assert_eq!(bf16_rne(f32::MAX), f32::INFINITY, "overflow");
        assert_eq!(
            bf16_rne(f(0x0001_0000)).to_bits(),
            0x0001_0000,
            "host keeps bf16 denormals"
        );
        assert_eq!(
            bf16_device(f(0x0001_0000)).to_bits(),
            0,
            "the packer flushes them"
        );
    }

    fn bfp(vals: &[f32], dtype: DType, side: Side) -> Vec<f32> {
        let mut v = vals.to_vec();
        let n = v.len();
        store(&mut v, n, dtype, side);
        v
    }

    #[test]
    fn bfp8_one_large_value_flushes_small_ones() {
        // Block max 4.0 (exponent 129): a value 2^-6 below the max keeps 1 bit, one 2^-8 below
        // rounds to 0 (and loses its sign), 3.0 is exact.
        let mut row = vec![0.0f32; 16];
        row[0] = 4.0;
        row[1] = 3.0;
        row[2] = 4.0 / 64.0; // exactly one magnitude step (mag 1)
        row[3] = -4.0 / 256.0; // a quarter step → 0
        row[4] = 4.0 / 128.0; // half a step, kept LSB 0 → ties to even → 0
        row[5] = 3.0 * 4.0 / 128.0; // 1.5 steps → ties to even → 2 steps
        row[6] = 0.1;
        let q = bfp(&row, DType::Bfloat8B, Side::Host);
        assert_eq!(q[0], 4.0);
        assert_eq!(q[1], 3.0);
        assert_eq!(q[2], 0.0625);
        assert_eq!(q[3].to_bits(), 0, "sign of a zero result is cleared");
        assert_eq!(q[4], 0.0);
        assert_eq!(q[5], 0.125);
        // 0.1 = 1.6·2^-4 → 0.1/0.0625 = 1.6 steps → 2 steps.
        assert_eq!(q[6], 0.125);
        // Device packing: ties away from zero.
        let d = bfp(&row, DType::Bfloat8B, Side::Device);
        assert_eq!(d[4], 0.0625);
        assert_eq!(d[5], 0.125);
    }

    #[test]
    fn bfp8_saturates_at_the_block_max() {
        let mut row = vec![0.5f32; 16];
        row[7] = 1.9961;
        let q = bfp(&row, DType::Bfloat8B, Side::Host);
        assert_eq!(q[7], 1.984375, "1.9961 saturates to 127/64 instead of 2.0");
        assert_eq!(q[0], 0.5);
        let q = bfp(&row, DType::Bfloat4B, Side::Host);
        // bfp4: 3 magnitude bits, value = mag/4·2^0: 1.9961 → 7.98 → 8 → saturates to 7 → 1.75.
        assert_eq!(q[7], 1.75);
        assert_eq!(q[0], 0.5);
    }

    #[test]
    fn bfp4_packing_of_a_crafted_block() {
        // Max 1.0 (mag 4 of 3 bits); steps of 0.25.
        let vals = [1.0, 0.75, 0.3, -0.125, 0.375, -0.625, 0.1, 0.0];
        let mut row = vals.to_vec();
        row.resize(16, 0.0);
        let q = bfp(&row, DType::Bfloat4B, Side::Host);
        let want = [1.0, 0.75, 0.25, 0.0, 0.5, -0.5, 0.0, 0.0];
        assert_eq!(
            &q[..8],
            &want,
            "RNE: 0.375→0.5 (1.5 steps), −0.625→−0.5 (2.5 steps)"
        );
        assert_eq!(q[3].to_bits(), 0);
        // Device bfp4: bfp8 with ties away, then truncation by 4 bits: −0.625 → −0.5,
        // 0.375 → 0.25 (truncation bias), 0.75 stays.
        let d = bfp(&row, DType::Bfloat4B, Side::Device);
        assert_eq!(&d[..8], &[1.0, 0.75, 0.25, 0.0, 0.25, -0.5, 0.0, 0.0]);
    }

    #[test]
    fn bfp_denormals_and_groups_of_sixteen() {
        // A denormal is 0 even when it is the block max.
        let mut row = vec![f(0x0000_0400); 16];
        row[3] = -f(0x0000_0001);
        assert!(bfp(&row, DType::Bfloat8B, Side::Host)
            .iter()
            .all(|v| v.to_bits() == 0));
        // Groups never span 16-column boundaries: column 16 starts a new group.
        let mut row = vec![1.0f32 / 1024.0; 32];
        row[0] = 64.0;
        let q = bfp(&row, DType::Bfloat8B, Side::Host);
        assert_eq!(q[1], 0.0, "small value in the group of 64");
        assert_eq!(q[16], 1.0 / 1024.0, "second group has its own exponent");
        // Rows never share: width 8 means two rows of one (padded) group each.
        let mut v = vec![64.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        store(&mut v, 6, DType::Bfloat8B, Side::Host);
        assert_eq!(
            v[1], 0.0,
            "0.5 is half a step below 64 in its own row: ties to even → 0"
        );
        assert_eq!(v[6], 0.5, "the second row has its own exponent");
    }

    #[test]
    fn bfp_nan_and_inf_take_the_block() {
        let mut row = vec![3.0f32; 16];
        row[2] = f32::INFINITY;
        let q = bfp(&row, DType::Bfloat8B, Side::Host);
        assert_eq!(q[2], f32::INFINITY);
        assert!(q.iter().enumerate().all(|(i, v)| i == 2 || *v == 0.0));
        row[2] = f32::NAN;
        row[5] = -1e30;
        let q = bfp(&row, DType::Bfloat4B, Side::Host);
        assert!(q[2].is_nan());
        assert!(q.iter().enumerate().all(|(i, v)| i == 2 || *v == 0.0));
        // The next group is untouched.
        let mut two = vec![3.0f32; 32];
        two[0] = f32::INFINITY;
        let q = bfp(&two, DType::Bfloat8B, Side::Host);
        assert_eq!(q[16], 3.0);
    }

    #[test]
    fn bfp_is_idempotent_and_exact_for_the_block_max_with_seven_bits() {
        let row: Vec<f32> = (0..16).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
        for dtype in [DType::Bfloat8B, DType::Bfloat4B] {
            for side in [Side::Host, Side::Device] {
                let q = bfp(&row, dtype, side);
                let qq = bfp(&q, dtype, side);
                assert_eq!(q, qq, "{dtype:?} {side:?}");
            }
        }
        // A bf16 value with ≤ 6 mantissa bits as the block max is exact in bfp8.
        let mut r = vec![0.0f32; 16];
        r[0] = 1.984375;
        assert_eq!(bfp(&r, DType::Bfloat8B, Side::Host)[0], 1.984375);
    }

    #[test]
    fn tile_padding_and_layouts() {
        assert_eq!(padded_shape(&[1, 51, 32], Layout::Tile), vec![1, 64, 32]);
        assert_eq!(padded_shape(&[2, 25, 40], Layout::Tile), vec![2, 32, 64]);
        assert_eq!(padded_shape(&[50], Layout::Tile), vec![64]);
        assert_eq!(
            padded_shape(&[2, 25, 40], Layout::RowMajor),
            vec![2, 25, 40]
        );
        assert!(!layout_allows(DType::Bfloat8B, Layout::RowMajor));
        assert!(layout_allows(DType::Bf16, Layout::RowMajor));
        // Zero padding of a partial group does not change the quantisation: width 20 packs the
        // columns 16..20 as a group padded with zeros, the same as the padded row would.
        let vals: Vec<f32> = (0..20).map(|i| 1.0 + i as f32 / 7.0).collect();
        let mut a = vals.clone();
        store(&mut a, 20, DType::Bfloat8B, Side::Host);
        let mut b = vals.clone();
        b.resize(32, 0.0);
        store(&mut b, 32, DType::Bfloat8B, Side::Host);
        assert_eq!(&a[..], &b[..20]);
    }
}
