//! Criterion benchmark of the reference backend's `linear` (GEMM) throughput.
//!
//! Throughput is declared in FLOPs (2·m·k·n), so criterion's `elem/s` column reads as FLOP/s.
//! Shapes: the SigLIP MLP fc1 of pi0_base ([729×1152]·[1152×4304]) and a pi0-tiny expert
//! projection ([51×32]·[32×64]).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::{Backend, Op, OpKind};
use pccscope::tensor::Tensor;

fn tensor(shape: &[usize], seed: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| ((i % 101) as f32 * seed).sin()).collect();
    Tensor::from_vec(shape, data).expect("shape")
}

fn linear(c: &mut Criterion) {
    let backend = CpuBackend::new();
    let op = Op::new("bench", OpKind::Linear);
    let mut group = c.benchmark_group("cpu_linear");
    for &(m, k, n, samples) in &[(729usize, 1152usize, 4304usize, 20usize), (51, 32, 64, 100)] {
        let x = tensor(&[m, k], 0.37);
        let w = tensor(&[n, k], 0.11);
        let b = tensor(&[n], 0.5);
        group.sample_size(samples);
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        let id = format!("{m}x{k}x{n}/threads={}", backend.threads());
        group.bench_with_input(BenchmarkId::new("bias", &id), &(), |bench, _| {
            bench.iter(|| backend.exec(&op, &[&x, &w, &b]).expect("linear"))
        });
    }
    group.finish();
}

criterion_group!(benches, linear);
criterion_main!(benches);
