//! `report.json`: the run record as JSON (schema `pccscope.report/1`).

use std::path::Path;

use crate::harness::RunRecord;

/// Serialises the record.
pub fn to_string(record: &RunRecord) -> serde_json::Result<String> {
    serde_json::to_string_pretty(record)
}

/// Writes `dir/report.json` atomically and returns its path.
pub fn write(record: &RunRecord, dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join("report.json");
    let text = to_string(record).map_err(std::io::Error::other)?;
    super::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Reads a saved report (a `report.json` file or a run directory holding one).
pub fn read(path: &Path) -> Result<RunRecord, String> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", file.display()))
}
