//! `pccscope plot RUN_DIR... -o FILE`: several runs (emu profiles, branches) in one chart.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::exit;
use crate::harness::RunRecord;
use crate::report::{self, view::ErrorBasis};

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// Run directories (or report.json files), overlaid in this order; the first sets the x axis.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output file: .png or .svg.
    #[arg(long, short)]
    output: PathBuf,
    /// Plot PCC vs layer of this module (default: 1 − PCC across the whole pipeline).
    #[arg(long)]
    module: Option<String>,
    /// Which check's PCC to draw: chained or local.
    #[arg(long, default_value = "chained")]
    check: String,
    /// Legend labels, comma-separated, one per run (default: backend/profile, plus the
    /// directory name where those repeat).
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
}

fn dir_name(p: &std::path::Path) -> String {
    let p = if p.is_file() {
        p.parent().unwrap_or(p)
    } else {
        p
    };
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

pub(crate) fn plot(args: PlotArgs) -> Result<u8> {
    let check = match args.check.as_str() {
        "chained" => ErrorBasis::Chained,
        "local" => ErrorBasis::Local,
        other => bail!("unknown check `{other}` (chained or local)"),
    };
    let records: Vec<RunRecord> = args
        .runs
        .iter()
        .map(|p| report::json::read(p).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let labels: Vec<String> = match &args.labels {
        Some(l) if l.len() != records.len() => bail!(
            "--labels has {} entries for {} runs",
            l.len(),
            records.len()
        ),
        Some(l) => l.clone(),
        None => {
            let base: Vec<String> = records
                .iter()
                .map(|r| format!("{}/{}", r.run.backend, r.run.profile))
                .collect();
            base.iter()
                .zip(&args.runs)
                .map(|(b, p)| {
                    if base.iter().filter(|x| *x == b).count() > 1 {
                        format!("{b} ({})", dir_name(p))
                    } else {
                        b.clone()
                    }
                })
                .collect()
        }
    };
    let runs: Vec<(String, &RunRecord)> = labels.into_iter().zip(records.iter()).collect();
    report::plots::overlay(&runs, args.module.as_deref(), check, &args.output)
        .with_context(|| format!("plot {}", args.output.display()))?;
    println!("plot: {}", args.output.display());
    Ok(exit::OK)
}
