//! Times `compare()` (the fused metrics pass) on a generated 16 M-element golden/device pair and
//! prints one JSON line: `{"n":…,"runs":…,"median_s":…,"min_s":…,"pcc":…,"fast_path":…}`.
//! Reads nothing. Used by `bench/metrics_vs_numpy.py`, which generates the same pair in numpy.
//!
//! Usage: `cargo run --release --example metrics_timing [-- N RUNS]`

use std::hint::black_box;
use std::time::Instant;

use pccscope::harness::metrics::{compare, fast_path, CompareOpts};
use pccscope::tensor::DType;

/// Counter-based splitmix64: the k-th uniform in [0, 1) of element i (numpy reproduces it).
fn uniform(i: u64, k: u64) -> f64 {
    let mut z = (4 * i + k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// golden ≈ N(0, 1) (sum of three uniforms), device = golden + 1e-3 · U(−½, ½).
fn pair(n: usize) -> (Vec<f32>, Vec<f32>) {
    (0..n as u64)
        .map(|i| {
            let g = ((uniform(i, 0) + uniform(i, 1) + uniform(i, 2) - 1.5) * 2.0) as f32;
            let d = (g as f64 + 1e-3 * (uniform(i, 3) - 0.5)) as f32;
            (g, d)
        })
        .unzip()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16 << 20);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(21);
    let (g, d) = pair(n);
    let opts = CompareOpts {
        atol: 1e-5,
        rtol: 1e-4,
        dtype: DType::F32,
        top_k: 0,
    };
    let mut m = compare(&g, &d, &opts).expect("same length");
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            m = compare(black_box(&g), black_box(&d), &opts).expect("same length");
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"n\":{n},\"runs\":{runs},\"median_s\":{:.6},\"min_s\":{:.6},\"pcc\":{},\"rel_l2\":{:e},\"fast_path\":\"{}\"}}",
        times[runs / 2],
        times[0],
        m.pcc.unwrap_or(f64::NAN),
        m.rel_l2,
        fast_path()
    );
}
