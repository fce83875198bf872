//! Metric invariants (property tests) and tolerance-file behaviour.

use pccscope::backend::OpClass;
use pccscope::harness::metrics::{compare, judge, CompareOpts, Degenerate, Metrics};
use pccscope::harness::thresholds::{Thresholds, ThresholdsError, Tolerance};
use pccscope::tensor::DType;
use proptest::prelude::*;

fn opts(dtype: DType) -> CompareOpts {
    CompareOpts {
        atol: 1e-6,
        rtol: 1e-5,
        dtype,
        top_k: 0,
    }
}

fn metrics(g: &[f32], d: &[f32]) -> Metrics {
    compare(g, d, &opts(DType::F32)).expect("same length")
}

/// PCC + rel-L2 gate as the matmul presets use.
fn pcc_gate() -> Tolerance {
    Tolerance::pcc_rel_l2(0.99999, 1e-4, 1e-6, 1e-5)
}

/// Values with a real spread (so PCC is well conditioned), lengths across several blocks.
fn spread_vec() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-100.0f32..100.0, 2..600).prop_filter("needs spread", |v| {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        var > 1e-2
    })
}

fn finite_f32() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("finite, below the largest", |v| {
            v.is_finite() && v.abs() < f32::MAX
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pcc_is_symmetric(g in spread_vec(), noise in prop::collection::vec(-1.0f32..1.0, 600)) {
        let d: Vec<f32> = g.iter().zip(&noise).map(|(&x, &e)| x + 5.0 * e).collect();
        let a = metrics(&g, &d).pcc.unwrap();
        let b = metrics(&d, &g).pcc.unwrap();
        prop_assert!((a - b).abs() <= 1e-12, "{a} vs {b}");
    }

    #[test]
    fn pcc_of_an_affine_map_is_plus_or_minus_one(
        g in spread_vec(),
        a in 0.01f64..100.0,
        t in -10.0f64..10.0,
        negate in any::<bool>(),
    ) {
        let a = if negate { -a } else { a };
        let d: Vec<f32> = g.iter().map(|&x| (a * x as f64 + a.abs() * t) as f32).collect();
        let r = metrics(&g, &d).pcc.unwrap();
        let want = if negate { -1.0 } else { 1.0 };
        prop_assert!((r - want).abs() <= 1e-9, "pcc {r}, want {want}");
    }

    #[test]
    fn cosine_of_a_positive_multiple_is_one(g in spread_vec(), a in 0.01f64..100.0) {
        let d: Vec<f32> = g.iter().map(|&x| (a * x as f64) as f32).collect();
        let c = metrics(&g, &d).cosine.unwrap();
        prop_assert!((c - 1.0).abs() <= 1e-9, "cosine {c}");
    }

    #[test]
    fn identical_tensors_have_zero_error(g in prop::collection::vec(finite_f32(), 1..9000)) {
        let m = metrics(&g, &g);
        prop_assert_eq!(m.rel_l2, 0.0);
        prop_assert_eq!(m.max_abs, 0.0);
        prop_assert_eq!(m.ulp_max, 0.0);
        prop_assert_eq!(m.allclose, 1.0);
        prop_assert!(judge(&m, &Tolerance::exact()).pass);
    }

    #[test]
    fn adjacent_f32_values_are_one_ulp_apart(g in prop::collection::vec(finite_f32(), 1..5000)) {
        // One step away from zero: always exactly one ULP of the golden's binade.
        let d: Vec<f32> = g.iter().map(|v| f32::from_bits(v.to_bits() + 1)).collect();
        let m = compare(&g, &d, &opts(DType::F32)).unwrap();
        prop_assert_eq!(m.ulp_max, 1.0);
    }

    #[test]
    fn adjacent_bf16_values_are_one_ulp_apart_in_bf16(bits in prop::collection::vec(any::<u16>(), 1..5000)) {
        let g: Vec<f32> = bits
            .iter()
            .map(|&b| f32::from_bits((b as u32) << 16))
            .filter(|v| v.is_finite() && f32::from_bits(v.to_bits() + 0x1_0000).is_finite())
            .collect();
        prop_assume!(!g.is_empty());
        let d: Vec<f32> = g.iter().map(|v| f32::from_bits(v.to_bits() + 0x1_0000)).collect();
        let m = compare(&g, &d, &opts(DType::Bf16)).unwrap();
        prop_assert_eq!(m.ulp_max, 1.0);
        // The same pair measured in f32 is 2^16 ULP apart.
        let m = compare(&g, &d, &opts(DType::F32)).unwrap();
        prop_assert_eq!(m.ulp_max, 65536.0);
    }

    #[test]
    fn top_k_returns_the_worst_indices(
        errs in prop::collection::vec(prop_oneof![Just(0.0f32), -8.0f32..8.0], 1..9000),
        k in 1usize..20,
    ) {
        let g: Vec<f32> = (0..errs.len()).map(|i| (i % 13) as f32).collect();
        let d: Vec<f32> = g.iter().zip(&errs).map(|(&x, &e)| x + e).collect();
        let mut want: Vec<(f64, usize)> = g
            .iter()
            .zip(&d)
            .enumerate()
            .map(|(i, (&a, &b))| ((b as f64 - a as f64).abs(), i))
            .filter(|&(e, _)| e > 0.0)
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        want.truncate(k);
        let m = compare(&g, &d, &CompareOpts { top_k: k, ..opts(DType::F32) }).unwrap();
        let got: Vec<usize> = m.worst.iter().map(|w| w.index).collect();
        let want_idx: Vec<usize> = want.iter().map(|w| w.1).collect();
        prop_assert_eq!(got, want_idx);
        for w in &m.worst {
            prop_assert_eq!(w.golden, g[w.index]);
            prop_assert_eq!(w.device, d[w.index]);
        }
    }

    #[test]
    fn nan_in_the_device_is_counted_and_fails(g in spread_vec(), at in any::<prop::sample::Index>()) {
        let mut d = g.clone();
        let i = at.index(d.len());
        d[i] = f32::NAN;
        let m = metrics(&g, &d);
        prop_assert_eq!(m.nan, 1);
        prop_assert_eq!(m.max_abs, f64::INFINITY);
        let j = judge(&m, &pcc_gate());
        prop_assert!(!j.pass);
        prop_assert!(j.reason.unwrap().contains("NaN"));
    }

    #[test]
    fn nan_in_both_at_the_same_place_is_not_a_failure(g in spread_vec(), at in any::<prop::sample::Index>()) {
        let mut g = g;
        let i = at.index(g.len());
        g[i] = f32::NAN;
        let d = g.clone();
        let m = metrics(&g, &d);
        prop_assert_eq!((m.nan, m.golden_nan), (1, 1));
        prop_assert_eq!(m.max_abs, 0.0);
        prop_assert_eq!(m.allclose, 1.0);
        prop_assert!(judge(&m, &pcc_gate()).pass);
        prop_assert!(judge(&m, &Tolerance::exact()).pass);
    }

    #[test]
    fn fast_and_slow_blocks_agree(g in prop::collection::vec(-3.0f32..3.0, 4096..20000), at in any::<prop::sample::Index>()) {
        // A NaN matched on both sides sends one block down the slow path; metrics must not move
        // beyond rounding of the sums.
        let d: Vec<f32> = g.iter().map(|&x| x * 1.0001 + 1e-4).collect();
        let clean = metrics(&g, &d);
        let (mut g2, mut d2) = (g.clone(), d.clone());
        let i = at.index(g.len());
        g2.insert(i, f32::NAN);
        d2.insert(i, f32::NAN);
        let poisoned = metrics(&g2, &d2);
        prop_assert_eq!(poisoned.max_abs, clean.max_abs);
        prop_assert_eq!(poisoned.ulp_max, clean.ulp_max);
        prop_assert!((poisoned.pcc.unwrap() - clean.pcc.unwrap()).abs() < 1e-12);
        prop_assert!((poisoned.rel_l2 - clean.rel_l2).abs() <= 1e-9 * clean.rel_l2);
    }
}

#[test]
fn inf_against_finite_is_a_mismatch() {
    let g = [1.0, 2.0, 3.0, 4.0];
    let m = metrics(&g, &[1.0, f32::INFINITY, 3.0, 4.0]);
    assert_eq!((m.inf, m.golden_inf), (1, 0));
    assert_eq!(m.max_abs, f64::INFINITY);
    assert_eq!(m.rel_l2, f64::INFINITY);
    assert_eq!(m.allclose, 0.75);
    let j = judge(&m, &pcc_gate());
    assert!(!j.pass);
    assert!(j.reason.unwrap().contains("non-finite mismatch"));

    // Finite device against an infinite golden, and opposite infinities, are mismatches too.
    let m = metrics(&[1.0, f32::INFINITY, 3.0], &[1.0, 2.0, 3.0]);
    assert_eq!(m.max_abs, f64::INFINITY);
    let m = metrics(&[1.0, f32::INFINITY, 3.0], &[1.0, f32::NEG_INFINITY, 3.0]);
    assert_eq!(m.max_abs, f64::INFINITY);
    // The same infinity on both sides is an exact match.
    let m = metrics(&[1.0, f32::INFINITY, 3.0], &[1.0, f32::INFINITY, 3.0]);
    assert_eq!(
        (m.max_abs, m.allclose, m.golden_inf, m.inf),
        (0.0, 1.0, 1, 1)
    );
    assert!(judge(&m, &Tolerance::exact()).pass);
}

#[test]
fn constant_tensors_fall_back_to_allclose() {
    let g = vec![0.5f32; 10_000];
    let m = metrics(&g, &g);
    assert_eq!(m.pcc, None);
    assert_eq!(m.degenerate, Some(Degenerate::Constant));
    assert!(judge(&m, &pcc_gate()).pass);

    // A constant golden against a noisy device: PCC undefined, allclose decides.
    let d: Vec<f32> = (0..10_000).map(|i| 0.5 + (i % 7) as f32 * 1e-3).collect();
    let m = metrics(&g, &d);
    assert_eq!(m.degenerate, Some(Degenerate::Constant));
    let j = judge(&m, &pcc_gate());
    assert!(!j.pass);
    let reason = j.reason.unwrap();
    assert!(reason.contains("constant tensor: allclose"), "{reason}");

    // Within atol: passes although PCC is undefined.
    let d: Vec<f32> = (0..10_000).map(|i| 0.5 + (i % 2) as f32 * 1e-7).collect();
    let m = metrics(&g, &d);
    assert_eq!(m.pcc, None);
    assert!(judge(&m, &pcc_gate()).pass);

    // An all-zero golden: rel-L2 is undefined too, and the fallback still decides.
    let z = vec![0.0f32; 100];
    let m = metrics(&z, &z);
    assert_eq!((m.rel_l2, m.cosine), (0.0, None));
    assert!(judge(&m, &pcc_gate()).pass);
    let mut d = z.clone();
    d[3] = 1.0;
    let m = metrics(&z, &d);
    assert_eq!(m.rel_l2, f64::INFINITY);
    assert!(!judge(&m, &pcc_gate()).pass);
}

#[test]
fn one_element_and_empty_tensors() {
    let m = metrics(&[2.0], &[2.0]);
    assert_eq!((m.pcc, m.degenerate), (None, Some(Degenerate::OneElement)));
    assert!(judge(&m, &pcc_gate()).pass);
    let m = metrics(&[2.0], &[2.5]);
    assert!(!judge(&m, &pcc_gate()).pass);

    let m = metrics(&[], &[]);
    assert_eq!(
        (m.n, m.degenerate, m.allclose),
        (0, Some(Degenerate::Empty), 1.0)
    );
    assert!(judge(&m, &pcc_gate()).pass);

    let m = metrics(&[f32::NAN, 1.0, f32::NAN], &[f32::NAN, 1.0, f32::NAN]);
    assert_eq!(m.degenerate, Some(Degenerate::NonFinite));
    assert!(judge(&m, &pcc_gate()).pass);
}

#[test]
fn length_mismatch_is_an_error() {
    let e = compare(&[1.0, 2.0], &[1.0], &opts(DType::F32)).unwrap_err();
    assert_eq!((e.golden, e.device), (2, 1));
    assert_eq!(
        e.to_string(),
        "golden has 2 elements but device output has 1"
    );
}

#[test]
fn pcc_is_accurate_near_one_despite_a_large_offset() {
    // 1e4 ± small noise: naive Σx² − (Σx)²/n in f64 would lose ~8 digits.
    let n: u64 = 1 << 20;
    let g: Vec<f32> = (0..n)
        .map(|i| 1.0e4 + ((i * 7919) % 1000) as f32 * 1e-3)
        .collect();
    let m = metrics(&g, &g);
    assert_eq!(m.pcc, Some(1.0));
    let d: Vec<f32> = g.iter().map(|&v| v + 1e-3).collect();
    let r = metrics(&g, &d).pcc.unwrap();
    assert!((r - 1.0).abs() < 1e-9, "{r}");
}

#[test]
fn judge_names_the_failing_criterion_with_numbers() {
    let n = 4096;
    let g: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.1).sin()).collect();
    let d: Vec<f32> = g
        .iter()
        .enumerate()
        .map(|(i, &v)| v + 0.05 * ((i as f32) * 7.3).cos())
        .collect();
    let m = metrics(&g, &d);
    let j = judge(&m, &pcc_gate());
    assert!(!j.pass);
    let reason = j.reason.unwrap();
    let p = m.pcc.unwrap();
    assert!(
        reason.starts_with(&format!("pcc {p:.5} < 0.99999")),
        "{reason}"
    );
    assert!(
        reason.contains("rel_l2 ") && reason.contains(" > 1e-4"),
        "{reason}"
    );

    let tol = Tolerance {
        ulp_max: Some(4.0),
        ..Tolerance::allclose(0.0, 0.0)
    };
    let m = metrics(&[1.0, 2.0], &[1.0, 2.5]);
    let reason = judge(&m, &tol).reason.unwrap();
    assert!(reason.contains("ulp 2.097e6 > 4"), "{reason}");
    assert!(
        reason.contains("allclose 0.50000 < 1 (1 of 2 elements"),
        "{reason}"
    );
}

