//! Every report format (JSON, Markdown, JUnit, plots: PNG + SVG) for a 20 000-op run.
//! Target: ≤ 2 s for all formats.

use criterion::{criterion_group, criterion_main, Criterion};

use pccscope::harness::metrics::{Metrics, Worst};
use pccscope::harness::record::{Check, ModuleReport, OpReport, RunInfo, RunRecord, Verdict};
use pccscope::harness::runner::summarize;
use pccscope::harness::thresholds::Tolerance;
use pccscope::report::{self, Options};

const KINDS: [(&str, &str); 10] = [
    ("rms_norm", "norm"),
    ("linear", "matmul"),
    ("rope", "eltwise"),
    ("sdpa", "attention"),
    ("add", "eltwise"),
    ("gelu", "eltwise"),
    ("mul", "eltwise"),
    ("concat", "data_movement"),
    ("reshape", "data_movement"),
    ("linear", "matmul"),
];
const OPS_PER_LAYER: usize = 70;

fn check(pcc: f64, tol: &Tolerance, fail: bool) -> Check {
    let rel = (2.0 * (1.0 - pcc)).sqrt();
    Check {
        metrics: Metrics {
            n: 3712,
            pcc: Some(pcc),
            cosine: Some(pcc),
            max_abs: rel * 4.0,
            mean_abs: rel / 2.0,
            rel_l2: rel,
            ulp_max: rel * 500.0,
            allclose: 1.0 - rel,
            nan: 0,
            inf: 0,
            golden_nan: 0,
            golden_inf: 0,
            degenerate: None,
            worst: if fail {
                (0..8)
                    .map(|i| Worst {
                        index: i * 31,
                        golden: 1.0,
                        device: 1.25,
                        abs_diff: 0.25,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        },
        pass: !fail,
        reason: fail.then(|| format!("pcc {pcc} < {}", tol.pcc_min.unwrap_or(0.0))),
        tolerance: Some(tol.clone()),
    }
}

/// A pi0-shaped run: siglip, vlm, expert and the pi0 sampler (siglip + vlm + 10 × expert
/// stacks) with 70 ops per layer: 20 160 ops in all, drifting, 1 % failing.
fn record() -> RunRecord {
    let local = Tolerance::pcc_rel_l2(0.999, 1e-2, 1e-3, 1.6e-2);
    let chained = Tolerance::pcc_rel_l2(0.99, 0.15, 1e-2, 3.2e-2);
    let mut index = 0usize;
    let mut module = |id: &str, stacks: &[(String, usize)]| {
        let mut ops = Vec::new();
        for (stack, layers) in stacks {
            for l in 0..*layers {
                for j in 0..OPS_PER_LAYER {
                    let (kind, class) = KINDS[j % KINDS.len()];
                    let depth = (ops.len() + 1) as f64;
                    let pc = 1.0 - 1e-6 * depth.sqrt() * (1.0 + (j as f64).sin().abs());
                    let pl = 1.0 - 1e-6 * (1.0 + (index as f64 * 0.37).sin().abs());
                    let fail = index % 97 == 13;
                    let pl = if fail { 0.99 } else { pl };
                    ops.push(OpReport {
                        index,
                        name: format!("{stack}.layers.{l}.op{j}"),
                        kind: kind.into(),
                        class: class.into(),
                        verdict: if fail { Verdict::Fail } else { Verdict::Pass },
                        shape: vec![1, 58, 64],
                        padded_shape: vec![1, 64, 64],
                        dtype: "bf16".into(),
                        layout: "tile".into(),
                        memory: "dram_interleaved".into(),
                        chained: Some(check(pc, &chained, false)),
                        chained_stats: None,
                        local: Some(check(pl, &local, fail)),
                        error: None,
                        device_stats: None,
                        golden_stats: None,
                        precision: None,
                        duration_us: 80.0,
                    });
                    index += 1;
                }
            }
        }
        let failed = ops.iter().filter(|o| o.verdict.is_bad()).count();
        ModuleReport {
            id: id.into(),
            verdict: if failed > 0 {
                Verdict::Fail
            } else {
                Verdict::Pass
            },
            min_pcc: ops
                .iter()
                .filter_map(OpReport::chained_pcc)
                .reduce(f64::min),
            output_pcc: ops.last().and_then(OpReport::chained_pcc),
            gate: 0.99,
            inputs_from: "golden".into(),
            ops,
            ops_failed: failed,
            missing_device: Vec::new(),
            missing_golden: Vec::new(),
            error: None,
            duration_s: 1.0,
            on_device_pct: None,
        }
    };
    let s = |n: &str, l: usize| (n.to_string(), l);
    let mut pi0 = vec![s("siglip", 27), s("vlm", 18)];
    pi0.extend((0..10).map(|k| s(&format!("denoise.{k}.expert"), 18)));
    let modules = vec![
        module("siglip", &[s("siglip", 27)]),
        module("vlm", &[s("vlm", 18)]),
        module("expert", &[s("expert", 18)]),
        module("pi0", &pi0),
    ];
    let summary = summarize(&modules, true);
    RunRecord {
        schema: "pccscope.report/1".into(),
        run: RunInfo {
            id: "bench".into(),
            backend: "emu".into(),
            profile: "bench".into(),
            mode: "isolated".into(),
            goldens: "synthetic".into(),
            thresholds: "defaults".into(),
            started: "0".into(),
            duration_s: 10.0,
        },
        summary,
        modules,
    }
}

fn bench(c: &mut Criterion) {
    let r = record();
    let ops: usize = r.modules.iter().map(|m| m.ops.len()).sum();
    assert!(ops >= 20_000, "{ops} ops");
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("reports");
    g.sample_size(10);
    g.bench_function("all formats, 20160 ops", |b| {
        b.iter(|| report::write(&r, dir.path(), &Options::default()).unwrap())
    });
    g.bench_function("md + junit + json, 20160 ops", |b| {
        b.iter(|| {
            report::write(
                &r,
                dir.path(),
                &Options {
                    formats: vec![
                        report::Format::Json,
                        report::Format::Md,
                        report::Format::Junit,
                    ],
                    ..Options::default()
                },
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
