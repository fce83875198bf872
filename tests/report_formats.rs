//! Markdown and JUnit of a fixed run record (built here), snapshot-tested with volatile fields
//! redacted; the JUnit is parsed back by an XML parser. Also `diff` on records.

use pccscope::golden::Stats;
use pccscope::harness::metrics::{Metrics, Worst};
use pccscope::harness::record::{Check, ModuleReport, OpReport, RunInfo, RunRecord, Verdict};
use pccscope::harness::runner::summarize;
use pccscope::harness::thresholds::Tolerance;
use pccscope::report::diff::{diff, DiffOptions, Impact};
use pccscope::report::{junit, markdown, Granularity};

fn metrics(pcc: f64, rel_l2: f64) -> Metrics {
    Metrics {
        n: 4096,
        pcc: Some(pcc),
        cosine: Some(pcc),
        max_abs: rel_l2 * 3.0,
        mean_abs: rel_l2 / 2.0,
        rel_l2,
        ulp_max: rel_l2 * 1e4,
        allclose: 1.0 - rel_l2,
        nan: 0,
        inf: 0,
        golden_nan: 0,
        golden_inf: 0,
        degenerate: None,
        worst: Vec::new(),
    }
}

fn check(pcc: f64, rel_l2: f64, tol: &Tolerance) -> Check {
    let pass = tol.pcc_min.is_none_or(|m| pcc >= m) && tol.rel_l2_max.is_none_or(|m| rel_l2 <= m);
    let mut m = metrics(pcc, rel_l2);
    let reason = (!pass).then(|| format!("pcc {pcc} < {}", tol.pcc_min.unwrap_or(0.0)));
    if !pass {
        m.worst = vec![
            Worst {
                index: 17,
                golden: 1.25,
                device: 1.5,
                abs_diff: 0.25,
            },
            Worst {
                index: 3,
                golden: -0.5,
                device: -0.625,
                abs_diff: 0.125,
            },
        ];
    }
    Check {
        metrics: m,
        pass,
        reason,
        tolerance: Some(tol.clone()),
    }
}

fn stats(mean: f64) -> Stats {
    Stats {
        min: -2.0,
        max: 2.0,
        mean,
        std: 0.9,
        l2: 30.0,
        nan: 0,
        inf: 0,
        hash: "fnv1a64:0000000000000000".into(),
    }
}

fn op(index: usize, name: &str, kind: &str, class: &str) -> OpReport {
    OpReport {
        index,
        name: name.into(),
        kind: kind.into(),
        class: class.into(),
        verdict: Verdict::Pass,
        shape: vec![1, 58, 64],
        padded_shape: vec![1, 64, 64],
        dtype: "bf16".into(),
        layout: "tile".into(),
        memory: "l1_height_sharded".into(),
        chained: None,
        chained_stats: None,
        local: None,
        error: None,
        device_stats: Some(stats(0.01)),
        golden_stats: Some(stats(0.011)),
        precision: None,
        duration_us: 123.456,
    }
}

