//! Handle ownership across a whole run: the host shim counts every device and tensor handle it
//! hands out, and a finished run (backend, weights and record dropped) leaves none alive.
//! Its own test binary, so no other test's handles are counted.

#![cfg(all(feature = "host-shim", not(feature = "tt")))]

use std::path::Path;
use std::sync::Arc;

use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::tt::TtBackend;
use pccscope::golden::Capture;
use pccscope::harness::thresholds::Thresholds;
use pccscope::harness::{self, Mode, NullSink, RunInputs, RunOptions, Verdict};
use pccscope::modules::{Checkpoint, ModuleId, Pi0Config, Weights};

#[test]
fn a_finished_run_leaves_no_live_handles() {
    assert_eq!(tt_metal_sys::live_handles(), (0, 0));
    let capture =
        Capture::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny")).unwrap();
    let cfg: Pi0Config = serde_json::from_value(capture.manifest().config.clone()).unwrap();
    let thresholds = Thresholds::defaults();
    let cpu = CpuBackend::default();
    for mode in [Mode::Isolated, Mode::Pipeline] {
        let weights = Weights::new(Arc::new(
            Checkpoint::open(&capture.checkpoint_path().unwrap()).unwrap(),
        ));
        let b = TtBackend::open(Some("bf16-hifi2")).unwrap();
        let inputs = RunInputs {
            capture: &capture,
            cfg: &cfg,
            weights: &weights,
            thresholds: &thresholds,
            device: &b,
            reference: Some(&cpu),
            trace: None,
        };
        let opts = RunOptions {
            mode,
            modules: vec![
                ModuleId::Siglip,
                ModuleId::Projector,
                ModuleId::LangEmbed,
                ModuleId::Prefix,
                ModuleId::Vlm,
            ],
            fail_fast: false,
            run_id: "leaks".into(),
            goldens_label: "pi0-tiny".into(),
        };
        let r = harness::run(&inputs, &opts, &NullSink);
        assert!(
            r.modules.iter().all(|m| m.verdict != Verdict::Error),
            "{:?}",
            r.summary
        );
        let (devices, tensors) = tt_metal_sys::live_handles();
        assert_eq!(devices, 1, "the backend holds its device during the run");
        assert!(
            tensors > 0,
            "cached weights stay on the device until the run ends"
        );
        drop(r);
        drop(b);
        let (devices, _) = tt_metal_sys::live_handles();
        assert_eq!(
            devices, 1,
            "tensors still cached in the weights keep the device open"
        );
        drop(weights);
        assert_eq!(
            tt_metal_sys::live_handles(),
            (0, 0),
            "{mode:?} run leaked handles"
        );
    }
}
