//! `pccscope compare` throughput: the goldens' `siglip` module (328 ops, 27 layers) re-written
//! as an external capture with kinds, inputs and parameters, compared against the goldens —
//! every op chained-checked and locally re-run on the cpu reference.
//!
//! `cargo bench --bench compare`

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use pccscope::backend::cpu::CpuBackend;
use pccscope::golden::{Capture, CaptureWriter};
use pccscope::harness::compare::{compare, CompareInputs, CompareOptions, RenameMap};
use pccscope::harness::thresholds::Thresholds;
use pccscope::harness::NullSink;
use pccscope::modules::{Checkpoint, Weights};

fn goldens() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny")
}

/// The siglip module of the goldens as a capture of its own.
fn siglip_capture(dir: &Path, g: &Capture) {
    let m = g.manifest();
    let mut w = CaptureWriter::new(
        dir,
        serde_json::json!({"name": "bench"}),
        &m.model,
        &m.preset,
        m.config.clone(),
    )
    .expect("writer");
    w.add_input("images", &g.tensor("images").expect("images"), "F32")
        .expect("input");
    let module = g.module("siglip").expect("siglip");
    w.begin_module("siglip", module.inputs.clone(), module.outputs.clone());
    for rec in &module.ops {
        let t = g.tensor(&rec.name).expect("full golden");
        w.add_op("siglip", rec.clone(), Some(&t)).expect("op");
    }
    w.finish().expect("finish");
}

fn bench_compare(c: &mut Criterion) {
    let g = Capture::open(goldens()).expect("goldens");
    let tmp = tempfile::tempdir().expect("tempdir");
    siglip_capture(tmp.path(), &g);
    let capture = Capture::open(tmp.path()).expect("capture");
    let ckpt = Checkpoint::open(&g.checkpoint_path().expect("checkpoint")).expect("open");
    let weights = Weights::new(Arc::new(ckpt));
    let thresholds = Thresholds::defaults();
    let reference = CpuBackend::default();
    let map = RenameMap::identity();
    let inputs = CompareInputs {
        goldens: &g,
        capture: &capture,
        map: &map,
        thresholds: &thresholds,
        reference: &reference,
        weights: Some(&weights),
    };
    let opts = CompareOptions {
        run_id: "bench".into(),
        goldens_label: "goldens/pi0-tiny".into(),
    };
    let check = compare(&inputs, &opts, &NullSink);
    assert_eq!(
        check.local_checks, 328,
        "every siglip op is locally checked"
    );
    assert!(check.record.summary.first_divergence.is_none());
    let mut group = c.benchmark_group("compare");
    group.sample_size(20);
    group.bench_function("siglip_328_ops_chained_and_local", |b| {
        b.iter(|| compare(&inputs, &opts, &NullSink))
    });
    group.finish();
}

criterion_group!(benches, bench_compare);
criterion_main!(benches);
