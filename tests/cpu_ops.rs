//! Conformance of the reference backend: every op kind against values worked out by hand (or,
//! where stated, produced by torch), plus a contract-violation case for every kind.

use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::{Backend, GeluApprox, Op, OpError, OpKind};
use pccscope::tensor::{DType, Tensor};

const E: f64 = std::f64::consts::E;

fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_vec(shape, data.to_vec()).expect("test tensor shape")
}

fn run(kind: OpKind, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
    CpuBackend::new().exec(&Op::new("test", kind), inputs)
}

fn ok(kind: OpKind, inputs: &[&Tensor]) -> Tensor {
    let name = kind.as_str();
    run(kind, inputs).unwrap_or_else(|e| panic!("{name} failed: {e}"))
}

/// Asserts shape and values; prints the first mismatches with index, got, want and tolerance.
#[track_caller]
fn assert_close(got: &Tensor, shape: &[usize], want: &[f64], tol: f64) {
    assert_eq!(got.shape(), shape, "shape");
    assert_eq!(got.meta.dtype, DType::F32);
    assert_eq!(got.meta.shape, shape, "meta shape");
    let g = got.as_slice();
    assert_eq!(g.len(), want.len(), "element count");
    let bad: Vec<String> = g
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (&a, &b))| !((a as f64 - b).abs() <= tol || (a as f64 == b)))
        .take(5)
        .map(|(i, (a, b))| format!("[{i}] got {a} want {b}"))
        .collect();
    assert!(bad.is_empty(), "mismatches (tol {tol}): {}", bad.join("; "));
}

#[track_caller]
fn assert_exact(got: &Tensor, shape: &[usize], want: &[f32]) {
    let w: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    assert_close(got, shape, &w, 0.0);
}

/// Asserts an `Invalid` error whose message contains every `needle`.
#[track_caller]
fn assert_invalid(res: Result<Tensor, OpError>, needles: &[&str]) {
    match res {
        Err(OpError::Invalid { message, .. }) => {
            for n in needles {
                assert!(message.contains(n), "message `{message}` lacks `{n}`");
            }
        }
        Err(e) => panic!("expected Invalid, got {e}"),
        Ok(t) => panic!("expected Invalid, got a tensor of shape {:?}", t.shape()),
    }
}

/// Deterministic values in [-1, 1) (64-bit LCG).
fn lcg(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

#[test]
fn backend_identity() {
    let b = CpuBackend::with_threads(3);
    assert_eq!(b.name(), "cpu");
    assert_eq!(b.profile(), "exact");
    assert_eq!(b.threads(), 3);
    assert_eq!(CpuBackend::with_threads(0).threads(), 1);
}

// ---- linear / conv ----------------------------------------------------------------------

#[test]
fn linear_2x3_by_3x2_with_and_without_bias() {
    // x = [[1,2,3],[4,5,6]], W = [[1,0,-1],[2,1,0]] ([out=2, in=3]), b = [0.5, -1]
    // x Wᵀ = [[1-3, 2+2], [4-6, 8+5]] = [[-2, 4], [-2, 13]]
    let x = t(&[1, 2, 3], &[1., 2., 3., 4., 5., 6.]);
    let w = t(&[2, 3], &[1., 0., -1., 2., 1., 0.]);
    let b = t(&[2], &[0.5, -1.0]);
    assert_exact(
        &ok(OpKind::Linear, &[&x, &w]),
        &[1, 2, 2],
        &[-2., 4., -2., 13.],
    );
    assert_exact(
        &ok(OpKind::Linear, &[&x, &w, &b]),
        &[1, 2, 2],
        &[-1.5, 3., -1.5, 12.],
    );
}

/// Exact-ish reference in f64 plus the classic rounding bound k·ε·max Σ|x||w| for f32 sums.
fn naive_linear(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
) -> (Vec<f64>, f64) {
    let mut out = vec![0.0f64; m * n];
    let mut abs_max = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let terms = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64);
            out[i * n + j] = terms.clone().sum::<f64>() + b[j] as f64;
            abs_max = abs_max.max(terms.map(f64::abs).sum::<f64>() + b[j].abs() as f64);
        }
    }
    let tol = (k + 1) as f64 * f32::EPSILON as f64 * abs_max;
    (out, tol)
}

#[test]
fn linear_matches_naive_f64_at_odd_shapes() {
    // (m, k, n): odd sizes, k = 1, m = 1, and one above the parallel threshold.
    let shapes = [
        (37, 53, 29),
        (37, 1, 29),
        (1, 53, 29),
        (1, 1, 1),
        (130, 257, 70),
    ];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let x = lcg(m * k, 2 * i as u64);
        let w = lcg(n * k, 2 * i as u64 + 1);
        let b = lcg(n, 100 + i as u64);
        let (want, tol) = naive_linear(&x, &w, &b, (m, k, n));
        for threads in [1, 2] {
            let got = CpuBackend::with_threads(threads)
                .exec(
                    &Op::new("lin", OpKind::Linear),
                    &[&t(&[m, k], &x), &t(&[n, k], &w), &t(&[n], &b)],
                )
                .expect("linear");
            assert_close(&got, &[m, n], &want, tol);
        }
    }
}

#[test]
fn linear_contract_violations() {
    let x = t(&[2, 3], &[0.; 6]);
    let w = t(&[2, 4], &[0.; 8]);
    assert_invalid(run(OpKind::Linear, &[&x, &w]), &["[2, 3]", "[2, 4]"]);
    let w = t(&[2, 3], &[0.; 6]);
    let b = t(&[3], &[0.; 3]);
    assert_invalid(run(OpKind::Linear, &[&x, &w, &b]), &["bias", "[2]", "[3]"]);
    assert_invalid(
        run(OpKind::Linear, &[&x]),
        &["expected 2 to 3 inputs", "got 1"],
    );
    let scalar = t(&[], &[1.0]);
    assert_invalid(run(OpKind::Linear, &[&scalar, &w]), &["rank"]);
    assert_invalid(run(OpKind::Linear, &[&x, &b]), &["weight", "rank 2"]);
}