/// A small run: siglip passes with two layers; vlm has a local failure at layers.1.mlp.down,
/// an op error, an unchecked op, an unsupported op and coverage gaps; projector errored.
pub fn record() -> RunRecord {
    let local_tol = Tolerance::pcc_rel_l2(0.999, 1e-2, 1e-3, 1.6e-2);
    let chained_tol = Tolerance::pcc_rel_l2(0.99, 0.15, 1e-2, 3.2e-2);
    let mut idx = 0;
    let mut next = |name: &str, kind: &str, class: &str, pl: f64, pc: f64| {
        let mut o = op(idx, name, kind, class);
        idx += 1;
        o.local = Some(check(pl, (1.0 - pl).sqrt() * 0.5, &local_tol));
        o.chained = Some(check(pc, (1.0 - pc).sqrt() * 0.5, &chained_tol));
        o.verdict = if o.local_failed() || o.chained_failed() {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        o
    };
    let siglip_ops = vec![
        next(
            "siglip.patch_embed",
            "conv2d_patch",
            "matmul",
            0.999999,
            0.999999,
        ),
        next(
            "siglip.layers.0.ln1",
            "layer_norm",
            "norm",
            0.99999,
            0.99998,
        ),
        next(
            "siglip.layers.0.attn.q",
            "linear",
            "matmul",
            0.99999,
            0.99995,
        ),
        next("siglip.layers.1.ln1", "layer_norm", "norm", 0.99999, 0.9999),
        next(
            "siglip.layers.1.attn.q",
            "linear",
            "matmul",
            0.99998,
            0.9998,
        ),
        next("siglip.post_ln", "layer_norm", "norm", 0.99999, 0.9997),
    ];
    let mut vlm_ops = vec![
        next("vlm.embed", "embedding", "data_movement", 1.0, 1.0),
        next("vlm.layers.0.mlp.down", "linear", "matmul", 0.99995, 0.9996),
        next("vlm.layers.1.mlp.down", "linear", "matmul", 0.9931, 0.991),
        next(
            "vlm.layers.1.mlp_residual",
            "add",
            "eltwise",
            0.99999,
            0.985,
        ),
    ];
    let mut e = op(idx, "vlm.layers.1.attn.sdpa", "sdpa", "attention");
    e.verdict = Verdict::Error;
    e.error = Some("TT_FATAL: shard width 48 | not a multiple of 32".into());
    e.device_stats = None;
    e.golden_stats = None;
    vlm_ops.push(e);
    let mut u = op(idx + 1, "vlm.layers.1.attn.o", "linear", "matmul");
    u.verdict = Verdict::Unchecked;
    u.golden_stats = None;
    vlm_ops.push(u);
    let mut f = op(idx + 2, "vlm.norm", "rms_norm", "norm");
    f.verdict = Verdict::Unsupported;
    f.chained = Some(check(0.99999, 1e-3, &chained_tol));
    vlm_ops.push(f);
    let module = |id: &str, ops: Vec<OpReport>, verdict: Verdict| ModuleReport {
        id: id.into(),
        verdict,
        min_pcc: ops
            .iter()
            .filter_map(OpReport::chained_pcc)
            .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.min(p)))),
        output_pcc: ops.last().and_then(OpReport::chained_pcc),
        gate: 0.99,
        inputs_from: "golden".into(),
        ops_failed: ops.iter().filter(|o| o.verdict.is_bad()).count(),
        ops,
        missing_device: Vec::new(),
        missing_golden: Vec::new(),
        error: None,
        duration_s: 0.75,
        on_device_pct: None,
    };
    let siglip = module("siglip", siglip_ops, Verdict::Pass);
    let mut vlm = module("vlm", vlm_ops, Verdict::Error);
    vlm.missing_device = vec!["vlm.layers.1.mlp.gate".into()];
    vlm.missing_golden = vec!["vlm.layers.1.attn.o".into()];
    vlm.error = Some("op vlm.layers.1.attn.sdpa raised".into());
    let mut projector = module("projector", Vec::new(), Verdict::Error);
    projector.error = Some("golden shard /abs/path/projector.safetensors is missing".into());
    projector.missing_device = vec!["projector.linear".into()];
    let modules = vec![siglip, projector, vlm];
    let summary = summarize(&modules, true);
    RunRecord {
        schema: "pccscope.report/1".into(),
        run: RunInfo {
            id: "20260102-030405-emu-isolated-4242".into(),
            backend: "emu".into(),
            profile: "bfp8-hifi2".into(),
            mode: "isolated".into(),
            goldens: "/abs/path/goldens/pi0-tiny".into(),
            thresholds: "defaults".into(),
            started: "1767322445".into(),
            duration_s: 12.3456,
        },
        summary,
        modules,
    }
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r#"time="[0-9.]+""#, r#"time="[time]""#);
        settings.add_filter(r"[0-9]+\.[0-9]+ s\b", "[duration] s");
        settings.add_filter(r"/abs/path", "[path]");
        settings.add_filter(r"\b[0-9]{8}-[0-9]{6}-", "[date]-");
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

