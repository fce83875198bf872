//! Report writers. Each reads only the [`RunRecord`](crate::harness::RunRecord) (and the metric
//! and tolerance types inside it); adding a format touches one file here. Files are written
//! atomically (temp file in the same directory, fsync, rename).
//!
//! * `report.json` ([`json`]): the record itself, the input of `pccscope report/plot/diff`;
//! * `summary.md` ([`markdown`]): for a person reading a CI job;
//! * `junit.xml` ([`junit`]): for the CI system's test view;
//! * `plots/` ([`plots`]): PCC vs layer per module, 1 − PCC across the pipeline, error heatmaps;
//! * [`diff`]: two records compared op by op (regressions gate a merge).

pub mod diff;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod plots;
pub mod view;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::harness::RunRecord;

pub use junit::Granularity;

/// A report file could not be produced.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("draw plot {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    #[error("serialise {}", path.display())]
    Serialise {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("unknown plot file type `{}` (use .png or .svg)", path.display())]
    PlotExtension { path: PathBuf },
    #[error("nothing to plot: {0}")]
    NothingToPlot(String),
}

/// One output format of `pccscope run --format` / `pccscope report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Json,
    Md,
    Junit,
    Plots,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Json, Format::Md, Format::Junit, Format::Plots];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Md => "md",
            Format::Junit => "junit",
            Format::Plots => "plots",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s.trim() {
            "json" => Some(Format::Json),
            "md" | "markdown" => Some(Format::Md),
            "junit" | "xml" => Some(Format::Junit),
            "plots" | "plot" => Some(Format::Plots),
            _ => None,
        }
    }
}

/// What [`write`] produces.
#[derive(Debug, Clone)]
pub struct Options {
    pub formats: Vec<Format>,
    pub junit: Granularity,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            formats: Format::ALL.to_vec(),
            junit: Granularity::Op,
        }
    }
}

/// `summary.md` in `dir`.
pub const SUMMARY_MD: &str = "summary.md";
/// `junit.xml` in `dir`.
pub const JUNIT_XML: &str = "junit.xml";
/// The plots' subdirectory of `dir`.
pub const PLOTS_DIR: &str = "plots";

/// Writes every requested format of `record` into `dir`; returns the files written, in format
/// order (plots: every PNG and SVG).
///
/// # Errors
/// The first file that could not be written or drawn.
pub fn write(record: &RunRecord, dir: &Path, opts: &Options) -> Result<Vec<PathBuf>, ReportError> {
    let mut formats = opts.formats.clone();
    formats.sort();
    formats.dedup();
    let mut written = Vec::new();
    for f in formats {
        match f {
            Format::Json => {
                let path = dir.join("report.json");
                let text = json::to_string(record).map_err(|e| ReportError::Serialise {
                    path: path.clone(),
                    source: Box::new(e),
                })?;
                write_file(&path, text.as_bytes())?;
                written.push(path);
            }
            Format::Md => {
                let path = dir.join(SUMMARY_MD);
                write_file(&path, markdown::render(record).as_bytes())?;
                written.push(path);
            }
            Format::Junit => {
                let path = dir.join(JUNIT_XML);
                let text =
                    junit::render(record, opts.junit).map_err(|e| ReportError::Serialise {
                        path: path.clone(),
                        source: Box::new(e),
                    })?;
                write_file(&path, text.as_bytes())?;
                written.push(path);
            }
            Format::Plots => written.extend(plots::write_all(record, &dir.join(PLOTS_DIR))?),
        }
    }
    Ok(written)
}

/// [`write_atomic`] with the path in the error.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    write_atomic(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Appends `markdown` to a GitHub step summary file (`$GITHUB_STEP_SUMMARY`), which CI
/// creates and other steps append to too, so this appends rather than replacing.
///
/// # Errors
/// The file cannot be opened or written.
pub fn append_step_summary(path: &Path, markdown: &str) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(markdown.as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    Ok(())
}

/// Writes `bytes` to `path` atomically: readers see the old file or the whole new one.
///
/// # Errors
/// Any I/O failure, with the path in the message.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}