#[test]
fn conv2d_patch_sums_blocks_row_major() {
    // image 0..15 on a 4×4 grid, patch 2. Filter 0 = all ones (block sums), filter 1 = top-left.
    // Blocks (row-major): {0,1,4,5}=10, {2,3,6,7}=18, {8,9,12,13}=42, {10,11,14,15}=50.
    let img: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let x = t(&[1, 1, 4, 4], &img);
    let w = t(&[2, 1, 2, 2], &[1., 1., 1., 1., 1., 0., 0., 0.]);
    let b = t(&[2], &[0.5, -1.0]);
    let y = ok(OpKind::Conv2dPatch { patch: 2 }, &[&x, &w, &b]);
    assert_exact(&y, &[1, 4, 2], &[10.5, -1., 18.5, 1., 42.5, 7., 50.5, 9.]);
    // 5×5 with patch 2: "valid" drops the last row and column → the same 2×2 grid.
    let img5: Vec<f32> = (0..25).map(|v| v as f32).collect();
    let y = ok(
        OpKind::Conv2dPatch { patch: 2 },
        &[&t(&[1, 1, 5, 5], &img5), &w, &b],
    );
    // Blocks: {0,1,5,6}=12, {2,3,7,8}=20, {10,11,15,16}=52, {12,13,17,18}=60.
    assert_exact(&y, &[1, 4, 2], &[12.5, -1., 20.5, 1., 52.5, 9., 60.5, 11.]);
}

#[test]
fn conv2d_patch_contract_violations() {
    let x = t(&[1, 2, 4, 4], &[0.; 32]);
    let w = t(&[3, 1, 2, 2], &[0.; 12]);
    assert_invalid(
        run(OpKind::Conv2dPatch { patch: 2 }, &[&x, &w]),
        &["[3, 1, 2, 2]", "[1, 2, 4, 4]"],
    );
    let w = t(&[3, 2, 8, 8], &[0.; 384]);
    assert_invalid(
        run(OpKind::Conv2dPatch { patch: 8 }, &[&x, &w]),
        &["smaller than one 8×8 patch"],
    );
    let x3 = t(&[2, 4, 4], &[0.; 32]);
    assert_invalid(
        run(OpKind::Conv2dPatch { patch: 2 }, &[&x3, &w]),
        &["images", "rank 4"],
    );
}

// ---- interpolate_bicubic ------------------------------------------------------------------

#[test]
fn bicubic_same_size_is_identity() {
    let table = lcg(9 * 3, 7);
    let y = ok(
        OpKind::InterpolateBicubic {
            in_h: 3,
            in_w: 3,
            out_h: 3,
            out_w: 3,
        },
        &[&t(&[9, 3], &table)],
    );
    assert_exact(&y, &[9, 3], &table);
}

#[test]
fn bicubic_matches_torch() {
    // Produced with torch 2.15 (CPU):
    //   t = torch.tensor([[1.,-2.],[3.,.5],[-1.,4.],[2.,2.]])
    //   F.interpolate(t.reshape(1,2,2,2).permute(0,3,1,2), size=(4,4), mode="bicubic",
    //                 align_corners=False).permute(0,2,3,1).reshape(16,2)
    let table = t(&[4, 2], &[1., -2., 3., 0.5, -1., 4., 2., 2.]);
    let want = [
        1.0111236572265625,
        -2.9465408325195312,
        1.640167236328125,
        -1.9588775634765625,
        2.676239013671875,
        -0.3321380615234375,
        3.3052825927734375,
        0.6555252075195312,
        0.312042236328125,
        -0.7967681884765625,
        1.05133056640625,
        -0.305206298828125,
        2.26898193359375,
        0.504425048828125,
        3.008270263671875,
        0.9959869384765625,
        -0.839385986328125,
        2.7440338134765625,
        0.08148193359375,
        2.418487548828125,
        1.59820556640625,
        1.882293701171875,
        2.519073486328125,
        1.5567474365234375,
        -1.5384674072265625,
        4.893806457519531,
        -0.507354736328125,
        4.0721588134765625,
        1.190948486328125,
        2.7188568115234375,
        2.2220611572265625,
        1.8972091674804688,
    ];
    let kind = OpKind::InterpolateBicubic {
        in_h: 2,
        in_w: 2,
        out_h: 4,
        out_w: 4,
    };
    assert_close(&ok(kind, &[&table]), &[16, 2], &want, 1e-6);
    // Down in one axis, up in the other (torch, same recipe):
    //   t = torch.arange(12.).reshape(12,1)*0.5-1 on a 3×4 grid → 2×5.
    let table: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
    let want = [
        -0.6475626230239868,
        -0.3118123412132263,
        0.1328125,
        0.5774374008178711,
        0.9131875038146973,
        2.586812973022461,
        2.922563314437866,
        3.3671875,
        3.8118128776550293,
        4.147562503814697,
    ];
    let kind = OpKind::InterpolateBicubic {
        in_h: 3,
        in_w: 4,
        out_h: 2,
        out_w: 5,
    };
    assert_close(&ok(kind, &[&t(&[12, 1], &table)]), &[10, 1], &want, 1e-6);
}

#[test]
fn bicubic_contract_violations() {
    let kind = OpKind::InterpolateBicubic {
        in_h: 4,
        in_w: 4,
        out_h: 5,
        out_w: 5,
    };
    assert_invalid(
        run(kind.clone(), &[&t(&[15, 2], &[0.; 30])]),
        &["[15, 2]", "4×4"],
    );
    assert_invalid(run(kind, &[&t(&[16], &[0.; 16])]), &["rank 2"]);
}

