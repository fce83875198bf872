//! Helpers shared by the report tests: the committed goldens, a perturbed copy of them, and a
//! lossy device (the cpu reference with its outputs rounded to few mantissa bits) that gives a
//! run real local errors and real accumulated drift without the emu backend.

#![allow(dead_code)]

pub mod fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::{Backend, Op, OpError};
use pccscope::golden::Capture;
use pccscope::harness::thresholds::Thresholds;
use pccscope::harness::{self, Mode, NullSink, RunInputs, RunOptions, RunRecord};
use pccscope::modules::{Checkpoint, ModuleId, Pi0Config, Weights};
use pccscope::tensor::{DType, Tensor};
use serde_json::Value;

pub fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny")
}

pub fn pccscope(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pccscope"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("spawn pccscope")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The single run directory under `dir`.
pub fn run_dir(dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("report dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "expected one run directory in {}",
        dir.display()
    );
    runs[0].clone()
}

/// Adds `f(i)` to element `i` of tensor `key` in a safetensors file of the capture (F32 data),
/// editing the bytes in place.
pub fn perturb_tensor(file: &Path, key: &str, f: impl Fn(usize) -> f32) {
    let mut bytes = std::fs::read(file).unwrap();
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
    let info = &header[key];
    assert_eq!(info["dtype"], "F32", "{key} in {}", file.display());
    let start = 8 + hlen + info["data_offsets"][0].as_u64().unwrap() as usize;
    let end = 8 + hlen + info["data_offsets"][1].as_u64().unwrap() as usize;
    for (i, at) in (start..end).step_by(4).enumerate() {
        let v = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) + f(i);
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(file, bytes).unwrap();
}

/// Adds `delta` to the first `n` elements of op `name`'s golden.
pub fn perturb_op(capture: &Path, name: &str, delta: f32, n: usize) {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(capture.join("manifest.json")).unwrap())
            .unwrap();
    let rec = manifest["modules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["ops"].as_array().unwrap().iter())
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no op {name} in the manifest"))
        .clone();
    let file = capture.join(rec["file"].as_str().expect("full record"));
    let key = rec["tensor"].as_str().unwrap_or(name).to_string();
    perturb_tensor(&file, &key, |i| if i < n { delta } else { 0.0 });
}

/// A copy of the goldens whose input images carry small deterministic noise: every op of
/// `siglip` and of the `pi0` sampler then drifts from its golden, layer after layer.
pub fn drifting_goldens(dir: &Path) -> PathBuf {
    let cap = dir.join("cap");
    copy_dir(&goldens(), &cap);
    perturb_tensor(&cap.join("inputs.safetensors"), "images", |i| {
        let x = (i as f32 * 12.9898).sin() * 43758.547;
        0.006 * (x - x.floor() - 0.5)
    });
    cap
}

/// Rounds to `bits` explicit mantissa bits, ties to even.
pub fn round_mantissa(v: f32, bits: u32) -> f32 {
    if !v.is_finite() {
        return v;
    }
    let shift = 23 - bits;
    let b = v.to_bits();
    let half = 1u32 << (shift - 1);
    let lsb = (b >> shift) & 1;
    f32::from_bits((b.wrapping_add(half - 1 + lsb)) & !((1u32 << shift) - 1))
}

/// The cpu reference with every output stored as bf16, and the outputs of ops whose name
/// contains `coarse` rounded to 2 mantissa bits (a deliberately broken kernel).
pub struct LossyBackend {
    cpu: CpuBackend,
    coarse: Option<String>,
}

impl LossyBackend {
    pub fn new(coarse: Option<&str>) -> LossyBackend {
        LossyBackend {
            cpu: CpuBackend::default(),
            coarse: coarse.map(str::to_string),
        }
    }
}

impl Backend for LossyBackend {
    fn name(&self) -> &str {
        "lossy"
    }
    fn profile(&self) -> &str {
        "bf16-test"
    }
    fn exec(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let out = self.cpu.exec(op, inputs)?;
        let bits = if self.coarse.as_deref().is_some_and(|c| op.name.contains(c)) {
            2
        } else {
            7
        };
        let data: Vec<f32> = out
            .as_slice()
            .iter()
            .map(|&v| round_mantissa(v, bits))
            .collect();
        let mut meta = out.meta.clone();
        meta.dtype = DType::Bf16;
        Ok(Tensor::from_vec(out.shape(), data)
            .expect("same shape")
            .with_meta(meta))
    }
}

/// Runs `modules` of the capture at `dir` on the lossy device with local checks against cpu.
pub fn lossy_run(dir: &Path, modules: &[ModuleId], coarse: Option<&str>) -> RunRecord {
    let capture = Capture::open(dir).expect("open capture");
    let cfg: Pi0Config = serde_json::from_value(capture.manifest().config.clone()).unwrap();
    let ck = Checkpoint::open(&capture.checkpoint_path().unwrap()).unwrap();
    let weights = Weights::new(Arc::new(ck));
    let thresholds = Thresholds::defaults();
    let dev = LossyBackend::new(coarse);
    let cpu = CpuBackend::default();
    let inputs = RunInputs {
        capture: &capture,
        cfg: &cfg,
        weights: &weights,
        thresholds: &thresholds,
        device: &dev,
        reference: Some(&cpu),
        trace: None,
    };
    let opts = RunOptions {
        mode: Mode::Isolated,
        modules: modules.to_vec(),
        fail_fast: false,
        run_id: "lossy-test".into(),
        goldens_label: "goldens/pi0-tiny".into(),
    };
    harness::run(&inputs, &opts, &NullSink)
}
