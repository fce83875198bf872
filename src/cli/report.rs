//! `pccscope report RUN_DIR`: regenerate every format from a saved `report.json`; and the
//! output flags (`--format`, `--junit-granularity`) shared with `pccscope run`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::exit;
use crate::harness::RunRecord;
use crate::report::{self, Format, Granularity};

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("unknown format `{s}` (json, md, junit, plots)"))
}

fn parse_granularity(s: &str) -> Result<Granularity, String> {
    Granularity::parse(s).ok_or_else(|| format!("unknown granularity `{s}` (op or layer)"))
}

/// Which report files to write.
#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// Report formats, comma-separated: json (report.json), md (summary.md), junit (junit.xml),
    /// plots (plots/*.png and *.svg).
    #[arg(long, value_delimiter = ',', default_value = "json,md,junit,plots", value_parser = parse_format)]
    pub format: Vec<Format>,
    /// JUnit test cases: one per op, or one per `layers.{i}` block.
    #[arg(long, default_value = "op", value_parser = parse_granularity)]
    pub junit_granularity: Granularity,
}

impl Default for FormatArgs {
    fn default() -> Self {
        FormatArgs {
            format: Format::ALL.to_vec(),
            junit_granularity: Granularity::Op,
        }
    }
}

/// Writes the requested formats into `dir`, appends the Markdown summary to
/// `$GITHUB_STEP_SUMMARY` when that is set, and prints what was written.
pub(crate) fn emit(record: &RunRecord, dir: &Path, args: &FormatArgs) -> Result<Vec<PathBuf>> {
    let opts = report::Options {
        formats: args.format.clone(),
        junit: args.junit_granularity,
    };
    let files = report::write(record, dir, &opts)
        .with_context(|| format!("write the report to {}", dir.display()))?;
    if args.format.contains(&Format::Md) {
        if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            report::append_step_summary(&path, &report::markdown::render(record))
                .context("append to $GITHUB_STEP_SUMMARY")?;
        }
    }
    let plots = files
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with(report::PLOTS_DIR)))
        .count();
    for f in files
        .iter()
        .filter(|p| !p.parent().is_some_and(|d| d.ends_with(report::PLOTS_DIR)))
    {
        println!("report: {}", f.display());
    }
    if plots > 0 {
        println!(
            "plots:  {} ({plots} files)",
            dir.join(report::PLOTS_DIR).display()
        );
    }
    Ok(files)
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// A run directory holding report.json (or the report.json file itself).
    run: PathBuf,
    /// Where to write (default: the run directory).
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    output: FormatArgs,
}

pub(crate) fn report(args: ReportArgs) -> Result<u8> {
    let record = report::json::read(&args.run).map_err(anyhow::Error::msg)?;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None if args.run.is_dir() => args.run.clone(),
        None => args
            .run
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    emit(&record, &dir, &args.output)?;
    Ok(exit::OK)
}
