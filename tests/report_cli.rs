//! The report commands on the real binary in a temp dir: every format from `run`, `report`
//! regenerating them, `$GITHUB_STEP_SUMMARY`, `diff` exit codes and `plot`.

mod common;

use std::path::Path;

use common::{code, copy_dir, goldens, pccscope, run_dir, text};

fn run(cap: &Path, modules: &str, out: &str, cwd: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--goldens",
        cap.to_str().unwrap(),
        "--modules",
        modules,
        "--report-dir",
        out,
    ];
    args.extend_from_slice(extra);
    pccscope(&args, cwd)
}

#[test]
fn run_writes_every_format_and_report_regenerates_them() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = common::drifting_goldens(tmp.path());
    let o = run(&cap, "siglip,projector", "out", tmp.path(), &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let dir = run_dir(&tmp.path().join("out"));
    for f in ["report.json", "summary.md", "junit.xml"] {
        assert!(dir.join(f).is_file(), "{f}: {}", text(&o));
    }
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("# pccscope ❌ FAIL"), "{md}");
    assert!(md.contains("First divergence: `siglip."), "{md}");
    assert!(
        md.contains("## Top 10 ops by chained error"),
        "cpu has no local checks: {md}"
    );
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures: usize = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert!(failures > 10, "drift fails chained checks: {failures}");
    for f in [
        "pcc_siglip.png",
        "pcc_siglip.svg",
        "heatmap_siglip.png",
        "pipeline.png",
        "pipeline.svg",
    ] {
        assert!(dir.join("plots").join(f).is_file(), "{f}");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("summary.md") && stdout.contains("plots:"),
        "{stdout}"
    );

    // `report` rebuilds every file from report.json alone.
    std::fs::remove_file(dir.join("summary.md")).unwrap();
    std::fs::remove_file(dir.join("junit.xml")).unwrap();
    std::fs::remove_dir_all(dir.join("plots")).unwrap();
    let o = pccscope(&["report", dir.to_str().unwrap()], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(std::fs::read_to_string(dir.join("summary.md")).unwrap(), md);
    assert_eq!(std::fs::read_to_string(dir.join("junit.xml")).unwrap(), xml);
    assert!(dir.join("plots/pcc_siglip.png").is_file());

    // Into another directory, one format, JUnit per layer.
    let o = pccscope(
        &[
            "report",
            dir.join("report.json").to_str().unwrap(),
            "--out",
            "again",
            "--format",
            "junit",
            "--junit-granularity",
            "layer",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let again = tmp.path().join("again");
    assert!(again.join("junit.xml").is_file() && !again.join("summary.md").exists());
    let xml = std::fs::read_to_string(again.join("junit.xml")).unwrap();
    assert!(xml.contains("name=\"siglip.layers.26\""), "per-layer cases");

    // Bad input: exit 2 with the file named.
    let o = pccscope(&["report", "nope"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
    let o = run(&cap, "projector", "out2", tmp.path(), &["--format", "pdf"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown format `pdf`"));
}

#[test]
fn summary_is_appended_to_github_step_summary_and_format_selects_files() {
    let tmp = tempfile::tempdir().unwrap();
    let step = tmp.path().join("step.md");
    std::fs::write(&step, "earlier step\n").unwrap();
    let g = goldens();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pccscope"))
        .args([
            "run",
            "--goldens",
            g.to_str().unwrap(),
            "--modules",
            "projector,lang_embed",
            "--report-dir",
            "out",
            "--format",
            "md",
        ])
        .current_dir(tmp.path())
        .env("GITHUB_STEP_SUMMARY", &step)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = std::fs::read_to_string(&step).unwrap();
    assert!(s.starts_with("earlier step\n# pccscope ✅ PASS"), "{s}");
    let dir = run_dir(&tmp.path().join("out"));
    assert!(dir.join("summary.md").is_file());
    assert!(!dir.join("report.json").exists() && !dir.join("plots").exists());
}

#[test]
fn diff_exits_1_on_a_regressed_op_and_plot_overlays_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let g = goldens();
    let o = run(&g, "vlm", "a", tmp.path(), &["--format", "json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let cap = tmp.path().join("cap");
    copy_dir(&g, &cap);
    let target = "vlm.layers.3.mlp.up";
    common::perturb_op(&cap, target, 0.5, 64);
    let o = run(&cap, "vlm", "b", tmp.path(), &["--format", "json"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let a = run_dir(&tmp.path().join("a"));
    let b = run_dir(&tmp.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    let o = pccscope(&["diff", a, a], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no regression"));

    let o = pccscope(&["diff", a, b, "--output", "diff.md"], tmp.path());
    assert_eq!(code(&o), 1, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| ❌")).collect();
    assert_eq!(rows.len(), 1, "exactly the perturbed op regresses:\n{out}");
    assert!(
        rows[0].contains(target) && rows[0].contains("pass → fail"),
        "{}",
        rows[0]
    );
    assert!(rows[0].contains("chained PCC −"), "{}", rows[0]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("diff.md")).unwrap(),
        out
    );

    // The other way round the op improves: no regression.
    let o = pccscope(&["diff", b, a], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("| ✅ | vlm | `vlm.layers.3.mlp.up`"));
    // A drop smaller than the tolerance is not a regression, but the verdict change still is.
    let o = pccscope(&["diff", a, b, "--pcc-tol", "1"], tmp.path());
    assert_eq!(code(&o), 1, "{}", text(&o));
    let o = pccscope(&["diff", a, "missing"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));

    // Overlay both runs.
    let o = pccscope(
        &["plot", a, b, "-o", "vlm.png", "--module", "vlm"],
        tmp.path(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let png = std::fs::read(tmp.path().join("vlm.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let o = pccscope(&["plot", a, b, "-o", "all.svg"], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let svg = std::fs::read_to_string(tmp.path().join("all.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(
        labels
            .iter()
            .filter(|t| t.starts_with("cpu/exact ("))
            .count()
            == 2,
        "same backend/profile: labels carry the run directory: {labels:?}"
    );
    let o = pccscope(&["plot", a, "-o", "x.jpg"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    let o = pccscope(&["plot", a, "-o", "x.png", "--module", "nope"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no module `nope`"));
}
