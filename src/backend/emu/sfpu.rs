//! The vector unit (SFPU): fp32 lanes, the approximations TT-NN's kernels use, and the
//! explicit rounding to bf16 before storing into a BF16 Dst (TT_NUMERICS §4).
//!
//! Where TT_NUMERICS gives the algorithm and its constants (approximate exp, approximate
//! GELU's LUT, approximate tanh) they are reproduced; where it gives the algorithm class and
//! the accuracy only (exp_21f's quadratic, the reciprocal's minimax seed, the 10-bit rsqrt),
//! the constants here are fitted to that description **[derived]**, and the accurate fp32
//! variants are evaluated in f64 and rounded once (TT's targets are ≤ 1 ULP).

use super::format::ftz;
use super::matmul::Dst;
use crate::backend::cpu::erf;

/// How an SFPU function runs: `math_approx_mode` and the Dst format it stores into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sfpu {
    pub approx: bool,
    pub dst: Dst,
}

impl Sfpu {
    /// The SFPU's store: explicit round to bf16 (ties away on WH, §1.3) for a BF16 Dst.
    #[inline]
    pub fn store(self, x: f32) -> f32 {
        ftz(self.dst.store(x))
    }

    /// e^x (§4.1).
    pub fn exp(self, x: f32) -> f32 {
        let y = if self.approx {
            exp_approx(x)
        } else {
            match self.dst {
                Dst::Bf16 => exp_21f(x),
                Dst::Fp32 => exp_accurate(x),
            }
        };
        self.store(y)
    }

    /// 1/x (§4.2): one Newton step for a BF16 Dst (and in approx mode), two for FP32.
    pub fn recip(self, x: f32) -> f32 {
        let iters = if self.dst == Dst::Fp32 && !self.approx {
            2
        } else {
            1
        };
        self.store(recip_nr(x, iters))
    }

    /// 1/√x (§4.3): ≈10-bit in approx mode, fp32-accurate otherwise.
    pub fn rsqrt(self, x: f32) -> f32 {
        let y = if self.approx {
            rsqrt_approx(x)
        } else {
            (1.0 / (x as f64).sqrt()) as f32
        };
        self.store(y)
    }

    /// √x (§4.3).
    pub fn sqrt(self, x: f32) -> f32 {
        let y = if self.approx {
            if x == 0.0 {
                0.0
            } else {
                x * rsqrt_approx(x)
            }
        } else {
            (x as f64).sqrt() as f32
        };
        self.store(y)
    }

    /// GELU (§4.4): the 6-segment LUT in approx mode, else the accurate kernel, whose bf16
    /// variant is the identity from 2.78125 and 0 below −5.5426. `tanh_form` selects the
    /// tanh-form GELU (`calculate_gelu_tanh`) for the accurate path.
    pub fn gelu(self, x: f32, tanh_form: bool) -> f32 {
        if self.approx {
            return self.store(gelu_lut(x));
        }
        if self.dst == Dst::Bf16 && !tanh_form {
            if x >= 2.78125 {
                return self.store(x);
            }
            if x < -5.5426 {
                return 0.0;
            }
        }
        let v = x as f64;
        let y = if tanh_form {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
        } else {
            0.5 * v * (1.0 + erf(v * std::f64::consts::FRAC_1_SQRT_2))
        };
        self.store(y as f32)
    }

    /// tanh (§4.5): the 3-segment LUT in approx mode, else accurate.
    pub fn tanh(self, x: f32) -> f32 {
        let y = if self.approx {
            let a = x.abs();
            // Segments meet at |x| = 1 and 2 [derived from the three pieces].
            let t = if a < 1.0 {
                0.90625 * a
            } else if a < 2.0 {
                0.09375 * a + 0.8125
            } else {
                1.0
            };
            t.copysign(x)
        } else {
            (x as f64).tanh() as f32
        };
        self.store(y)
    }

    /// σ(x) = 1/(1 + e^−x) with the non-approximate exp and the Newton reciprocal (§4.6),
    /// unrounded (the caller stores).
    fn sigmoid_lanes(self, x: f32) -> f32 {
        let e = match self.dst {
            Dst::Bf16 => exp_21f(-x),
            Dst::Fp32 => exp_accurate(-x),
        };
        let iters = if self.dst == Dst::Fp32 { 2 } else { 1 };
        recip_nr(1.0 + e, iters)
    }

    /// σ(x) (§4.6).
    pub fn sigmoid(self, x: f32) -> f32 {
        self.store(self.sigmoid_lanes(x))
    }

    /// x·σ(x), rounded once (§4.6).
    pub fn silu(self, x: f32) -> f32 {
        self.store(x * self.sigmoid_lanes(x))
    }
}

/// Approximate exp: Schraudolph's trick. i = round(A·x + (B − C)) as a 16-bit integer with
/// A = 256/ln 2 and B − C = 32500.818, then the bits `i << 15` read as an fp32; inputs below
/// −88.5 give 0 (§4.1). The 16-bit integer saturates at the exponent-255 pattern (→ +∞).
pub fn exp_approx(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < -88.5 {
        return 0.0;
    }
    const A: f64 = 256.0 / std::f64::consts::LN_2;
    const B_MINUS_C: f64 = 32500.818;
    let t = (A as f32 as f64 * x as f64 + B_MINUS_C as f32 as f64) as f32;
    let i = t.round().clamp(0.0, 0xFF00 as f32) as u32;
    f32::from_bits(i << 15)
}