// ---- norms ---------------------------------------------------------------------------------

#[test]
fn layer_norm_of_1_2_3_4() {
    // mean 2.5, biased var (2.25+0.25+0.25+2.25)/4 = 1.25, (x−μ)/√1.25 = ±1.3416408, ±0.4472136.
    // weight [1,1,2,1], bias [0,0,0,1].
    let x = t(&[1, 4], &[1., 2., 3., 4.]);
    let w = t(&[4], &[1., 1., 2., 1.]);
    let b = t(&[4], &[0., 0., 0., 1.]);
    let s = 1.25f64.sqrt();
    let want = [-1.5 / s, -0.5 / s, 2.0 * 0.5 / s, 1.5 / s + 1.0];
    assert_close(
        &ok(OpKind::LayerNorm { eps: 0.0 }, &[&x, &w, &b]),
        &[1, 4],
        &want,
        1e-6,
    );
    // eps inside the sqrt: a constant row gives exactly the bias.
    let c = t(&[4], &[3.; 4]);
    let y = ok(OpKind::LayerNorm { eps: 1e-6 }, &[&c, &w, &b]);
    assert_exact(&y, &[4], &[0., 0., 0., 1.]);
}

#[test]
fn rms_norm_with_offset() {
    // mean(x²) = 30/4 = 7.5, r = 1/√7.5; offset 1, w [0,1,−1,0.5] → scale [1,2,0,1.5].
    let x = t(&[1, 1, 4], &[1., 2., 3., 4.]);
    let w = t(&[4], &[0., 1., -1., 0.5]);
    let r = 1.0 / 7.5f64.sqrt();
    let want = [r, 4.0 * r, 0.0, 6.0 * r];
    let kind = OpKind::RmsNorm {
        eps: 0.0,
        offset: 1.0,
    };
    assert_close(&ok(kind, &[&x, &w]), &[1, 1, 4], &want, 1e-6);
}

#[test]
fn norm_contract_violations() {
    let x = t(&[2, 4], &[0.; 8]);
    let w3 = t(&[3], &[0.; 3]);
    let w4 = t(&[4], &[0.; 4]);
    assert_invalid(
        run(OpKind::LayerNorm { eps: 1e-6 }, &[&x, &w3, &w4]),
        &["weight", "[4]", "[3]"],
    );
    assert_invalid(
        run(OpKind::LayerNorm { eps: 1e-6 }, &[&x, &w4, &w3]),
        &["bias", "[3]"],
    );
    let kind = OpKind::RmsNorm {
        eps: 1e-6,
        offset: 1.0,
    };
    assert_invalid(run(kind.clone(), &[&x, &w3]), &["weight", "[2, 4]"]);
    assert_invalid(run(kind, &[&x]), &["expected 2 inputs"]);
}

// ---- element-wise --------------------------------------------------------------------------

#[test]
fn gelu_and_silu_at_known_points() {
    let x = t(&[4], &[0., 1., -1., 3.]);
    // erf form: 0.5·x·(1 + erf(x/√2)); Φ(1) = 0.8413447460685429, Φ(3) = 0.9986501019683699.
    let y = ok(
        OpKind::Gelu {
            approx: GeluApprox::None,
        },
        &[&x],
    );
    let phi1 = 0.841_344_746_068_542_9;
    assert_close(
        &y,
        &[4],
        &[0.0, phi1, -(1.0 - phi1), 3.0 * 0.998_650_101_968_369_9],
        1e-7,
    );
    // tanh form: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
    let g = |v: f64| {
        0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())
    };
    let y = ok(
        OpKind::Gelu {
            approx: GeluApprox::Tanh,
        },
        &[&x],
    );
    // gelu_tanh and silu are evaluated in f32 in torch's operation order: a few ulp (≤ 2.4e-7
    // here, |y| < 4) from the exact value.
    assert_close(&y, &[4], &[0.0, g(1.0), g(-1.0), g(3.0)], 2.5e-7);
    assert!((g(1.0) - 0.841_191_990_608_276_8).abs() < 1e-12);
    // silu(x) = x / (1 + e^−x): silu(1) = 0.7310585786300049, silu(−1) = −0.2689414213699951.
    let y = ok(OpKind::Silu, &[&x]);
    assert_close(
        &y,
        &[4],
        &[
            0.0,
            0.731_058_578_630_004_9,
            -0.268_941_421_369_995_1,
            3.0 / (1.0 + (-3.0f64).exp()),
        ],
        2.5e-7,
    );
}

#[test]
fn add_and_mul_broadcast_numpy_style() {
    // a [2,1,3] + b [2,1] → [2,2,3]; out[i,j,k] = a[i,0,k] + b[j,0].
    let a = t(&[2, 1, 3], &[1., 2., 3., 10., 20., 30.]);
    let b = t(&[2, 1], &[100., 200.]);
    let y = ok(OpKind::Add, &[&a, &b]);
    assert_exact(
        &y,
        &[2, 2, 3],
        &[
            101., 102., 103., 201., 202., 203., 110., 120., 130., 210., 220., 230.,
        ],
    );
    let y = ok(OpKind::Mul, &[&b, &a]);
    assert_exact(
        &y,
        &[2, 2, 3],
        &[
            100., 200., 300., 200., 400., 600., 1000., 2000., 3000., 2000., 4000., 6000.,
        ],
    );
    // Scalar (rank 0) against a vector; same-shape fast path.
    let s = t(&[], &[2.0]);
    let v = t(&[3], &[1., 2., 3.]);
    assert_exact(&ok(OpKind::Mul, &[&v, &s]), &[3], &[2., 4., 6.]);
    assert_exact(&ok(OpKind::Add, &[&v, &v]), &[3], &[2., 4., 6.]);
    assert_exact(
        &ok(OpKind::MulScalar { value: -0.5 }, &[&v]),
        &[3],
        &[-0.5, -1., -1.5],
    );
}

