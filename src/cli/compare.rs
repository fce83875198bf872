//! `pccscope compare GOLDEN_DIR CAPTURE_DIR`: check an external capture (a TT-NN port's trace,
//! a saved device run) against the goldens, write the report, print the summary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::backend::cpu::CpuBackend;
use crate::cli::progress;
use crate::cli::run::{exit_code, print_summary, resolve_goldens, run_id};
use crate::golden::Capture;
use crate::harness::compare::{self, CompareInputs, CompareOptions, Comparison, RenameMap};
use crate::harness::thresholds::Thresholds;
use crate::harness::NullSink;
use crate::modules::{Checkpoint, Pi0Config, Weights};

/// Names listed in full before the rest is counted.
const LIST_LIMIT: usize = 20;

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Capture directory holding the goldens.
    goldens: PathBuf,
    /// Capture directory to check (manifest.json + safetensors shards).
    capture: PathBuf,
    /// TOML rename map from capture names to golden names ([[rename]] from/to globs,
    /// [modules] capture id = golden id).
    #[arg(long)]
    map: Option<PathBuf>,
    /// TOML file overriding tolerances and module gates.
    #[arg(long)]
    thresholds: Option<PathBuf>,
    /// Where `<run-id>/report.json` is written.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Checkpoint for the local checks instead of the one the goldens name.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    output: crate::cli::report::FormatArgs,
}

pub(crate) fn compare(args: CompareArgs) -> Result<u8> {
    let goldens_dir = resolve_goldens(&args.goldens);
    let goldens = Capture::open(&goldens_dir)
        .with_context(|| format!("open goldens {}", goldens_dir.display()))?;
    let capture = Capture::open(&args.capture)
        .with_context(|| format!("open capture {}", args.capture.display()))?;
    let map = match &args.map {
        Some(p) => RenameMap::load(p)?,
        None => RenameMap::identity(),
    };
    let thresholds = match &args.thresholds {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::defaults(),
    };
    let weights = match args
        .checkpoint
        .clone()
        .or_else(|| goldens.checkpoint_path())
    {
        Some(path) => {
            let ckpt = Checkpoint::open(&path)?;
            if let Ok(cfg) = serde_json::from_value::<Pi0Config>(goldens.manifest().config.clone())
            {
                ckpt.validate(&cfg)?;
            }
            Some(Weights::new(Arc::new(ckpt)))
        }
        None => None,
    };
    let reference = CpuBackend::default();
    let inputs = CompareInputs {
        goldens: &goldens,
        capture: &capture,
        map: &map,
        thresholds: &thresholds,
        reference: &reference,
        weights: weights.as_ref(),
    };
    let (gm, cm) = (goldens.manifest(), capture.manifest());
    if gm.model != cm.model || gm.preset != cm.preset {
        eprintln!(
            "warning: the capture is {} / {} but the goldens are {} / {}",
            cm.model, cm.preset, gm.model, gm.preset
        );
    }
    if cm
        .producer
        .get("partial")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        eprintln!(
            "warning: {} is a partial capture (its producer stopped before closing it); \
             comparing what it holds",
            args.capture.display()
        );
    }
    let (backend, _) = compare::producer_labels(&cm.producer);
    let opts = CompareOptions {
        run_id: run_id(&backend, "compare"),
        goldens_label: goldens_dir.display().to_string(),
    };
    let result = if !args.quiet && std::io::stderr().is_terminal() {
        let sink = progress::Progress::new();
        let r = compare::compare(&inputs, &opts, &sink);
        sink.finish();
        r
    } else {
        compare::compare(&inputs, &opts, &NullSink)
    };

    let dir = args.report_dir.join(&result.record.run.id);
    println!(
        "capture {} · map {}",
        args.capture.display(),
        map.describe()
    );
    print_summary(&result.record);
    print_alignment(&result);
    crate::cli::report::emit(&result.record, &dir, &args.output)?;
    Ok(exit_code(&result.record))
}

fn list(label: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let shown: Vec<&str> = names.iter().take(LIST_LIMIT).map(String::as_str).collect();
    let more = names.len().saturating_sub(LIST_LIMIT);
    let tail = if more > 0 {
        format!(" … and {more} more")
    } else {
        String::new()
    };
    println!("{label} ({}): {}{tail}", names.len(), shown.join(", "));
}

fn print_alignment(c: &Comparison) {
    let total: usize = c.record.modules.iter().map(|m| m.ops.len()).sum();
    let mut line = format!("local checks: {} of {total} ops", c.local_checks);
    if !c.no_local.is_empty() {
        let why: Vec<String> = c.no_local.iter().map(|(k, n)| format!("{n} {k}")).collect();
        line.push_str(&format!(" (none for {})", why.join(", ")));
    }
    println!("{line}");
    if !c.renamed.is_empty() {
        let examples: Vec<String> = c
            .renamed
            .iter()
            .take(3)
            .map(|(from, to)| format!("{from} → {to}"))
            .collect();
        println!(
            "renamed by the map: {} ops (e.g. {})",
            c.renamed.len(),
            examples.join(", ")
        );
    }
    for m in &c.record.modules {
        list(
            &format!("{}: golden ops without a capture op", m.id),
            &m.missing_device,
        );
        list(
            &format!("{}: capture ops without a golden", m.id),
            &m.missing_golden,
        );
    }
    list("golden modules not in the capture", &c.absent_modules);
}