/// 2^f on [0, 1): the quadratic of exp_21f, fitted for minimal max relative error
/// (1.7e-3, a quarter of a bf16 ULP) **[derived]**.
#[inline]
fn exp2_frac(f: f32) -> f32 {
    (0.337_184_86 * f + 0.657_633_5) * f + 1.001_727
}

/// Non-approximate exp for a BF16 Dst ("exp_21f", §4.1): y = 2^(x/ln 2) split into integer and
/// fraction, quadratic for 2^frac, scaled by 2^k; 0 below −88.5, +∞ above 88.7. The caller
/// rounds to bf16.
pub fn exp_21f(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < -88.5 {
        return 0.0;
    }
    if x > 88.7 {
        return f32::INFINITY;
    }
    let z = x * std::f32::consts::LOG2_E;
    let k = z.floor();
    let f = z - k;
    let p = exp2_frac(f);
    ftz(p * 2f32.powi(k as i32))
}

/// Non-approximate exp for an FP32 Dst (< 1 fp32 ULP target, §4.1).
pub fn exp_accurate(x: f32) -> f32 {
    ftz((x as f64).exp() as f32)
}

/// Reciprocal: quadratic seed on the mantissa in [1, 2) (fitted minimax, 1e-2 relative,
/// **[derived]**), then `iters` Newton steps y ← y(2 − m·y); ±0 → ±∞, ±∞ → ±0 (§4.2).
pub fn recip_nr(x: f32, iters: usize) -> f32 {
    if x.is_nan() {
        return x;
    }
    if ftz(x) == 0.0 {
        return f32::INFINITY.copysign(x);
    }
    if x.is_infinite() {
        return 0.0f32.copysign(x);
    }
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xFF) as i32 - 127;
    let m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000);
    let mut y = (0.323_217_58 * m - 1.454_480_5) * m + 2.121_147_9;
    for _ in 0..iters {
        y *= 2.0 - m * y;
    }
    let scale = 2f64.powi(-e);
    ftz((y as f64 * scale) as f32).copysign(x)
}

