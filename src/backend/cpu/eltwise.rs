//! Element-wise ops: broadcasting `add` / `mul`, `mul_scalar`, `gelu`, `silu`.

use ndarray::IxDyn;
use rayon::prelude::*;

use super::output;
use crate::backend::{GeluApprox, OpError, OpKind};
use crate::tensor::{shape_string, Tensor};

/// NumPy broadcast of two shapes (trailing axes aligned; each pair equal or one of them 1).
pub(super) fn broadcast_shape(
    kind: &OpKind,
    a: &[usize],
    b: &[usize],
) -> Result<Vec<usize>, OpError> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(OpError::invalid(
                kind,
                format!(
                    "shapes {} and {} are not broadcastable",
                    shape_string(a),
                    shape_string(b)
                ),
            )),
        })
        .collect()
}

/// `f(a, b)` element-wise with NumPy broadcasting.
///
/// # Shapes
/// a, b broadcastable → broadcast(a, b).
pub(super) fn binary(
    kind: &OpKind,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f32, f32) -> f32,
) -> Result<Tensor, OpError> {
    let shape = broadcast_shape(kind, a.shape(), b.shape())?;
    if a.shape() == b.shape() {
        let (x, y) = (a.as_slice(), b.as_slice());
        let out = x.iter().zip(y.iter()).map(|(&p, &q)| f(p, q)).collect();
        return output(kind, &shape, out);
    }
    let dim = IxDyn(&shape);
    let err = || {
        OpError::invalid(
            kind,
            format!(
                "cannot broadcast {} and {} to {}",
                shape_string(a.shape()),
                shape_string(b.shape()),
                shape_string(&shape)
            ),
        )
    };
    let av = a.array().broadcast(dim.clone()).ok_or_else(err)?;
    let bv = b.array().broadcast(dim).ok_or_else(err)?;
    let out = av.iter().zip(bv.iter()).map(|(&p, &q)| f(p, q)).collect();
    output(kind, &shape, out)
}

/// Element count above which element-wise maps are split over the rayon workers.
const PARALLEL_MIN_ELEMS: usize = 1 << 16;

/// `f(x)` element-wise; same shape. Splits large tensors over `threads` workers.
pub(super) fn unary(
    kind: &OpKind,
    x: &Tensor,
    threads: usize,
    f: impl Fn(f32) -> f32 + Sync,
) -> Result<Tensor, OpError> {
    let src = x.as_slice();
    let mut out = vec![0.0f32; src.len()];
    if threads > 1 && src.len() >= PARALLEL_MIN_ELEMS {
        let chunk = src.len().div_ceil(threads);
        out.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &v)| *o = f(v)));
    } else {
        out.iter_mut().zip(src.iter()).for_each(|(o, &v)| *o = f(v));
    }
    output(kind, x.shape(), out)
}

/// GELU. The tanh form mirrors torch's f32 kernel step for step
/// (x³, β·(x + κx³), 0.5·x·(1 + tanh)); the erf form is evaluated in f64 and rounded once.
pub(super) fn gelu(
    kind: &OpKind,
    x: &Tensor,
    approx: GeluApprox,
    threads: usize,
) -> Result<Tensor, OpError> {
    match approx {
        GeluApprox::Tanh => unary(kind, x, threads, gelu_tanh),
        GeluApprox::None => unary(kind, x, threads, |v| {
            let v = v as f64;
            (0.5 * v * (1.0 + erf(v * std::f64::consts::FRAC_1_SQRT_2))) as f32
        }),
    }
}

/// 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) in f32, in torch's operation order.
pub(super) fn gelu_tanh(v: f32) -> f32 {
    const BETA: f32 = (std::f64::consts::SQRT_2 * std::f64::consts::FRAC_2_SQRT_PI * 0.5) as f32;
    const KAPPA: f32 = 0.044715;
    let cube = v * v * v;
    let inner = BETA * (v + KAPPA * cube);
    0.5 * v * (1.0 + inner.tanh())
}

/// x·σ(x) = x / (1 + e^(−x)) in f32, torch's formulation.
pub(super) fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

/// The error function, relative error below 1e-15 for all finite x.
///
/// erf(x) = (2/√π)·e^(−x²)·Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): every term is positive, so the
/// series has no cancellation; |x| ≥ 6 returns ±1 (erfc(6) ≈ 2e-17).
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a >= 6.0 {
        return x.signum();
    }
    let x2 = a * a;
    let mut term = a;
    let mut sum = a;
    for n in 1..400 {
        term *= 2.0 * x2 / (2 * n + 1) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    let r = std::f64::consts::FRAC_2_SQRT_PI * (-x2).exp() * sum;
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_reference_values() {
        // Values from mpmath / Abramowitz–Stegun tables (15+ significant digits).
        let cases = [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (1.5, 0.966_105_146_475_310_8),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.0, -0.842_700_792_949_714_9),
            (1e-10, 1.128_379_167_095_512_6e-10),
        ];
        for (x, want) in cases {
            let got = erf(x);
            let rel = ((got - want) / want.abs().max(1e-300)).abs();
            assert!(
                x == 0.0 && got == 0.0 || rel < 1e-14,
                "erf({x}) = {got}, want {want}"
            );
        }
        assert_eq!(erf(7.0), 1.0);
        assert_eq!(erf(-7.0), -1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn broadcast_shapes() {
        let k = OpKind::Add;
        assert_eq!(
            broadcast_shape(&k, &[2, 1, 3], &[4, 1]).unwrap(),
            vec![2, 4, 3]
        );
        assert_eq!(broadcast_shape(&k, &[], &[5]).unwrap(), vec![5]);
        assert!(broadcast_shape(&k, &[2, 3], &[4, 3]).is_err());
    }
}
