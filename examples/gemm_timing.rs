//! Times the reference backend's `linear` at one shape and prints the median wall time.
//!
//! ```text
//! cargo run --release --example gemm_timing -- [--m 729] [--k 1152] [--n 4304]
//!     [--threads N] [--runs 15] [--warmup 3] [--bias]
//! ```
//!
//! Output: one `run_seconds: …` line per timed run, then `median_seconds: …`, `gflops: …` and
//! `threads: …` (read by `bench/gemm_vs_torch.py`).

use std::time::Instant;

use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::{Backend, Op, OpKind};
use pccscope::tensor::Tensor;

fn main() -> Result<(), String> {
    let mut m = 729usize;
    let mut k = 1152usize;
    let mut n = 4304usize;
    let mut runs = 15usize;
    let mut warmup = 3usize;
    let mut bias = false;
    let mut threads = CpuBackend::new().threads();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a non-negative integer"))
        };
        match a.as_str() {
            "--m" => m = num("--m")?,
            "--k" => k = num("--k")?,
            "--n" => n = num("--n")?,
            "--runs" => runs = num("--runs")?.max(1),
            "--warmup" => warmup = num("--warmup")?,
            "--threads" => threads = num("--threads")?,
            "--bias" => bias = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let backend = CpuBackend::with_threads(threads);
    let fill = |len: usize, f: f32| -> Vec<f32> {
        (0..len).map(|i| ((i % 97) as f32 * f).sin()).collect()
    };
    let x = Tensor::from_vec(&[m, k], fill(m * k, 0.37)).ok_or("x shape")?;
    let w = Tensor::from_vec(&[n, k], fill(n * k, 0.11)).ok_or("w shape")?;
    let b = Tensor::from_vec(&[n], fill(n, 0.5)).ok_or("b shape")?;
    let mut inputs = vec![&x, &w];
    if bias {
        inputs.push(&b);
    }
    let op = Op::new("gemm_timing", OpKind::Linear);
    for _ in 0..warmup {
        backend.exec(&op, &inputs).map_err(|e| e.to_string())?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let y = backend.exec(&op, &inputs).map_err(|e| e.to_string())?;
        let dt = start.elapsed().as_secs_f64();
        std::hint::black_box(y);
        println!("run_seconds: {dt:.6}");
        times.push(dt);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let flops = 2.0 * (m * k * n) as f64;
    println!("shape: [{m}x{k}]·[{k}x{n}] bias={bias}");
    println!("threads: {}", backend.threads());
    println!("median_seconds: {median:.6}");
    println!("gflops: {:.1}", flops / median / 1e9);
    Ok(())
}
