//! `pccscope tui [PATH]` (a saved run) and the glue for `pccscope run --tui` (a live one).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::exit;
use crate::harness::EventSink;
use crate::report;

#[derive(Args, Debug, Clone)]
pub struct TuiArgs {
    /// A report.json, a run directory, or a reports directory (its newest run is opened).
    #[arg(default_value = "reports")]
    path: PathBuf,
}

/// Fails unless stdin and stdout are a terminal.
pub(crate) fn require_terminal() -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the TUI needs a terminal on stdin and stdout (run without --tui to get the text summary)");
    }
    Ok(())
}

/// The report a path names: the file, a run directory's report.json, or the newest run
/// directory (run ids start with the UTC time) under a reports directory.
fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_file() || path.join("report.json").is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        let newest = std::fs::read_dir(path)
            .with_context(|| format!("read {}", path.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("report.json").is_file())
            .max_by(|a, b| a.file_name().cmp(&b.file_name()));
        return newest.with_context(|| {
            format!(
                "{} holds no report.json nor run directories with one",
                path.display()
            )
        });
    }
    bail!(
        "{} does not exist (expected a report.json or a run directory)",
        path.display()
    )
}

pub(crate) fn tui(args: TuiArgs) -> Result<u8> {
    let path = resolve(&args.path)?;
    let record = report::json::read(&path).map_err(anyhow::Error::msg)?;
    require_terminal()?;
    crate::tui::run_saved(record).context("terminal UI")?;
    Ok(exit::OK)
}

/// Runs `work` behind the live screen (see [`crate::tui::run_live`]).
pub(crate) fn live<T, W>(has_local: bool, work: W) -> Result<T>
where
    T: Send,
    W: FnOnce(&dyn EventSink, &dyn Fn(String)) -> T + Send,
{
    crate::tui::run_live(has_local, work).context("terminal UI")
}