#[test]
fn eltwise_contract_violations() {
    let a = t(&[2, 3], &[0.; 6]);
    let b = t(&[4, 3], &[0.; 12]);
    assert_invalid(
        run(OpKind::Add, &[&a, &b]),
        &["[2, 3]", "[4, 3]", "broadcast"],
    );
    assert_invalid(run(OpKind::Mul, &[&a]), &["expected 2 inputs"]);
    assert_invalid(
        run(OpKind::MulScalar { value: 1.0 }, &[&a, &a]),
        &["expected 1"],
    );
    assert_invalid(
        run(
            OpKind::Gelu {
                approx: GeluApprox::Tanh,
            },
            &[],
        ),
        &["expected 1"],
    );
    assert_invalid(run(OpKind::Silu, &[&a, &b]), &["got 2"]);
}

// ---- data movement -------------------------------------------------------------------------

#[test]
fn embedding_picks_rows_and_rejects_bad_ids() {
    let table = t(&[3, 2], &[0., 1., 10., 11., 20., 21.]);
    let ids = t(&[1, 3], &[2., 0., 2.]);
    assert_exact(
        &ok(OpKind::Embedding, &[&ids, &table]),
        &[1, 3, 2],
        &[20., 21., 0., 1., 20., 21.],
    );
    let bad = t(&[2], &[1., 3.]);
    assert_invalid(run(OpKind::Embedding, &[&bad, &table]), &["id 3", "3-row"]);
    let neg = t(&[1], &[-1.]);
    assert_invalid(run(OpKind::Embedding, &[&neg, &table]), &["id -1"]);
    let frac = t(&[1], &[0.5]);
    assert_invalid(run(OpKind::Embedding, &[&frac, &table]), &["id 0.5"]);
    assert_invalid(run(OpKind::Embedding, &[&ids, &ids]), &["table"]);
}

#[test]
fn concat_slice_reshape() {
    let a = t(&[1, 2, 2], &[1., 2., 3., 4.]);
    let b = t(&[1, 1, 2], &[5., 6.]);
    let c = ok(OpKind::Concat { dim: 1 }, &[&a, &b]);
    assert_exact(&c, &[1, 3, 2], &[1., 2., 3., 4., 5., 6.]);
    let c2 = ok(OpKind::Concat { dim: 2 }, &[&a, &a]);
    assert_exact(&c2, &[1, 2, 4], &[1., 2., 1., 2., 3., 4., 3., 4.]);
    let s = ok(
        OpKind::Slice {
            dim: 1,
            start: 1,
            end: 3,
        },
        &[&c],
    );
    assert_exact(&s, &[1, 2, 2], &[3., 4., 5., 6.]);
    let s = ok(
        OpKind::Slice {
            dim: 2,
            start: 1,
            end: 2,
        },
        &[&c],
    );
    assert_exact(&s, &[1, 3, 1], &[2., 4., 6.]);
    let r = ok(OpKind::Reshape { shape: vec![3, 2] }, &[&c]);
    assert_exact(&r, &[3, 2], &[1., 2., 3., 4., 5., 6.]);
}

#[test]
fn concat_slice_reshape_contract_violations() {
    let a = t(&[1, 2, 2], &[0.; 4]);
    let b = t(&[1, 2, 3], &[0.; 6]);
    assert_invalid(
        run(OpKind::Concat { dim: 1 }, &[&a, &b]),
        &["[1, 2, 2]", "[1, 2, 3]"],
    );
    assert_invalid(
        run(OpKind::Concat { dim: 3 }, &[&a, &a]),
        &["dim 3", "rank 3"],
    );
    assert_invalid(run(OpKind::Concat { dim: 0 }, &[]), &["at least 1"]);
    let sl = |dim, start, end| OpKind::Slice { dim, start, end };
    assert_invalid(run(sl(1, 1, 3), &[&a]), &["1..3", "[1, 2, 2]"]);
    assert_invalid(run(sl(1, 2, 1), &[&a]), &["2..1"]);
    assert_invalid(run(sl(5, 0, 1), &[&a]), &["dim 5"]);
    assert_invalid(
        run(OpKind::Reshape { shape: vec![3] }, &[&a]),
        &["[1, 2, 2]", "4 elements", "[3]"],
    );
}

#[test]
fn expand_repeat_interleave_full() {
    // [1,3] → [2,2,3]: new leading axis, size-1 axis stretched.
    let x = t(&[1, 3], &[1., 2., 3.]);
    let y = ok(
        OpKind::Expand {
            shape: vec![2, 2, 3],
        },
        &[&x],
    );
    assert_exact(
        &y,
        &[2, 2, 3],
        &[1., 2., 3., 1., 2., 3., 1., 2., 3., 1., 2., 3.],
    );
    let m = t(&[1, 2], &[1., 0.]);
    let r = ok(OpKind::RepeatInterleave { dim: 1, repeats: 3 }, &[&m]);
    assert_exact(&r, &[1, 6], &[1., 1., 1., 0., 0., 0.]);
    let m2 = t(&[2, 2], &[1., 2., 3., 4.]);
    let r = ok(OpKind::RepeatInterleave { dim: 0, repeats: 2 }, &[&m2]);
    assert_exact(&r, &[4, 2], &[1., 2., 1., 2., 3., 4., 3., 4.]);
    let f = ok(
        OpKind::Full {
            shape: vec![1, 2],
            value: -0.25,
        },
        &[],
    );
    assert_exact(&f, &[1, 2], &[-0.25, -0.25]);
}

