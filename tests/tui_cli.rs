//! `pccscope tui` and `run --tui` on the real binary without a terminal: clear usage errors
//! (exit 2), never a half-drawn screen. The interactive side is tests/tui_tmux.sh.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn pccscope(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pccscope"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("spawn pccscope")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tui_names_a_missing_or_empty_path() {
    let tmp = tempfile::tempdir().unwrap();
    let o = pccscope(&["tui", "nope/report.json"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nope/report.json does not exist"),
        "{}",
        stderr(&o)
    );

    std::fs::create_dir(tmp.path().join("reports")).unwrap();
    let o = pccscope(&["tui"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("reports holds no report.json"),
        "{}",
        stderr(&o)
    );

    std::fs::write(tmp.path().join("bad.json"), "{\"schema\": 1}").unwrap();
    let o = pccscope(&["tui", "bad.json"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("parse "), "{}", stderr(&o));
}

#[test]
fn tui_opens_the_newest_run_and_needs_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = common::fixture::record(&common::fixture::SMALL, true);
    let old = tmp.path().join("reports/20260101-000000-emu-isolated-1");
    pccscope::report::json::write(&rec, &old).unwrap();
    // Everything resolves and parses; only the missing terminal stops it.
    let o = pccscope(&["tui"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
    // A newer run directory is the one opened (here: a broken one, named in the error).
    let new = tmp.path().join("reports/20260102-000000-emu-isolated-2");
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(new.join("report.json"), "not json").unwrap();
    let o = pccscope(&["tui"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("parse") && stderr(&o).contains("20260102-000000-emu-isolated-2"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_tui_without_a_terminal_is_refused_before_running() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny");
    let o = pccscope(
        &[
            "run",
            "--tui",
            "--goldens",
            g.to_str().unwrap(),
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
    assert!(!tmp.path().join("out").exists(), "nothing ran");
}
