//! `pccscope run`: load the goldens, the checkpoint and the thresholds, run the modules, write
//! the report, print the summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;

use crate::backend::{self, Backend};
use crate::cli::{exit, progress};
use crate::golden::{Capture, CaptureWriter};
use crate::harness::thresholds::Thresholds;
use crate::harness::{self, Mode, NullSink, RunInputs, RunOptions, RunRecord, Verdict};
use crate::modules::{Checkpoint, ModuleId, Pi0Config, Weights};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Capture directory holding the goldens.
    #[arg(long, default_value = "goldens/pi0-tiny")]
    goldens: PathBuf,
    /// Device backend: cpu (the f32 reference), emu (the Tensix numerics emulator), or tt
    /// (Tenstorrent through TT-NN; needs a build with `--features tt`, or `--features host-shim`
    /// for the host implementation of its ABI).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Precision profile of the emu backend: exact, bf16-hifi2 (default), bf16-hifi4-fp32acc,
    /// bfp8-lofi, bfp4-lofi, pi0-tt, or a .toml file of op-name glob rules.
    #[arg(long)]
    profile: Option<String>,
    /// isolated: every module gets golden inputs; pipeline: modules chain device outputs.
    #[arg(long, default_value = "isolated")]
    mode: String,
    /// Comma-separated module ids (default: all 11 in data-flow order).
    #[arg(long, value_delimiter = ',')]
    modules: Option<Vec<String>>,
    /// TOML file overriding tolerances and module gates.
    #[arg(long)]
    thresholds: Option<PathBuf>,
    /// Where `<run-id>/` (report.json, summary.md, junit.xml, plots/) is written.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Also save the device run as a capture in this directory.
    #[arg(long)]
    save_trace: Option<PathBuf>,
    /// Stop after the first module that fails or raises.
    #[arg(long)]
    fail_fast: bool,
    /// Checkpoint to load instead of the one the capture names.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    output: crate::cli::report::FormatArgs,
    /// Watch the run in the terminal UI (the summary is printed when it closes).
    #[arg(long)]
    tui: bool,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            goldens: PathBuf::from("goldens/pi0-tiny"),
            backend: "cpu".into(),
            profile: None,
            mode: "isolated".into(),
            modules: None,
            thresholds: None,
            report_dir: PathBuf::from("reports"),
            save_trace: None,
            fail_fast: false,
            checkpoint: None,
            quiet: false,
            output: Default::default(),
            tui: false,
        }
    }
}

/// Finds the goldens directory: as given, else relative to the crate (for `cargo run`).
pub(crate) fn resolve_goldens(p: &Path) -> PathBuf {
    if p.exists() || p.is_absolute() {
        return p.to_path_buf();
    }
    let alt = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
    if alt.exists() {
        alt
    } else {
        p.to_path_buf()
    }
}

/// Builds the device backend by name.
fn device(name: &str, profile: Option<&str>) -> Result<Box<dyn Backend>> {
    backend::by_name(name, profile).map_err(anyhow::Error::msg)
}