#[test]
fn expand_repeat_interleave_full_contract_violations() {
    let x = t(&[2], &[1., 2.]);
    assert_invalid(
        run(OpKind::Expand { shape: vec![3] }, &[&x]),
        &["cannot expand [2] to [3]"],
    );
    assert_invalid(
        run(OpKind::RepeatInterleave { dim: 1, repeats: 2 }, &[&x]),
        &["dim 1", "[2]"],
    );
    assert_invalid(
        run(
            OpKind::Full {
                shape: vec![1],
                value: 0.0,
            },
            &[&x],
        ),
        &["expected 0 inputs"],
    );
    assert_invalid(
        run(
            OpKind::Full {
                shape: vec![usize::MAX, 4],
                value: 0.0,
            },
            &[],
        ),
        &["too large"],
    );
}

// ---- rope ----------------------------------------------------------------------------------

#[test]
fn rope_is_identity_at_position_zero() {
    let x = t(&[1, 1, 8], &lcg(8, 3));
    let pos = t(&[1, 1], &[0.]);
    let y = ok(
        OpKind::Rope {
            theta: 10000.0,
            head_dim: 4,
        },
        &[&x, &pos],
    );
    assert_exact(&y, &[1, 1, 8], &x.as_slice());
}

#[test]
fn rope_at_known_angles() {
    // head_dim 4, θ = 10000: inv_freq = [1, 10000^(−1/2) = 0.01]. Two heads packed.
    // Position 1: angles [1, 0.01]. Head 0 x = [1,0,0,0] → [cos 1, 0, sin 1, 0];
    // head 1 x = [0,0,1,0] → [−sin 1, 0, cos 1, 0].
    // Position 100: angles [100, 1]. Head 0 x = [0,1,0,0] → [0, cos 1, 0, sin 1];
    // head 1 x = [0,0,0,2] → [0, −2 sin 1, 0, 2 cos 1].
    let x = t(
        &[2, 1, 8],
        &[
            1., 0., 0., 0., 0., 0., 1., 0., //
            0., 1., 0., 0., 0., 0., 0., 2.,
        ],
    );
    let pos = t(&[2, 1], &[1., 100.]);
    let (c, s) = (1f64.cos(), 1f64.sin());
    let y = ok(
        OpKind::Rope {
            theta: 10000.0,
            head_dim: 4,
        },
        &[&x, &pos],
    );
    assert_close(
        &y,
        &[2, 1, 8],
        &[
            c,
            0.,
            s,
            0.,
            -s,
            0.,
            c,
            0., //
            0.,
            c,
            0.,
            s,
            0.,
            -2. * s,
            0.,
            2. * c,
        ],
        1e-7,
    );
}

#[test]
fn rope_contract_violations() {
    let x = t(&[1, 2, 6], &[0.; 12]);
    let pos = t(&[1, 2], &[0.; 2]);
    let rope = |head_dim| OpKind::Rope {
        theta: 10000.0,
        head_dim,
    };
    assert_invalid(run(rope(3), &[&x, &pos]), &["head_dim 3", "[1, 2, 6]"]);
    assert_invalid(run(rope(4), &[&x, &pos]), &["head_dim 4"]);
    let bad_pos = t(&[2], &[0.; 2]);
    assert_invalid(run(rope(2), &[&x, &bad_pos]), &["positions [2]", "[1, 2]"]);
    assert_invalid(run(rope(2), &[&pos, &pos]), &["x", "rank 3"]);
}

// ---- sdpa ----------------------------------------------------------------------------------

fn sdpa_kind(q_heads: usize, kv_heads: usize, head_dim: usize, scale: f32) -> OpKind {
    OpKind::Sdpa {
        q_heads,
        kv_heads,
        head_dim,
        scale,
    }
}

#[test]
fn sdpa_softmax_rows_with_mask() {
    // One head, hd 2. q = [[1,0],[0,1]], k = [[1,0],[0,1],[1,1]], v = [[1,2],[3,4],[5,6]].
    // Scores: row 0 = [1,0,1]; row 1 = [0,1,1], key 2 masked in row 1.
    // Row 0: p = [e, 1, e]/(2e+1) → o = [6e+3, 8e+4]/(2e+1).
    // Row 1: p = [1, e, 0]/(1+e) → o = [1+3e, 2+4e]/(1+e).
    let q = t(&[1, 2, 2], &[1., 0., 0., 1.]);
    let k = t(&[1, 3, 2], &[1., 0., 0., 1., 1., 1.]);
    let v = t(&[1, 3, 2], &[1., 2., 3., 4., 5., 6.]);
    let mv = -2.381_976_3e38f32;
    let mask = t(&[1, 1, 2, 3], &[0., 0., 0., 0., 0., mv]);
    let want = [
        (6. * E + 3.) / (2. * E + 1.),
        (8. * E + 4.) / (2. * E + 1.),
        (1. + 3. * E) / (1. + E),
        (2. + 4. * E) / (1. + E),
    ];
    let y = ok(sdpa_kind(1, 1, 2, 1.0), &[&q, &k, &v, &mask]);
    assert_close(&y, &[1, 2, 2], &want, 2e-6);
    // The same mask as [T, S] and [1, 1, T, S] broadcasts identically.
    let mask2 = t(&[2, 3], &[0., 0., 0., 0., 0., mv]);
    assert_close(
        &ok(sdpa_kind(1, 1, 2, 1.0), &[&q, &k, &v, &mask2]),
        &[1, 2, 2],
        &want,
        2e-6,
    );
    // Scale: q·kᵀ·scale with q doubled and scale 0.5 is the same.
    let q2 = t(&[1, 2, 2], &[2., 0., 0., 2.]);
    assert_close(
        &ok(sdpa_kind(1, 1, 2, 0.5), &[&q2, &k, &v, &mask]),
        &[1, 2, 2],
        &want,
        2e-6,
    );
}