#[test]
fn summary_markdown_snapshot() {
    let r = record();
    assert_eq!(r.summary.verdict, Verdict::Error);
    assert_eq!(
        r.summary.first_divergence.as_ref().map(|f| f.op.as_str()),
        Some("vlm.layers.1.mlp.down")
    );
    let md = markdown::render(&r);
    // What a reader relies on, independent of the snapshot.
    assert!(md.contains("# pccscope 💥 ERROR"));
    assert!(md.contains("## First divergence"));
    assert!(
        md.contains("pcc ≥ 0.999, rel_l2 ≤ 0.01"),
        "tolerance beside the metrics"
    );
    assert!(md.contains("## Top 10 ops by local error"));
    assert!(md.contains("`vlm`: 1 golden ops with no device counterpart: `vlm.layers.1.mlp.gate`"));
    assert!(md.contains("unsupported ops (host fallback ran): `vlm.norm`"));
    assert!(md.contains("## Op errors (1)"));
    assert!(
        md.contains("shard width 48 \\| not"),
        "pipes escaped in table cells"
    );
    snapshot!("summary_md", md);
}

#[test]
fn markdown_says_when_ranking_uses_chained_error() {
    let mut r = record();
    for m in &mut r.modules {
        for o in &mut m.ops {
            o.local = None;
        }
    }
    let md = markdown::render(&r);
    assert!(md.contains("## Top 10 ops by chained error"), "{md}");
    assert!(md.contains("backend `emu` has no local checks"), "{md}");
    // Worst chained first: vlm.layers.1.mlp_residual (0.985).
    let table = md.split("## Top 10").nth(1).unwrap();
    let first_row = table.lines().find(|l| l.starts_with("| 1 |")).unwrap();
    assert!(
        first_row.contains("vlm.layers.1.mlp_residual"),
        "{first_row}"
    );
}

fn junit_doc(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).expect("junit.xml is well-formed XML")
}

#[test]
fn junit_per_op_parses_and_carries_metrics_and_thresholds() {
    let r = record();
    let xml = junit::render(&r, Granularity::Op).unwrap();
    let doc = junit_doc(&xml);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<&str> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(names, ["siglip", "projector", "vlm"]);
    let vlm = suites[2];
    let cases: Vec<_> = vlm
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // One case per op plus the module gate case.
    assert_eq!(cases.len(), r.modules[2].ops.len() + 1);
    assert_eq!(vlm.attribute("tests"), Some("8"));
    assert_eq!(vlm.attribute("failures"), Some("2"));
    assert_eq!(vlm.attribute("errors"), Some("2"));
    assert_eq!(vlm.attribute("skipped"), Some("2"));
    let down = cases
        .iter()
        .find(|c| c.attribute("name") == Some("vlm.layers.1.mlp.down"))
        .unwrap();
    assert_eq!(down.attribute("classname"), Some("pccscope.vlm"));
    let failure = down.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("local"));
    assert!(failure
        .attribute("message")
        .unwrap()
        .contains("local check failed: pcc 0.9931 < 0.999"));
    let body = failure.text().unwrap();
    assert!(
        body.contains("local tolerance: pcc ≥ 0.999, rel_l2 ≤ 0.01"),
        "{body}"
    );
    assert!(body.contains("local: FAIL · pcc 0.99310"), "{body}");
    assert!(body.contains("chained tolerance: pcc ≥ 0.99"), "{body}");
    assert!(
        body.contains("worst: index 17 reference 1.25 device 1.5"),
        "{body}"
    );
    let sdpa = cases
        .iter()
        .find(|c| c.attribute("name") == Some("vlm.layers.1.attn.sdpa"))
        .unwrap();
    let error = sdpa.children().find(|n| n.has_tag_name("error")).unwrap();
    assert!(error.attribute("message").unwrap().contains("TT_FATAL"));
    let skipped: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("skipped")))
        .filter_map(|c| c.attribute("name"))
        .collect();
    assert_eq!(skipped, ["vlm.layers.1.attn.o", "vlm.norm"]);
    let gate = cases.last().unwrap();
    assert_eq!(gate.attribute("name"), Some("module gate"));
    assert!(gate.children().any(|n| n.has_tag_name("error")));
    // The projector module has no ops: its gate case still reports the error.
    let proj: Vec<_> = suites[1]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(proj.len(), 1);
    let e = proj[0]
        .children()
        .find(|n| n.has_tag_name("error"))
        .unwrap();
    assert!(e
        .attribute("message")
        .unwrap()
        .contains("projector.safetensors"));
    // Passing suite: no failure elements.
    assert_eq!(suites[0].attribute("failures"), Some("0"));
    assert_eq!(suites[0].attribute("errors"), Some("0"));
    snapshot!("junit_op_xml", xml);
}