pub(crate) fn run(args: RunArgs) -> Result<u8> {
    if args.tui {
        super::tui::require_terminal()?;
    }
    let goldens = resolve_goldens(&args.goldens);
    let capture =
        Capture::open(&goldens).with_context(|| format!("open goldens {}", goldens.display()))?;
    let cfg: Pi0Config = serde_json::from_value(capture.manifest().config.clone())
        .with_context(|| format!("read the pi0 config in {}/manifest.json", goldens.display()))?;
    cfg.validate()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("invalid config in {}/manifest.json", goldens.display()))?;
    let ckpt_path = match &args.checkpoint {
        Some(p) => p.clone(),
        None => capture.checkpoint_path().with_context(|| {
            format!(
                "{}/manifest.json names no checkpoint; pass --checkpoint",
                goldens.display()
            )
        })?,
    };
    let checkpoint = Checkpoint::open(&ckpt_path)?;
    checkpoint.validate(&cfg)?;
    let weights = Weights::new(Arc::new(checkpoint));
    let thresholds = match &args.thresholds {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::defaults(),
    };
    let mode = Mode::parse(&args.mode)
        .with_context(|| format!("unknown mode `{}` (isolated or pipeline)", args.mode))?;
    let modules = match &args.modules {
        None => ModuleId::ALL.to_vec(),
        Some(list) => list
            .iter()
            .map(|m| {
                ModuleId::parse(m.trim()).with_context(|| {
                    let all: Vec<&str> = ModuleId::ALL.iter().map(|m| m.as_str()).collect();
                    format!("unknown module `{m}` (one of {})", all.join(", "))
                })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let dev = device(&args.backend, args.profile.as_deref())?;
    let cpu = backend::cpu::CpuBackend::default();
    let reference: Option<&dyn Backend> = if dev.name() == "cpu" {
        None
    } else {
        Some(&cpu)
    };
    let run_id = run_id(dev.name(), mode.as_str());
    let trace = args
        .save_trace
        .as_ref()
        .map(|dir| -> Result<Mutex<CaptureWriter>> {
            let producer = serde_json::json!({
                "name": "pccscope",
                "kind": "pccscope-backend",
                "version": env!("CARGO_PKG_VERSION"),
                "backend": dev.name(),
                "profile": dev.profile(),
                "mode": mode.as_str(),
            });
            let m = capture.manifest();
            let w = CaptureWriter::new(dir, producer, &m.model, &m.preset, m.config.clone())
                .with_context(|| format!("create trace capture {}", dir.display()))?;
            Ok(Mutex::new(w))
        })
        .transpose()?;
    if let Some(w) = &trace {
        let mut w = w
            .lock()
            .map_err(|_| anyhow::anyhow!("trace writer poisoned"))?;
        // Capture paths may not leave their directory, so a trace names no checkpoint: reuse
        // it as goldens with `--checkpoint`.
        w.set_checkpoint(None);
        for input in &capture.manifest().inputs {
            let t = capture
                .tensor(&input.name)
                .with_context(|| format!("read input `{}` for the trace", input.name))?;
            w.add_input(&input.name, &t, &input.dtype)
                .with_context(|| format!("add input `{}` to the trace", input.name))?;
        }
        for id in &modules {
            w.begin_module(id.as_str(), id.inputs(&cfg), id.outputs(&cfg));
        }
    }
    let inputs = RunInputs {
        capture: &capture,
        cfg: &cfg,
        weights: &weights,
        thresholds: &thresholds,
        device: dev.as_ref(),
        reference,
        trace: trace.as_ref(),
    };
    let opts = RunOptions {
        mode,
        modules,
        fail_fast: args.fail_fast,
        run_id: run_id.clone(),
        goldens_label: goldens.display().to_string(),
    };
    let dir = args.report_dir.join(&run_id);
    let record = if args.tui {
        super::tui::live(reference.is_some(), |sink, _note| {
            harness::run(&inputs, &opts, sink)
        })?
    } else if !args.quiet && std::io::stderr().is_terminal() {
        let sink = progress::Progress::new();
        let r = harness::run(&inputs, &opts, &sink);
        sink.finish();
        r
    } else {
        harness::run(&inputs, &opts, &NullSink)
    };
    if let Some(w) = trace {
        let w = w
            .into_inner()
            .map_err(|_| anyhow::anyhow!("trace writer poisoned"))?;
        w.finish().context("write the trace capture")?;
    }
    print_summary(&record);
    crate::cli::report::emit(&record, &dir, &args.output)?;
    Ok(exit_code(&record))
}

/// Exit code of a finished run (DESIGN §7).
pub fn exit_code(r: &RunRecord) -> u8 {
    if r.summary.ops_checked == 0 && r.summary.verdict != Verdict::Error {
        exit::NOTHING_CHECKED
    } else if r.summary.verdict == Verdict::Pass {
        exit::OK
    } else {
        exit::FAILURES
    }
}

fn fmt_pcc(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_string(), |p| format!("{p:.7}"))
}

pub(crate) fn print_summary(r: &RunRecord) {
    println!(
        "pccscope {} · backend {} · profile {} · mode {} · goldens {}",
        r.run.id, r.run.backend, r.run.profile, r.run.mode, r.run.goldens
    );
    println!(
        "{:<15} {:<11} {:>11} {:>6} {:>7}  first divergence",
        "module", "verdict", "min PCC", "ops", "failed"
    );
    for m in &r.modules {
        let first = m
            .ops
            .iter()
            .find(|o| o.verdict.is_bad())
            .map(|o| o.name.as_str())
            .or(m.error.as_deref())
            .unwrap_or("-");
        println!(
            "{:<15} {:<11} {:>11} {:>6} {:>7}  {}",
            m.id,
            m.verdict.as_str(),
            fmt_pcc(m.min_pcc),
            m.ops.len(),
            m.ops_failed,
            first
        );
        if let (Some(e), true) = (&m.error, m.ops_failed == 0) {
            if m.verdict.is_bad() {
                println!("{:<15} error: {e}", "");
            }
        }
    }
    let s = &r.summary;
    let first = s.first_divergence.as_ref().map_or_else(
        || "none".to_string(),
        |f| format!("{} (module {}, op #{})", f.op, f.module, f.index),
    );
    println!(
        "run: {} · {} ops ({} checked, {} failed, {} errors) · coverage {:.1}% · {:.2}s",
        s.verdict.as_str(),
        s.ops,
        s.ops_checked,
        s.ops_failed,
        s.ops_error,
        s.coverage * 100.0,
        r.run.duration_s
    );
    println!("first divergence: {first}");
    if s.ops_unsupported > 0 {
        let per: Vec<String> = r
            .modules
            .iter()
            .filter_map(|m| {
                m.on_device_pct
                    .filter(|p| *p < 100.0)
                    .map(|p| format!("{} {p:.1}%", m.id))
            })
            .collect();
        println!(
            "host fallback: {} ops ran on the host (on device: {})",
            s.ops_unsupported,
            per.join(", ")
        );
    }
    if let Some(d) = s.sharpest_drop.as_ref().filter(|d| d.from - d.to >= 1e-6) {
        println!("sharpest PCC drop: {} ({:.7} → {:.7})", d.op, d.from, d.to);
    }
}

/// `YYYYmmdd-HHMMSS-<backend>-<mode>` in UTC, plus the pid to keep parallel runs apart.
pub(crate) fn run_id(backend: &str, mode: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{mo:02}{d:02}-{:02}{:02}{:02}-{backend}-{}-{}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        mode,
        std::process::id()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