#[test]
fn sdpa_fully_masked_row_is_mean_of_values() {
    let q = t(&[1, 1, 2], &[1., 0.]);
    let k = t(&[1, 3, 2], &[1., 0., 0., 1., 1., 1.]);
    let v = t(&[1, 3, 2], &[1., 2., 3., 4., 5., 6.]);
    let mv = -2.381_976_3e38f32;
    let mask = t(&[1, 3], &[mv, mv, mv]);
    let y = ok(sdpa_kind(1, 1, 2, 1.0), &[&q, &k, &v, &mask]);
    assert_close(&y, &[1, 1, 2], &[3.0, 4.0], 1e-6);
}

#[test]
fn sdpa_shares_kv_heads_across_query_groups() {
    // 4 query heads, 2 kv heads, hd 2: heads 0,1 use kv 0; heads 2,3 use kv 1. With every query
    // zero, softmax is uniform → each head outputs the mean of its kv head's values.
    let (b, t_len, s) = (2, 3, 4);
    let q = t(&[b, t_len, 8], &vec![0.0; b * t_len * 8]);
    let k = t(&[b, s, 4], &lcg(b * s * 4, 9));
    // v: kv head 0 = [1, 2] everywhere, kv head 1 = [10 + key, −1].
    let mut vd = Vec::new();
    for _ in 0..b {
        for key in 0..s {
            vd.extend_from_slice(&[1., 2., 10. + key as f32, -1.]);
        }
    }
    let v = t(&[b, s, 4], &vd);
    let y = ok(sdpa_kind(4, 2, 2, 0.7), &[&q, &k, &v]);
    let row = [1., 2., 1., 2., 11.5, -1., 11.5, -1.];
    let want: Vec<f64> = (0..b * t_len).flat_map(|_| row).collect();
    assert_close(&y, &[b, t_len, 8], &want, 1e-6);
}

