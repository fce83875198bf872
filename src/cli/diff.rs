//! `pccscope diff RUN_A RUN_B`: per-op regressions of B against A; exit 1 on any.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::exit;
use crate::report::{self, diff::DiffOptions};

#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    /// The base run (e.g. main): a run directory or its report.json.
    a: PathBuf,
    /// The candidate run (e.g. the branch).
    b: PathBuf,
    /// A PCC (chained or local) that drops by more than this is a regression.
    #[arg(long, default_value_t = DiffOptions::default().pcc_tol)]
    pcc_tol: f64,
    /// At most this many rows in the table (regressions first).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Also write the table as Markdown to this file.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub(crate) fn diff(args: DiffArgs) -> Result<u8> {
    if args.pcc_tol.is_nan() || args.pcc_tol < 0.0 {
        bail!("--pcc-tol must be a number ≥ 0, got {}", args.pcc_tol);
    }
    let a = report::json::read(&args.a).map_err(anyhow::Error::msg)?;
    let b = report::json::read(&args.b).map_err(anyhow::Error::msg)?;
    let d = report::diff::diff(
        &a,
        &b,
        DiffOptions {
            pcc_tol: args.pcc_tol,
        },
    );
    let md = report::diff::render_markdown(&d, args.limit);
    print!("{md}");
    if let Some(out) = &args.output {
        report::write_atomic(out, md.as_bytes())
            .with_context(|| format!("write {}", out.display()))?;
    }
    Ok(if d.regressions() > 0 {
        exit::FAILURES
    } else {
        exit::OK
    })
}
