//! Host-side preparation the tt backend does before handing data to TT-NN: RoPE cos/sin tables
//! for given positions, and the exact three-way bf16 split of an f32 embedding table. Pure
//! functions, tested in every build.

#![cfg_attr(not(any(feature = "tt", feature = "host-shim")), allow(dead_code))]

/// f32 → bf16 → f32 with round-to-nearest-even (NaN → the canonical quiet NaN), as TT-NN's host
/// conversion does (TT_NUMERICS §1.3).
pub fn bf16_rne(x: f32) -> f32 {
    let b = x.to_bits();
    if x.is_nan() {
        return f32::from_bits(0x7FC0_0000);
    }
    let r = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) & 0xFFFF_0000;
    f32::from_bits(r)
}

/// Splits f32 values into three bf16-representable parts with `hi + (mid + lo) == x` exactly in
/// f32 arithmetic (for finite, normal-range values): hi = bf16(x), mid = bf16(x − hi),
/// lo = x − hi − mid. Each subtraction is exact (Sterbenz), and lo keeps at most 8 significant
/// bits, so it is a bf16 value too. Lets a BFLOAT16-only gather (ttnn::embedding) move f32
/// rows without loss.
pub fn bf16_split(x: &[f32]) -> [Vec<f32>; 3] {
    let mut hi = Vec::with_capacity(x.len());
    let mut mid = Vec::with_capacity(x.len());
    let mut lo = Vec::with_capacity(x.len());
    for &v in x {
        let h = bf16_rne(v);
        let r = v - h;
        let m = bf16_rne(r);
        hi.push(h);
        mid.push(m);
        lo.push(r - m);
    }
    [hi, mid, lo]
}

/// cos and sin tables of half-split RoPE for the given positions, each `[pb, t, 1, head_dim]`
/// with both halves of a head holding the same angle, computed exactly as the cpu reference
/// does (inv_freq and angles in f64, cos/sin rounded once to f32).
pub fn rope_tables(
    positions: &[f32],
    pb: usize,
    t: usize,
    theta: f32,
    head_dim: usize,
) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let theta = theta as f64;
    let inv_freq: Vec<f64> = (0..half)
        .map(|j| theta.powf(-2.0 * j as f64 / head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(pb * t * head_dim);
    let mut sin = Vec::with_capacity(pb * t * head_dim);
    for &p in positions.iter().take(pb * t) {
        let p = p as f64;
        let (c, s): (Vec<f32>, Vec<f32>) = inv_freq
            .iter()
            .map(|&f| {
                let a = p * f;
                (a.cos() as f32, a.sin() as f32)
            })
            .unzip();
        cos.extend_from_slice(&c);
        cos.extend_from_slice(&c);
        sin.extend_from_slice(&s);
        sin.extend_from_slice(&s);
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bf16_rounding_is_nearest_even() {
        // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even mantissa (1.0) wins.
        assert_eq!(bf16_rne(1.0 + 2f32.powi(-8)), 1.0);
        // 1 + 3·2^-8 ties between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
        assert_eq!(bf16_rne(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(bf16_rne(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(bf16_rne(f32::NAN).is_nan());
        assert_eq!(bf16_rne(f32::INFINITY), f32::INFINITY);
    }

    proptest! {
        #[test]
        fn bf16_split_is_exact(x in prop::num::f32::NORMAL) {
            prop_assume!(x.abs() < 1e37 && x.abs() > 1e-30);
            let [h, m, l] = bf16_split(&[x]);
            for part in [h[0], m[0], l[0]] {
                prop_assert_eq!(bf16_rne(part), part, "{} is not a bf16 value", part);
            }
            prop_assert_eq!(h[0] + (m[0] + l[0]), x);
        }
    }

    #[test]
    fn rope_tables_duplicate_halves_and_start_at_identity() {
        let (c, s) = rope_tables(&[0.0, 3.0], 1, 2, 10_000.0, 4);
        assert_eq!(c.len(), 8);
        assert_eq!(&c[..4], &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(&s[..4], &[0.0, 0.0, 0.0, 0.0]);
        // position 3: inv_freq = [1, 10000^(-1/2)]
        assert_eq!(c[4], 3f64.cos() as f32);
        assert_eq!(c[6], c[4]);
        assert_eq!(s[5], (3.0 * 10_000f64.powf(-0.5)).sin() as f32);
        assert_eq!(s[7], s[5]);
    }
}