#[test]
fn sdpa_matches_naive_attention_in_parallel_and_serial() {
    let (b, t_len, s, hq, hkv, hd) = (2, 5, 7, 4, 2, 3);
    let q = lcg(b * t_len * hq * hd, 11);
    let k = lcg(b * s * hkv * hd, 12);
    let v = lcg(b * s * hkv * hd, 13);
    let m = lcg(b * t_len * s, 14);
    let scale = 0.6f64;
    let mut want = vec![0.0f64; b * t_len * hq * hd];
    for bi in 0..b {
        for h in 0..hq {
            let g = h / (hq / hkv);
            for ti in 0..t_len {
                let sc: Vec<f64> = (0..s)
                    .map(|si| {
                        let dot: f64 = (0..hd)
                            .map(|j| {
                                q[(bi * t_len + ti) * hq * hd + h * hd + j] as f64
                                    * k[(bi * s + si) * hkv * hd + g * hd + j] as f64
                            })
                            .sum();
                        dot * scale + m[(bi * t_len + ti) * s + si] as f64
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|x| (x - mx).exp()).sum();
                for j in 0..hd {
                    want[(bi * t_len + ti) * hq * hd + h * hd + j] = (0..s)
                        .map(|si| {
                            (sc[si] - mx).exp() / z
                                * v[(bi * s + si) * hkv * hd + g * hd + j] as f64
                        })
                        .sum();
                }
            }
        }
    }
    let inputs = [
        t(&[b, t_len, hq * hd], &q),
        t(&[b, s, hkv * hd], &k),
        t(&[b, s, hkv * hd], &v),
        t(&[b, 1, t_len, s], &m),
    ];
    let refs: Vec<&Tensor> = inputs.iter().collect();
    for threads in [1, 2] {
        let y = CpuBackend::with_threads(threads)
            .exec(
                &Op::new("sdpa", sdpa_kind(hq, hkv, hd, scale as f32)),
                &refs,
            )
            .expect("sdpa");
        assert_close(&y, &[b, t_len, hq * hd], &want, 1e-6);
    }
}

#[test]
fn sdpa_contract_violations() {
    let q = t(&[1, 2, 4], &[0.; 8]);
    let k = t(&[1, 3, 2], &[0.; 6]);
    assert_invalid(
        run(sdpa_kind(2, 1, 2, 1.0), &[&q, &k]),
        &["expected 3 to 4 inputs"],
    );
    assert_invalid(
        run(sdpa_kind(3, 2, 2, 1.0), &[&q, &k, &k]),
        &["q_heads 3", "kv_heads 2"],
    );
    assert_invalid(
        run(sdpa_kind(2, 1, 3, 1.0), &[&q, &k, &k]),
        &["[1, 2, 4]", "[1, 3, 2]"],
    );
    let v_bad = t(&[1, 4, 2], &[0.; 8]);
    assert_invalid(
        run(sdpa_kind(2, 1, 2, 1.0), &[&q, &k, &v_bad]),
        &["v [1, 4, 2]"],
    );
    let mask_bad = t(&[1, 1, 2, 4], &[0.; 8]);
    assert_invalid(
        run(sdpa_kind(2, 1, 2, 1.0), &[&q, &k, &k, &mask_bad]),
        &["mask [1, 1, 2, 4]", "[1, 1, 2, 3]"],
    );
    assert_invalid(run(sdpa_kind(2, 1, 2, 1.0), &[&k, &k, &k]), &["[1, 3, 2]"]);
}

// ---- masks, positions, time embedding ------------------------------------------------------

#[test]
fn attn_mask_2d_suffix_pattern_with_padding() {
    // pad [1,1,1,0], ar [1,1,0,0] → c = [1,2,2,2].
    // q0 (c=1) sees only k0; q1, q2 (c=2) see k0..k2 (k3 is padding); q3 is padding → all masked.
    let m = -1e30f32;
    let pad = t(&[1, 4], &[1., 1., 1., 0.]);
    let ar = t(&[1, 4], &[1., 1., 0., 0.]);
    let y = ok(OpKind::AttnMask2d { mask_value: m }, &[&pad, &ar]);
    assert_exact(
        &y,
        &[1, 1, 4, 4],
        &[
            0., m, m, m, //
            0., 0., 0., m, //
            0., 0., 0., m, //
            m, m, m, m,
        ],
    );
    // pi0 full sequence in miniature: prefix [valid, valid, pad] (ar 0), state (ar 1), two
    // actions (ar 1, 0): c = [0,0,0,1,2,2].
    let pad = t(&[1, 6], &[1., 1., 0., 1., 1., 1.]);
    let ar = t(&[1, 6], &[0., 0., 0., 1., 1., 0.]);
    let y = ok(OpKind::AttnMask2d { mask_value: m }, &[&pad, &ar]);
    assert_exact(
        &y,
        &[1, 1, 6, 6],
        &[
            0., 0., m, m, m, m, //
            0., 0., m, m, m, m, //
            m, m, m, m, m, m, //
            0., 0., m, 0., m, m, //
            0., 0., m, 0., 0., 0., //
            0., 0., m, 0., 0., 0.,
        ],
    );
}

#[test]
fn positions_with_padding() {
    // cumsum([1,1,0,1]) − 1 = [0,1,1,2]; a padded first token gives −1.
    let pad = t(&[2, 4], &[1., 1., 0., 1., 0., 1., 1., 1.]);
    assert_exact(
        &ok(OpKind::Positions, &[&pad]),
        &[2, 4],
        &[0., 1., 1., 2., -1., 0., 1., 2.],
    );
}

#[test]
fn mask_and_positions_contract_violations() {
    let pad = t(&[1, 4], &[1.; 4]);
    let ar = t(&[1, 3], &[0.; 3]);
    let k = OpKind::AttnMask2d { mask_value: -1.0 };
    assert_invalid(run(k.clone(), &[&pad, &ar]), &["[1, 4]", "[1, 3]"]);
    let flat = t(&[4], &[1.; 4]);
    assert_invalid(run(k, &[&flat, &flat]), &["pad", "rank 2"]);
    assert_invalid(run(OpKind::Positions, &[&flat]), &["rank 2", "[4]"]);
}

#[test]
fn time_embed_at_zero_one_and_half() {
    // dim 4, periods [0.004, 4.0] → ω = [500π, π/2]. Layout [sin ω0 t, sin ω1 t, cos ω0 t, cos ω1 t].
    // t=0 → [0,0,1,1]; t=1 → [sin 500π ≈ 0, 1, 1, cos π/2 ≈ 0]; t=0.5 → [0, √½, 1, √½].
    let kind = OpKind::TimeEmbed {
        dim: 4,
        min_period: 0.004,
        max_period: 4.0,
    };
    let ts = t(&[3], &[0.0, 1.0, 0.5]);
    let h = std::f64::consts::FRAC_1_SQRT_2;
    assert_close(
        &ok(kind, &[&ts]),
        &[3, 4],
        &[0., 0., 1., 1., 0., 1., 1., 0., 0., h, 1., h],
        1e-6,
    );
    // 8 dims: fractions [0, 1/3, 2/3, 1] → periods 0.004·1000^f = [0.004, 0.04, 0.4, 4].
    let kind = OpKind::TimeEmbed {
        dim: 8,
        min_period: 0.004,
        max_period: 4.0,
    };
    let y = ok(kind, &[&t(&[1], &[0.01])]);
    let arg = |p: f64| 2.0 * std::f64::consts::PI * 0.01 / p;
    let ps = [0.004, 0.04, 0.4, 4.0];
    let want: Vec<f64> = ps
        .iter()
        .map(|&p| arg(p).sin())
        .chain(ps.iter().map(|&p| arg(p).cos()))
        .collect();
    assert_close(&y, &[1, 8], &want, 1e-6);
}

#[test]
fn time_embed_contract_violations() {
    let ts = t(&[1], &[1.0]);
    let te = |dim, min_period| OpKind::TimeEmbed {
        dim,
        min_period,
        max_period: 4.0,
    };
    assert_invalid(run(te(3, 0.004), &[&ts]), &["dim 3"]);
    assert_invalid(run(te(4, 0.0), &[&ts]), &["periods"]);
    assert_invalid(run(te(4, 0.004), &[&t(&[1, 1], &[1.0])]), &["rank 1"]);
}

/// Every op kind rejects a wrong number of inputs with `Invalid` (never a panic).
#[test]
fn every_kind_checks_arity() {
    let x = t(&[1, 2], &[1., 1.]);
    let kinds = [
        (OpKind::Linear, 1),
        (OpKind::Conv2dPatch { patch: 1 }, 1),
        (
            OpKind::InterpolateBicubic {
                in_h: 1,
                in_w: 1,
                out_h: 1,
                out_w: 1,
            },
            2,
        ),
        (OpKind::LayerNorm { eps: 1e-6 }, 2),
        (
            OpKind::RmsNorm {
                eps: 1e-6,
                offset: 1.0,
            },
            1,
        ),
        (OpKind::Add, 3),
        (OpKind::Mul, 1),
        (OpKind::MulScalar { value: 1.0 }, 0),
        (
            OpKind::Gelu {
                approx: GeluApprox::None,
            },
            2,
        ),
        (OpKind::Silu, 0),
        (OpKind::Embedding, 1),
        (OpKind::Concat { dim: 0 }, 0),
        (
            OpKind::Slice {
                dim: 0,
                start: 0,
                end: 1,
            },
            2,
        ),
        (OpKind::Reshape { shape: vec![2] }, 0),
        (OpKind::Expand { shape: vec![2] }, 2),
        (OpKind::RepeatInterleave { dim: 0, repeats: 1 }, 0),
        (
            OpKind::Full {
                shape: vec![1],
                value: 0.0,
            },
            1,
        ),
        (
            OpKind::Rope {
                theta: 1.0,
                head_dim: 2,
            },
            1,
        ),
        (sdpa_kind(1, 1, 2, 1.0), 5),
        (OpKind::AttnMask2d { mask_value: -1.0 }, 1),
        (OpKind::Positions, 2),
        (
            OpKind::TimeEmbed {
                dim: 4,
                min_period: 1.0,
                max_period: 2.0,
            },
            0,
        ),
    ];
    for (kind, n) in kinds {
        let inputs: Vec<&Tensor> = (0..n).map(|_| &x).collect();
        let name = kind.as_str();
        match run(kind, &inputs) {
            Err(OpError::Invalid { kind, message }) => {
                assert_eq!(kind, name);
                assert!(message.contains("inputs"), "{name}: {message}");
            }
            other => panic!("{name} with {n} inputs: {other:?}"),
        }
    }
}

/// Random shapes, attributes and arities: every call returns `Ok` or `Err`, never panics, and
/// an `Ok` output holds exactly as many elements as its shape says.
#[test]
fn random_inputs_never_panic() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n) as usize
    };
    let backend = CpuBackend::with_threads(2);
    for _ in 0..50_000 {
        let shape = |next: &mut dyn FnMut(u64) -> usize| -> Vec<usize> {
            (0..next(5)).map(|_| next(4)).collect()
        };
        let kind = match next(22) {
            0 => OpKind::Linear,
            1 => OpKind::Conv2dPatch { patch: next(3) },
            2 => OpKind::InterpolateBicubic {
                in_h: next(3),
                in_w: next(3),
                out_h: next(4),
                out_w: next(4),
            },
            3 => OpKind::LayerNorm { eps: 1e-6 },
            4 => OpKind::RmsNorm {
                eps: 1e-6,
                offset: 1.0,
            },
            5 => OpKind::Add,
            6 => OpKind::Mul,
            7 => OpKind::MulScalar { value: 2.0 },
            8 => OpKind::Gelu {
                approx: GeluApprox::None,
            },
            9 => OpKind::Silu,
            10 => OpKind::Embedding,
            11 => OpKind::Concat { dim: next(4) },
            12 => OpKind::Slice {
                dim: next(4),
                start: next(3),
                end: next(4),
            },
            13 => OpKind::Reshape {
                shape: shape(&mut next),
            },
            14 => OpKind::Expand {
                shape: shape(&mut next),
            },
            15 => OpKind::RepeatInterleave {
                dim: next(4),
                repeats: next(3),
            },
            16 => OpKind::Full {
                shape: shape(&mut next),
                value: 1.0,
            },
            17 => OpKind::Rope {
                theta: 10000.0,
                head_dim: next(5),
            },
            18 => sdpa_kind(next(3), next(3), next(3), 0.5),
            19 => OpKind::AttnMask2d { mask_value: -1e9 },
            20 => OpKind::Positions,
            _ => OpKind::TimeEmbed {
                dim: next(5),
                min_period: 0.004,
                max_period: 4.0,
            },
        };
        // Half the cases use shapes built for the kind (dims may be 0), sometimes with one
        // dim perturbed; the rest are arbitrary.
        let mut shapes: Vec<Vec<usize>> = match (next(2), &kind) {
            (0, OpKind::Conv2dPatch { patch }) => {
                let (c, d) = (next(3), next(3));
                vec![
                    vec![next(2), c, next(5), next(5)],
                    vec![d, c, *patch, *patch],
                    vec![d],
                ]
            }
            (0, OpKind::LayerNorm { .. }) => {
                let d = next(4);
                vec![vec![next(3), d], vec![d], vec![d]]
            }
            (0, OpKind::Rope { head_dim, .. }) => {
                let (b, t) = (next(3), next(3));
                vec![vec![b, t, head_dim * next(3)], vec![b, t]]
            }
            (
                0,
                OpKind::Sdpa {
                    q_heads,
                    kv_heads,
                    head_dim,
                    ..
                },
            ) => {
                let (b, t, sl) = (next(3), next(3), next(3));
                let kv = vec![b, sl, kv_heads * head_dim];
                let mut v = vec![vec![b, t, q_heads * head_dim], kv.clone(), kv];
                match next(3) {
                    0 => v.push(vec![b, 1, t, sl]),
                    1 => v.push(vec![t, sl]),
                    _ => {}
                }
                v
            }
            (0, OpKind::AttnMask2d { .. }) => {
                let (b, l) = (next(3), next(4));
                vec![vec![b, l], vec![b, l]]
            }
            _ => (0..next(5)).map(|_| shape(&mut next)).collect(),
        };
        if next(3) == 0 {
            let i = next(shapes.len().max(1) as u64);
            if let Some(sh) = shapes.get_mut(i) {
                if !sh.is_empty() {
                    let j = next(sh.len() as u64);
                    sh[j] = next(4);
                }
            }
        }
        let tensors: Vec<Tensor> = shapes
            .iter()
            .map(|sh| {
                let n: usize = sh.iter().product();
                let data = (0..n).map(|_| next(5) as f32 - 1.0).collect();
                Tensor::from_vec(sh, data).expect("shape")
            })
            .collect();
        let refs: Vec<&Tensor> = tensors.iter().collect();
        if let Ok(y) = backend.exec(&Op::new("fuzz", kind.clone()), &refs) {
            let n: usize = y.shape().iter().product();
            assert_eq!(y.len(), n, "{kind:?}");
        }
    }
}
