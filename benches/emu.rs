//! Criterion benchmarks of the emulator backend.
//!
//! * `linear_729x1152x4304`: `linear` at the SigLIP MLP fc1 shape of pi0_base on the cpu
//!   reference and on emu under `bf16-hifi2` (HiFi2, BF16 Dst with a rounding per 16-wide
//!   face and phase, packer L1 accumulation over 18 K blocks, bf16 output), same operands
//!   (bf16 values; the weight uploaded as a checkpoint parameter, so its fidelity planes are
//!   packed on the first call and reused). `examples/emu_timing.rs` prints the same-run ratio
//!   and the first-call cost.
//! * `run_pi0_tiny`: a whole `pccscope run` of goldens/pi0-tiny on emu (`bf16-hifi2`), all
//!   eleven modules, isolated then pipeline, in process (tracer, local checks on the cpu
//!   reference, metrics; no report file).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::emu::{EmuBackend, Profile};
use pccscope::backend::{Backend, Op, OpKind};
use pccscope::golden::Capture;
use pccscope::harness::thresholds::Thresholds;
use pccscope::harness::{self, Mode, NullSink, RunInputs, RunOptions};
use pccscope::modules::{Checkpoint, ModuleId, Pi0Config, Weights};
use pccscope::tensor::Tensor;

const W: &str =
    "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.0.mlp.fc1";

fn tensor(shape: &[usize], seed: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| ((i % 101) as f32 * seed).sin()).collect();
    Tensor::from_vec(shape, data).expect("shape")
}

fn linear(c: &mut Criterion) {
    let (m, k, n) = (729usize, 1152usize, 4304usize);
    let emu = EmuBackend::new(Profile::preset("bf16-hifi2").expect("preset"));
    let cpu = CpuBackend::new();
    let ex = emu
        .upload("siglip.layers.0.ln2", tensor(&[m, k], 0.37))
        .unwrap();
    let wname = format!("{W}.weight");
    let bname = format!("{W}.bias");
    let ew = emu
        .upload(&wname, tensor(&[n, k], 0.11))
        .unwrap()
        .with_origin(wname.as_str());
    let eb = emu
        .upload(&bname, tensor(&[n], 0.5))
        .unwrap()
        .with_origin(bname.as_str());
    let host = |t: &Tensor| Tensor::from_array(t.array().clone());
    let (cx, cw, cb) = (host(&ex), host(&ew), host(&eb));
    let op = Op::new("siglip.layers.0.mlp.fc1", OpKind::Linear);
    let mut group = c.benchmark_group("linear_729x1152x4304");
    group.sample_size(20);
    group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
    group.bench_function(BenchmarkId::new("cpu", "f32"), |b| {
        b.iter(|| cpu.exec(&op, &[&cx, &cw, &cb]).expect("cpu linear"))
    });
    group.bench_function(BenchmarkId::new("emu", "bf16-hifi2"), |b| {
        b.iter(|| emu.exec(&op, &[&ex, &ew, &eb]).expect("emu linear"))
    });
    group.finish();
}

fn run_pi0_tiny(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny");
    let capture = Capture::open(&dir).expect("goldens");
    let cfg: Pi0Config = serde_json::from_value(capture.manifest().config.clone()).expect("cfg");
    let ckpt = Arc::new(
        Checkpoint::open(&capture.checkpoint_path().expect("checkpoint")).expect("checkpoint"),
    );
    let thresholds = Thresholds::defaults();
    let cpu = CpuBackend::new();
    let mut group = c.benchmark_group("run_pi0_tiny");
    group.sample_size(10);
    group.bench_function(
        BenchmarkId::new("emu", "bf16-hifi2/isolated+pipeline"),
        |b| {
            b.iter(|| {
                for mode in [Mode::Isolated, Mode::Pipeline] {
                    let emu = EmuBackend::new(Profile::preset("bf16-hifi2").expect("preset"));
                    let weights = Weights::new(ckpt.clone());
                    let inputs = RunInputs {
                        capture: &capture,
                        cfg: &cfg,
                        weights: &weights,
                        thresholds: &thresholds,
                        device: &emu,
                        reference: Some(&cpu),
                        trace: None,
                    };
                    let opts = RunOptions {
                        mode,
                        modules: ModuleId::ALL.to_vec(),
                        fail_fast: false,
                        run_id: "bench".into(),
                        goldens_label: "pi0-tiny".into(),
                    };
                    let r = harness::run(&inputs, &opts, &NullSink);
                    assert_eq!(r.summary.ops, 5101);
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, linear, run_pi0_tiny);
criterion_main!(benches);