#[test]
fn junit_per_layer_groups_ops() {
    let r = record();
    let xml = junit::render(&r, Granularity::Layer).unwrap();
    let doc = junit_doc(&xml);
    let case_names = |suite: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some(suite))
            .flat_map(|s| s.children().filter(|n| n.has_tag_name("testcase")))
            .filter_map(|c| c.attribute("name").map(str::to_string))
            .collect()
    };
    assert_eq!(
        case_names("siglip"),
        [
            "siglip.patch_embed",
            "siglip.layers.0",
            "siglip.layers.1",
            "siglip.post_ln",
            "module gate"
        ]
    );
    assert_eq!(
        case_names("vlm"),
        [
            "vlm.embed",
            "vlm.layers.0",
            "vlm.layers.1",
            "vlm.norm",
            "module gate"
        ]
    );
    let layer1 = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("vlm.layers.1"))
        .unwrap();
    // An op raised inside the layer: an error, naming the first bad op.
    let e = layer1.children().find(|n| n.has_tag_name("error")).unwrap();
    let msg = e.attribute("message").unwrap();
    assert!(
        msg.starts_with("3 of 4 ops failed or raised; first vlm.layers.1.mlp.down"),
        "{msg}"
    );
    snapshot!("junit_layer_xml", xml);
}

#[test]
fn diff_flags_a_pcc_drop_verdict_change_and_removed_op() {
    let a = record();
    assert_eq!(diff(&a, &a, DiffOptions::default()).regressions(), 0);

    let mut b = record();
    // siglip.layers.1.attn.q: chained PCC 0.9998 → 0.9990 (still passing).
    let q = &mut b.modules[0].ops[4];
    q.chained.as_mut().unwrap().metrics.pcc = Some(0.9990);
    let d = diff(&a, &b, DiffOptions::default());
    assert_eq!(d.regressions(), 1, "{:?}", d.changes);
    let c = &d.changes[0];
    assert_eq!(c.op.as_deref(), Some("siglip.layers.1.attn.q"));
    assert_eq!(c.impact, Impact::Regression);
    assert!(c.why[0].starts_with("chained PCC −8.000e-4"), "{:?}", c.why);
    // Below the tolerance: no regression.
    let loose = diff(&a, &b, DiffOptions { pcc_tol: 1e-3 });
    assert_eq!(loose.regressions(), 0);

    // B drops an op and turns a passing one into a failure; A → B the other way improves.
    let mut b = record();
    b.modules[0].ops.remove(2);
    b.modules[0].ops[0].verdict = Verdict::Fail;
    let d = diff(&a, &b, DiffOptions::default());
    assert_eq!(d.removed, 1);
    assert!(d
        .changes
        .iter()
        .any(|c| c.why.iter().any(|w| w.starts_with("removed")) && c.impact == Impact::Regression));
    assert!(d
        .changes
        .iter()
        .any(|c| c.why.iter().any(|w| w == "verdict pass → fail")));
    let back = diff(&b, &a, DiffOptions::default());
    assert_eq!(back.added, 1);
    assert!(back.improvements() >= 1);
    assert_eq!(back.regressions(), 0, "{:?}", back.changes);
}
