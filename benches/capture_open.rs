//! Opening a safetensors file or a capture reads only headers: the time must not grow with the
//! data size. Compares a 1 MiB and a 256 MiB shard (written to a temp dir during setup).
//!
//! `cargo bench --bench capture_open`

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pccscope::golden::{Capture, CaptureWriter, OpRecord, SafetensorsFile};
use pccscope::tensor::Tensor;

const SIZES: [(&str, usize); 2] = [("1MiB", 1 << 20), ("256MiB", 256 << 20)];

/// A capture with one module `m` holding one full f32 record of `bytes` bytes.
fn write_capture(dir: &Path, bytes: usize) {
    let n = bytes / 4;
    let data: Vec<f32> = (0..n).map(|i| (i % 1021) as f32 * 0.5 - 255.0).collect();
    let t = Tensor::from_vec(&[n / 256, 256], data).expect("shape");
    let mut w = CaptureWriter::new(
        dir,
        serde_json::json!({"name": "bench"}),
        "pi0",
        "bench",
        serde_json::json!({}),
    )
    .expect("writer");
    w.begin_module("m", Vec::<String>::new(), ["m.out"]);
    w.add_op(
        "m",
        OpRecord::new("m.out", "linear", t.shape().to_vec()),
        Some(&t),
    )
    .expect("add op");
    w.finish().expect("finish");
}

fn bench_open(c: &mut Criterion) {
    let root = tempfile::tempdir().expect("tempdir");
    for (label, bytes) in SIZES {
        write_capture(&root.path().join(label), bytes);
    }

    let mut g = c.benchmark_group("safetensors_open");
    for (label, _) in SIZES {
        let path = root.path().join(label).join("m.safetensors");
        g.bench_with_input(BenchmarkId::from_parameter(label), &path, |b, p| {
            b.iter(|| SafetensorsFile::open(p).expect("open"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("capture_open_check_module");
    for (label, _) in SIZES {
        let dir = root.path().join(label);
        g.bench_with_input(BenchmarkId::from_parameter(label), &dir, |b, d| {
            b.iter(|| {
                let cap = Capture::open(d).expect("open");
                cap.check_module("m").expect("check");
                cap
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_open);
criterion_main!(benches);