/// ≈10-bit inverse square root: magic-constant seed and one modified Newton step
/// (Walczyk–Moroz–Cieśliński constants, max relative error 6.5e-4; §4.3 "SQRT_10-bits").
pub fn rsqrt_approx(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    let x = ftz(x);
    if x == 0.0 {
        return f32::INFINITY;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let y = f32::from_bits(0x5F1F_FFF9u32.wrapping_sub(x.to_bits() >> 1));
    0.703_952_25 * y * (2.389_244_6 - x * y * y)
}

/// The approximate GELU: 0.5·x + LUT(|x|), six linear segments with fp16 coefficients and
/// breakpoints |x| = 0.5, 1, 1.5, 2, 3 (§4.4, SFPLUTFP32 table 1).
pub fn gelu_lut(x: f32) -> f32 {
    const SEG: [(f32, f32); 6] = [
        (0.19275, -0.000104),
        (0.49390, -0.16040),
        (0.61865, -0.27954),
        (0.60986, -0.26343),
        (0.54004, -0.11938),
        (0.5, 0.0),
    ];
    let a = x.abs();
    let i = if a < 0.5 {
        0
    } else if a < 1.0 {
        1
    } else if a < 1.5 {
        2
    } else if a < 2.0 {
        3
    } else if a < 3.0 {
        4
    } else {
        5
    };
    let fp16 = |v: f32| half::f16::from_f32(v).to_f32();
    let (slope, icpt) = (fp16(SEG[i].0), fp16(SEG[i].1));
    0.5 * x + (slope * a + icpt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::emu::format::bf16_rne;

    const BF16: Sfpu = Sfpu {
        approx: false,
        dst: Dst::Bf16,
    };
    const APPROX: Sfpu = Sfpu {
        approx: true,
        dst: Dst::Bf16,
    };
    const FP32: Sfpu = Sfpu {
        approx: false,
        dst: Dst::Fp32,
    };

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    /// bf16 ULP distance.
    fn ulps(a: f32, b: f32) -> f64 {
        let spacing = 2f64.powi(b.abs().log2().floor() as i32 - 7);
        (a as f64 - b as f64).abs() / spacing
    }

    #[test]
    fn approximate_exp_is_the_bit_trick_within_3_percent() {
        // x = 0: i = round(32500.818) = 32501 → exponent 126, mantissa 245/256.
        assert_eq!(exp_approx(0.0), 0.5 * (1.0 + 245.0 / 256.0));
        assert_eq!(exp_approx(-89.0), 0.0);
        assert_eq!(exp_approx(100.0), f32::INFINITY);
        let mut worst = 0.0f64;
        for x in grid(-80.0, 0.7, 200_000) {
            let r = exp_approx(x) as f64 / (x as f64).exp() - 1.0;
            worst = worst.max(r.abs());
        }
        assert!(worst < 0.032 && worst > 0.02, "max rel error {worst}");
    }

    #[test]
    fn accurate_exp_is_within_one_bf16_ulp() {
        for x in grid(-20.0, 20.0, 40_000) {
            let want = (x as f64).exp() as f32;
            let got = BF16.exp(x);
            assert!(ulps(got, want) <= 1.0, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(BF16.exp(-90.0), 0.0);
        assert_eq!(BF16.exp(89.0), f32::INFINITY);
        assert_eq!(FP32.exp(1.0), std::f32::consts::E);
    }

    #[test]
    fn reciprocal_sqrt_and_rsqrt() {
        for x in grid(0.01, 100.0, 20_000) {
            let want = 1.0 / x;
            // One Newton step: within half a bf16 ULP before the store, ≤ 1 ULP after it.
            let one = recip_nr(x, 1) as f64 * x as f64;
            assert!(
                (one - 1.0).abs() < 2f64.powi(-9),
                "1 Newton step at {x}: {one}"
            );
            assert!(ulps(BF16.recip(x), want) <= 1.0, "1/{x}");
            let r = recip_nr(x, 2) as f64 * x as f64;
            assert!((r - 1.0).abs() < 3e-7, "2 Newton steps: {r}");
            let rs = rsqrt_approx(x) as f64 * (x as f64).sqrt();
            assert!((rs - 1.0).abs() < 7e-4, "rsqrt approx at {x}: {rs}");
        }
        assert_eq!(BF16.recip(0.0), f32::INFINITY);
        assert_eq!(BF16.recip(-0.0), f32::NEG_INFINITY);
        assert_eq!(BF16.recip(f32::INFINITY), 0.0);
        assert!(APPROX.rsqrt(-1.0).is_nan());
        assert_eq!(APPROX.rsqrt(0.0), f32::INFINITY);
        assert_eq!(FP32.sqrt(2.0), std::f32::consts::SQRT_2);
        assert!((APPROX.sqrt(2.0) - std::f32::consts::SQRT_2).abs() < 2e-2);
        // The approximate rsqrt rounded to bf16 stays within a bf16 ULP (10 bits > 8).
        for x in grid(0.5, 4.0, 1000) {
            let want = 1.0 / x.sqrt();
            assert!(ulps(APPROX.rsqrt(x), want) <= 1.0, "{x}");
        }
    }

    #[test]
    fn approximate_gelu_lut_matches_its_published_error() {
        // The first segment is a poor fit near |x| ≈ 0.25: error ≈ 0.023 (§4.4).
        let g = |x: f64| 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2));
        let mut worst: (f64, f32) = (0.0, 0.0);
        for x in grid(-6.0, 6.0, 120_000) {
            let e = (gelu_lut(x) as f64 - g(x as f64)).abs();
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(worst.0 > 0.02 && worst.0 < 0.025, "{worst:?}");
        assert!(worst.1.abs() > 0.15 && worst.1.abs() < 0.35, "{worst:?}");
        // At 3: 1.5 + 0.54004·3 − 0.11938 (fp16 coefficients).
        let fp16 = |v: f32| half::f16::from_f32(v).to_f32();
        assert_eq!(gelu_lut(2.5), 1.25 + (fp16(0.54004) * 2.5 + fp16(-0.11938)));
        assert_eq!(
            gelu_lut(-0.25),
            -0.125 + (fp16(0.19275) * 0.25 + fp16(-0.000104))
        );
        assert_eq!(gelu_lut(3.0), 3.0, "last segment: 0.5·x + 0.5·|x|");
        assert_eq!(gelu_lut(-4.0), 0.0);
    }

    #[test]
    fn accurate_gelu_tanh_and_silu() {
        // bf16 accurate GELU: identity from 2.78125, zero below −5.5426, else ≤ 1 ULP.
        assert_eq!(BF16.gelu(3.0, false), 3.0);
        assert_eq!(BF16.gelu(-6.0, false), 0.0);
        for x in grid(-5.0, 2.7, 5000) {
            let v = x as f64;
            let want = (0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))) as f32;
            if want.abs() > 1e-3 {
                assert!(ulps(BF16.gelu(x, false), want) <= 0.5 + 1e-9, "gelu({x})");
            }
        }
        assert_eq!(APPROX.tanh(0.5), bf16_rne(0.453125));
        assert_eq!(APPROX.tanh(-1.5), -(0.09375 * 1.5 + 0.8125));
        assert_eq!(APPROX.tanh(7.0), 1.0);
        for x in grid(-8.0, 8.0, 4000) {
            let want = (x as f64 / (1.0 + (-(x as f64)).exp())) as f32;
            if want.abs() > 1e-2 {
                assert!(ulps(BF16.silu(x), want) <= 1.0, "silu({x})");
            }
            let s = (1.0 / (1.0 + (-(x as f64)).exp())) as f32;
            assert!(ulps(BF16.sigmoid(x), s) <= 1.0, "sigmoid({x})");
        }
    }
}
