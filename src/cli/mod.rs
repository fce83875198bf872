//! Command line: `pccscope run` (the default), `compare`, `inspect`, `report`, `plot`, `diff`
//! and `tui`. All printing happens here.

mod compare;
mod diff;
pub mod exit;
mod inspect;
mod plot;
mod progress;
mod report;
mod run;
mod tui;

pub use report::FormatArgs;
pub use run::{exit_code, RunArgs};

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Per-op PCC tracing for bringing up pi0 on Tenstorrent hardware.
#[derive(Parser, Debug)]
#[command(name = "pccscope", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the pi0 modules on a backend and check every op against the goldens (default).
    Run(RunArgs),
    /// Check an external capture (a TT-NN port's trace, a saved device run) against goldens.
    Compare(compare::CompareArgs),
    /// Describe a checkpoint (.safetensors) or a capture directory.
    Inspect {
        /// A checkpoint file or a capture directory.
        path: PathBuf,
    },
    /// Regenerate summary.md, junit.xml, plots (and report.json) from a saved report.json.
    Report(report::ReportArgs),
    /// Overlay several runs in one chart (PNG or SVG).
    Plot(plot::PlotArgs),
    /// Compare two runs op by op; exit 1 when B regresses against A.
    Diff(diff::DiffArgs),
    /// Browse a saved run (report.json, a run directory, or the newest run in a reports dir).
    Tui(tui::TuiArgs),
}

/// Parses the arguments and runs; returns the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::SETUP
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        None => run::run(RunArgs::default()),
        Some(Command::Run(a)) => run::run(a),
        Some(Command::Compare(a)) => compare::compare(a),
        Some(Command::Inspect { path }) => inspect::inspect(&path).map(|()| exit::OK),
        Some(Command::Report(a)) => report::report(a),
        Some(Command::Plot(a)) => plot::plot(a),
        Some(Command::Diff(a)) => diff::diff(a),
        Some(Command::Tui(a)) => tui::tui(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::SETUP
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
