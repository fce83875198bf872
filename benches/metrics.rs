//! The fused metrics pass on 16 M-element f32 tensors: golden random, device = golden + small
//! noise. Throughput is reported in element pairs per second.
//!
//! `cargo bench --bench metrics` (add `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pccscope::harness::metrics::{compare, fast_path, CompareOpts};
use pccscope::tensor::DType;

const N: usize = 16 << 20;

/// Counter-based splitmix64: the k-th uniform in [0, 1) of element i.
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

fn bench(c: &mut Criterion) {
    let (g, d) = pair(N);
    let opts = CompareOpts {
        atol: 1e-5,
        rtol: 1e-4,
        dtype: DType::F32,
        top_k: 0,
    };
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);

    group.bench_function(format!("compare_16M_{}", fast_path()), |b| {
        b.iter(|| compare(black_box(&g), black_box(&d), &opts).unwrap())
    });

    let top = CompareOpts { top_k: 8, ..opts };
    group.bench_function("compare_16M_top8", |b| {
        b.iter(|| compare(black_box(&g), black_box(&d), &top).unwrap())
    });

    // One NaN (matched on both sides) per 1 Mi elements: 16 blocks take the slow path.
    let (mut gn, mut dn) = (g.clone(), d.clone());
    for i in (0..N).step_by(1 << 20) {
        gn[i] = f32::NAN;
        dn[i] = f32::NAN;
    }
    group.bench_function("compare_16M_sparse_nan", |b| {
        b.iter(|| compare(black_box(&gn), black_box(&dn), &opts).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