#[test]
fn metrics_serialise_to_json_without_nan() {
    let m = compare(
        &[1.0, 2.0, 3.0, 4.0],
        &[1.0, f32::NAN, 3.0, 4.5],
        &CompareOpts {
            top_k: 3,
            ..opts(DType::F32)
        },
    )
    .unwrap();
    let s = serde_json::to_string(&m).unwrap();
    assert!(s.contains(r#""max_abs":"inf""#), "{s}");
    assert!(s.contains(r#""device":"nan""#), "{s}");
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["worst"][0]["index"], 1);
    assert_eq!(v["worst"][1]["index"], 3);
    let back: Metrics = serde_json::from_str(&s).unwrap();
    assert_eq!(back.max_abs, f64::INFINITY);
    assert_eq!(back.worst.len(), 2);
    assert!(back.worst[0].device.is_nan());
    assert!((back.pcc.unwrap() - m.pcc.unwrap()).abs() < 1e-15);
}

// ---- thresholds ----------------------------------------------------------------------------

#[test]
fn toml_overrides_parse_and_overlay_the_defaults() {
    let t = Thresholds::from_toml_str(
        r#"
[modules]
siglip = 0.995
pi0 = 0.93

[classes.matmul]
pcc_min = 0.9999
rel_l2_max = 1e-3

[classes.norm.bf16]
rel_l2_max = "off"
"#,
    )
    .unwrap();
    assert_eq!(t.module_gate("siglip"), 0.995);
    assert_eq!(t.module_gate("pi0"), 0.93);
    assert_eq!(t.module_gate("vlm"), 0.99);
    let m = t.local("siglip.layers.0.mlp.fc1", OpClass::Matmul, DType::F32);
    assert_eq!((m.pcc_min, m.rel_l2_max), (Some(0.9999), Some(1e-3)));
    let m = t.chained(
        "siglip.layers.0.mlp.fc1",
        "siglip",
        OpClass::Matmul,
        DType::Bf16,
    );
    assert_eq!(m.pcc_min, Some(0.9999));
    let n = t.local("vlm.layers.0.input_norm", OpClass::Norm, DType::Bf16);
    assert_eq!((n.pcc_min, n.rel_l2_max), (Some(0.999), None));
    // Untouched presets keep their defaults.
    let d = Thresholds::defaults();
    assert_eq!(
        t.local("x", OpClass::Eltwise, DType::F32),
        d.local("x", OpClass::Eltwise, DType::F32)
    );
}

#[test]
fn later_glob_overrides_win() {
    let t = Thresholds::from_toml_str(
        r#"
[[override]]
pattern = "vlm.layers.*"
pcc_min = 0.999

[[override]]
pattern = "vlm.layers.*.mlp.*"
pcc_min = 0.995
check = "local"

[[override]]
pattern = "vlm.layers.1?.mlp.down"
pcc_min = 0.99
"#,
    )
    .unwrap();
    let f32m = |name: &str| t.local(name, OpClass::Matmul, DType::F32).pcc_min.unwrap();
    assert_eq!(f32m("vlm.layers.3.attn.q"), 0.999);
    assert_eq!(f32m("vlm.layers.3.mlp.down"), 0.995);
    assert_eq!(f32m("vlm.layers.17.mlp.down"), 0.99);
    assert_eq!(f32m("siglip.layers.3.mlp.fc1"), 0.99999);
    // The local-only entry does not touch the chained check.
    let c = t.chained("vlm.layers.3.mlp.down", "vlm", OpClass::Matmul, DType::F32);
    assert_eq!(c.pcc_min, Some(0.999));
}

#[test]
fn module_filtered_overrides_apply_to_chained_checks_only() {
    let t = Thresholds::from_toml_str(
        "[[override]]\nmodule = \"expert\"\npattern = \"denoise.*\"\npcc_min = 0.98\n",
    )
    .unwrap();
    let name = "denoise.3.expert.layers.0.attn.q";
    assert_eq!(
        t.chained(name, "expert", OpClass::Matmul, DType::Bf16)
            .pcc_min,
        Some(0.98)
    );
    assert_eq!(
        t.chained(name, "pi0", OpClass::Matmul, DType::Bf16).pcc_min,
        Some(0.99)
    );
    assert_eq!(
        t.local(name, OpClass::Matmul, DType::Bf16).pcc_min,
        Some(0.999)
    );

    let err = Thresholds::from_toml_str(
        "[[override]]\nmodule = \"expert\"\ncheck = \"local\"\npcc_min = 0.98\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 3") && err.contains("chained"), "{err}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_line() {
    let err =
        Thresholds::from_toml_str("[classes.matmul]\npcc_min = 0.99\npcc_mn = 0.9\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`pcc_mn`"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(matches!(
        err,
        ThresholdsError::Invalid { line: Some(3), .. }
    ));

    for (text, key) in [
        ("[modulez]\nsiglip = 0.9\n", "`modulez`"),
        ("[modules]\nsiglib = 0.9\n", "`siglib`"),
        ("[classes.matmull]\npcc_min = 0.9\n", "`matmull`"),
        ("[classes.matmul.bf15]\npcc_min = 0.9\n", "`bf15`"),
        ("[[override]]\npattern = \"x\"\npcc = 0.9\n", "`pcc`"),
        ("[[override]]\ndtype = \"fp8\"\npcc_min = 0.9\n", "`fp8`"),
    ] {
        let msg = Thresholds::from_toml_str(text).unwrap_err().to_string();
        assert!(msg.contains(key), "{text:?}: {msg}");
    }

    let msg = Thresholds::from_toml_str("[modules]\npi0 = 1.5\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("modules.pi0 = 1.5 is outside [-1, 1]") && msg.contains("line 2"),
        "{msg}"
    );
    let msg = Thresholds::from_toml_str("[[override]]\npattern = \"a[\"\npcc_min = 0.9\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bad pattern glob") && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn bad_files_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let err = Thresholds::load(&missing).unwrap_err();
    assert!(err.to_string().contains("missing.toml"), "{err}");
    assert!(std::error::Error::source(&err).is_some());

    let bad = dir.path().join("tolerances.toml");
    std::fs::write(
        &bad,
        "[modules]\nsiglip = 0.99\n\n[classes.eltwise]\natol = \"big\"\n",
    )
    .unwrap();
    let msg = Thresholds::load(&bad).unwrap_err().to_string();
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[modules]\nsiglip = 0.98\n[[override]]\npcc_min = 0.9\n",
    )
    .unwrap();
    let t = Thresholds::load(&good).unwrap();
    assert_eq!(t.module_gate("siglip"), 0.98);
    let line = t.describe();
    assert!(
        line.contains("good.toml") && line.contains("1 op override"),
        "{line}"
    );
    assert_eq!(Thresholds::defaults().describe(), "defaults");
}

#[test]
fn default_presets_separate_correct_f32_implementations_from_bugs() {
    let t = Thresholds::defaults();
    let tol = t.chained("vlm.layers.0.mlp.down", "vlm", OpClass::Matmul, DType::F32);
    let n = 1 << 16;
    let g: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.013).sin() * 4.0).collect();
    // Another correct implementation: a few ULP of reassociation noise.
    let other: Vec<f32> = g
        .iter()
        .enumerate()
        .map(|(i, &v)| v * (1.0 + ((i % 5) as f32 - 2.0) * 1.2e-7))
        .collect();
    assert!(judge(&metrics(&g, &other), &tol).pass);
    // A scale bug PCC cannot see: rel-L2 catches it.
    let scaled: Vec<f32> = g.iter().map(|&v| v * 1.001).collect();
    let j = judge(&metrics(&g, &scaled), &tol);
    assert!(!j.pass && j.reason.unwrap().starts_with("rel_l2"));
    // Data movement is exact: one swapped pair fails.
    let mut swapped = g.clone();
    swapped.swap(10, 11);
    let dm = t.local("prefix.concat", OpClass::DataMovement, DType::F32);
    assert!(!judge(&metrics(&g, &swapped), &dm).pass);
    assert!(judge(&metrics(&g, &g), &dm).pass);
}
