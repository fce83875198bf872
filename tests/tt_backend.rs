//! The `tt` backend through the whole FFI layer (tt-metal-sys, host implementation of the ABI)
//! on pi0-tiny: every module in both modes against the cpu reference, device metadata, host
//! fallbacks, TT-NN errors as op errors, and the CLI.

#![cfg(all(feature = "host-shim", not(feature = "tt")))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::tt::{TtBackend, TtPrecision};
use pccscope::backend::{by_name, Backend, Op, OpError, OpKind};
use pccscope::golden::Capture;
use pccscope::harness::thresholds::Thresholds;
use pccscope::harness::{self, Mode, NullSink, RunInputs, RunOptions, RunRecord, Tracer, Verdict};
use pccscope::modules::{Checkpoint, ModuleId, Pi0Config, Weights};
use pccscope::tensor::{DType, Layout, Tensor};

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny")
}

fn tt(profile: &str) -> TtBackend {
    TtBackend::open(Some(profile)).expect("open the tt backend on the host shim")
}

/// Runs `modules` of pi0-tiny on `device` with the cpu reference, as `pccscope run` does.
fn run(device: &dyn Backend, mode: Mode, modules: &[ModuleId]) -> RunRecord {
    let capture = Capture::open(goldens()).unwrap();
    let cfg: Pi0Config = serde_json::from_value(capture.manifest().config.clone()).unwrap();
    let ckpt = Checkpoint::open(&capture.checkpoint_path().unwrap()).unwrap();
    let weights = Weights::new(Arc::new(ckpt));
    let thresholds = Thresholds::defaults();
    let cpu = CpuBackend::default();
    let inputs = RunInputs {
        capture: &capture,
        cfg: &cfg,
        weights: &weights,
        thresholds: &thresholds,
        device,
        reference: Some(&cpu),
        trace: None,
    };
    let opts = RunOptions {
        mode,
        modules: modules.to_vec(),
        fail_fast: false,
        run_id: "test".into(),
        goldens_label: "pi0-tiny".into(),
    };
    harness::run(&inputs, &opts, &NullSink)
}

const HOST_KINDS: [&str; 4] = [
    "interpolate_bicubic",
    "attn_mask_2d",
    "positions",
    "time_embed",
];

/// Every module ran every golden op; every op matches the goldens at PCC ≥ 0.99999 (chained)
/// and the cpu backend on its own inputs (local); only the four host kinds fell back.
fn assert_matches_cpu(r: &RunRecord) {
    assert_eq!(r.run.backend, "tt");
    assert_eq!(r.modules.len(), 11);
    assert_eq!(r.summary.ops, 5101);
    assert_eq!(r.summary.verdict, Verdict::Pass, "{:?}", r.summary);
    for m in &r.modules {
        assert!(m.error.is_none(), "{}: {:?}", m.id, m.error);
        assert!(
            m.missing_device.is_empty(),
            "{}: {:?}",
            m.id,
            m.missing_device
        );
        let fallback = m
            .ops
            .iter()
            .filter(|o| o.verdict == Verdict::Unsupported)
            .count();
        let want = 100.0 * (m.ops.len() - fallback) as f64 / m.ops.len() as f64;
        assert_eq!(m.on_device_pct, Some(want), "{}", m.id);
        for o in &m.ops {
            let on_host = HOST_KINDS.contains(&o.kind.as_str());
            if on_host {
                assert_eq!(o.verdict, Verdict::Unsupported, "{}", o.name);
                continue;
            }
            assert_eq!(o.verdict, Verdict::Pass, "{}: {:?}", o.name, o.error);
            if let Some(c) = &o.chained {
                let pcc = c.metrics.pcc.unwrap_or(1.0);
                assert!(pcc >= 0.99999, "{}: chained PCC {pcc}", o.name);
            }
            let local = o.local.as_ref().expect("every device op has a local check");
            assert!(local.pass, "{}: {:?}", o.name, local.reason);
            // The device's own metadata: f32 (exact profile) in tiles, padded to 32.
            assert_eq!(o.dtype, "f32", "{}", o.name);
            assert_eq!(o.layout, "tile", "{}", o.name);
            assert_eq!(o.memory, "dram_interleaved", "{}", o.name);
            let n = o.padded_shape.len();
            assert_eq!(n, o.shape.len());
            for (i, (&p, &s)) in o.padded_shape.iter().zip(&o.shape).enumerate() {
                if i + 2 >= n {
                    assert!(
                        p % 32 == 0 && p >= s,
                        "{}: padded {:?}",
                        o.name,
                        o.padded_shape
                    );
                } else {
                    assert_eq!(p, s, "{}", o.name);
                }
            }
            let prec = o.precision.as_ref().expect("precision recorded");
            assert_eq!(prec["profile"], "exact");
            assert_eq!(prec["abi"], "host");
            assert!(prec["impl"]
                .as_str()
                .is_some_and(|s| !s.contains("host fallback")));
        }
    }
    assert_eq!(r.summary.ops_unsupported, 39);
    let attn = r.modules.iter().find(|m| m.id == "attn_masks").unwrap();
    assert!((attn.on_device_pct.unwrap() - 400.0 / 6.0).abs() < 1e-9);
    let proj = r.modules.iter().find(|m| m.id == "projector").unwrap();
    assert_eq!(proj.on_device_pct, Some(100.0));
}

#[test]
fn all_modules_isolated_match_the_cpu_backend() {
    let b = tt("exact");
    let r = run(&b, Mode::Isolated, &ModuleId::ALL);
    assert_matches_cpu(&r);
    assert_eq!(r.run.profile, "exact");
}

#[test]
fn all_modules_pipeline_match_the_cpu_backend() {
    let b = tt("exact");
    let r = run(&b, Mode::Pipeline, &ModuleId::ALL);
    assert_matches_cpu(&r);
    let vlm = r.modules.iter().find(|m| m.id == "vlm").unwrap();
    assert_eq!(vlm.inputs_from, "device");
}

#[test]
fn bf16_profile_records_bf16_storage_and_passes_local_checks() {
    let b = tt("bf16-hifi2");
    let r = run(
        &b,
        Mode::Isolated,
        &[ModuleId::Siglip, ModuleId::LangEmbed, ModuleId::Vlm],
    );
    for m in &r.modules {
        for o in m.ops.iter().filter(|o| o.verdict != Verdict::Unsupported) {
            assert_eq!(o.dtype, "bf16", "{}", o.name);
            assert!(
                o.local.as_ref().is_some_and(|c| c.pass),
                "{}: {:?}",
                o.name,
                o.local
            );
            let p = o.precision.as_ref().unwrap();
            assert_eq!(
                (p["math_fidelity"].as_str(), p["weight_dtype"].as_str()),
                (Some("HiFi2"), Some("bf16"))
            );
        }
    }
    let emb = &r.modules[1].ops[0];
    assert_eq!(emb.name, "lang_embed.embedding");
    assert_eq!(
        emb.precision.as_ref().unwrap()["impl"],
        "ttnn::embedding (BFLOAT16 table)"
    );
}

fn host(shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(f).collect()).unwrap()
}

fn pcc(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&x| x as f64).sum::<f64>() / n,
        b.iter().map(|&x| x as f64).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn fused_sdpa_and_rotary_embedding_paths_match_the_cpu_backend() {
    // pi0-tiny's head_dim 16 takes the composite paths; these shapes take the fused TT-NN ops.
    let cpu = CpuBackend::default();
    let (t, s) = (40usize, 40usize);
    let q = host(&[1, t, 2 * 32], |i| ((i * 7 % 23) as f32 - 11.0) / 16.0);
    let k = host(&[1, s, 32], |i| ((i * 5 % 19) as f32 - 9.0) / 16.0);
    let v = host(&[1, s, 32], |i| ((i * 3 % 17) as f32 - 8.0) / 8.0);
    let mask = host(
        &[1, 1, t, s],
        |i| if i % s > (i / s) % s { -1e9 } else { 0.0 },
    );
    let sdpa = Op::new(
        "test.sdpa",
        OpKind::Sdpa {
            q_heads: 2,
            kv_heads: 1,
            head_dim: 32,
            scale: 32f32.powf(-0.5),
        },
    );
    let bf = tt("bf16-hifi4-fp32acc");
    assert_eq!(
        bf.precision(&sdpa).unwrap()["impl"],
        "ttnn::transformer::scaled_dot_product_attention"
    );
    let got = bf.exec(&sdpa, &[&q, &k, &v, &mask]).unwrap();
    let want = cpu.exec(&sdpa, &[&q, &k, &v, &mask]).unwrap();
    assert_eq!(got.shape(), want.shape());
    assert_eq!(got.meta.dtype, DType::Bf16);
    let p = pcc(&got.as_slice(), &want.as_slice());
    assert!(p > 0.999, "fused sdpa PCC {p}");

    let rope = Op::new(
        "test.rope",
        OpKind::Rope {
            theta: 10_000.0,
            head_dim: 64,
        },
    );
    let x = host(&[1, t, 2 * 64], |i| ((i * 11 % 29) as f32 - 14.0) / 8.0);
    let pos = host(&[1, t], |i| (i + 3) as f32);
    let exact = tt("exact");
    assert!(exact.precision(&rope).unwrap()["impl"]
        .as_str()
        .unwrap()
        .starts_with("ttnn::experimental::rotary_embedding"));
    let got = exact.exec(&rope, &[&x, &pos]).unwrap();
    let want = cpu.exec(&rope, &[&x, &pos]).unwrap();
    assert_eq!(got.shape(), want.shape(), "tile-padded rows are sliced off");
    assert_eq!(
        &*got.as_slice(),
        &*want.as_slice(),
        "f32 rotary is bit-exact"
    );
    assert_eq!(got.meta.layout, Layout::Tile);
}

#[test]
fn outputs_stay_on_the_device_between_ops() {
    let b = tt("exact");
    let a = host(&[1, 3, 40], |i| i as f32 / 7.0);
    let add = Op::new("t.add", OpKind::Add);
    let y = b.exec(&add, &[&a, &a]).unwrap();
    assert!(y.device().is_some(), "the output keeps its device tensor");
    // A consumer of `y` uses the device tensor: prove it by making the host copy disagree.
    let doctored = Tensor::from_vec(y.shape(), vec![0.0; y.len()])
        .unwrap()
        .with_device(y.device().unwrap().clone());
    let z = b
        .exec(
            &Op::new("t.mul", OpKind::MulScalar { value: 2.0 }),
            &[&doctored],
        )
        .unwrap();
    assert_eq!(z.as_slice()[5], 2.0 * (5.0f32 / 7.0 + 5.0 / 7.0));
    // A tensor from another backend instance (same device) is still usable.
    let other = tt("exact");
    let w = other
        .exec(&Op::new("t.neg", OpKind::MulScalar { value: -1.0 }), &[&y])
        .unwrap();
    assert_eq!(w.as_slice()[1], -(y.as_slice()[1]));
}

#[test]
fn an_error_raised_inside_the_shim_is_an_op_error_with_its_message() {
    let b = tt("exact");
    let what = "TT_FATAL @ /tt-metal/ttnn/cpp/ttnn/operations/normalization/layernorm/device/\
                layernorm_device_operation.cpp:57: gamma.padded_shape()[-1] == a.padded_shape()[-1]\n\
                info:\nGamma width 32 does not match input width 48\n\
                backtrace:\n --- ttnn::prim::layer_norm\n";
    tt_metal_sys::inject_error(Some("ttm_layer_norm"), what).unwrap();
    let r = run(&b, Mode::Isolated, &[ModuleId::Siglip, ModuleId::Projector]);
    let sig = &r.modules[0];
    assert_eq!(sig.verdict, Verdict::Error);
    let ln = sig
        .ops
        .iter()
        .find(|o| o.name == "siglip.layers.0.ln1")
        .expect("the failing op is recorded");
    assert_eq!(ln.verdict, Verdict::Error);
    let msg = ln.error.as_deref().unwrap();
    assert!(
        msg.starts_with("TT_FATAL in ttm_layer_norm @ /tt-metal/ttnn/"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "layernorm_device_operation.cpp:57: Gamma width 32 does not match input width 48"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("(condition: gamma.padded_shape()[-1] == a.padded_shape()[-1])"),
        "{msg}"
    );
    let fd = r.summary.first_divergence.as_ref().unwrap();
    assert_eq!(
        (fd.module.as_str(), fd.op.as_str()),
        ("siglip", "siglip.layers.0.ln1")
    );
    // the run went on with the next module
    assert_eq!(r.modules[1].id, "projector");
    assert_eq!(r.modules[1].verdict, Verdict::Pass);
}

#[test]
fn a_broadcast_tt_nn_rejects_is_an_op_error_not_a_crash() {
    let b = tt("exact");
    let capture = Capture::open(goldens()).unwrap();
    let thresholds = Thresholds::defaults();
    let cpu = CpuBackend::default();
    let tracer = Tracer::new(&b, Some(&cpu), &capture, &thresholds, &NullSink, None);
    tracer.begin_module("siglip");
    let a = host(&[1, 4, 6], |i| i as f32);
    let bb = host(&[1, 4, 8], |i| i as f32);
    let e = tracer
        .exec(&Op::new("test.bad_add", OpKind::Add), &[&a, &bb])
        .unwrap_err();
    let OpError::Device { message } = &e else {
        panic!("expected a device error, got {e:?}");
    };
    assert!(message.contains("TT_THROW in ttm_binary"), "{message}");
    assert!(
        message.ends_with("Invalid subtile broadcast type"),
        "{message}"
    );
    // rank ≥ 6 broadcasting: NumPy (and the cpu backend) accept it, TT-NN does not
    let x = host(&[2, 1, 1, 1, 1, 1, 4], |i| i as f32);
    let y = host(&[1, 3, 1, 1, 1, 1, 4], |i| i as f32);
    let mul = Op::new("test.rank7_mul", OpKind::Mul);
    assert!(cpu.exec(&mul, &[&x, &y]).is_ok());
    let e = tracer.exec(&mul, &[&x, &y]).unwrap_err();
    assert!(
        e.to_string()
            .contains("Broadcast is supported up to rank 5"),
        "{e}"
    );
    // and the tracer goes on
    let ok = tracer
        .exec(&Op::new("test.good_add", OpKind::Add), &[&a, &a])
        .unwrap();
    assert_eq!(ok.as_slice()[3], 6.0);
    let ops = tracer.end_module();
    let verdicts: Vec<(&str, Verdict)> = ops.iter().map(|o| (o.name.as_str(), o.verdict)).collect();
    assert_eq!(
        verdicts,
        vec![
            ("test.bad_add", Verdict::Error),
            ("test.rank7_mul", Verdict::Error),
            ("test.good_add", Verdict::Unchecked),
        ]
    );
    assert!(ops[0]
        .error
        .as_deref()
        .unwrap()
        .contains("Invalid subtile broadcast type"));
}

#[test]
fn by_name_builds_the_tt_backend_and_rejects_unknown_profiles() {
    let b = by_name("tt", Some("bfp8-lofi")).unwrap();
    assert_eq!((b.name(), b.profile()), ("tt", "bfp8-lofi"));
    assert_eq!(by_name("tt", None).unwrap().profile(), TtPrecision::DEFAULT);
    let e = by_name("tt", Some("fp64")).err().unwrap();
    assert!(
        e.contains("unknown tt precision profile `fp64`") && e.contains("bf16-hifi2"),
        "{e}"
    );
    assert_eq!(TtBackend::implementation(), Some("host"));
}

fn pccscope(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pccscope"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("spawn pccscope")
}

#[test]
fn cli_runs_the_tt_backend_and_reports_on_device_share() {
    let tmp = tempfile::tempdir().unwrap();
    let g = goldens();
    let out = pccscope(
        &[
            "run",
            "--backend",
            "tt",
            "--profile",
            "exact",
            "--modules",
            "siglip,projector,attn_masks",
            "--goldens",
            g.to_str().unwrap(),
            "--report-dir",
            "r",
        ],
        tmp.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("backend tt · profile exact"), "{text}");
    assert!(
        text.contains("host fallback: 3 ops ran on the host"),
        "{text}"
    );
    assert!(text.contains("attn_masks 66.7%"), "{text}");
    let dir = std::fs::read_dir(tmp.path().join("r"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["modules"][1]["on_device_pct"], 100.0);
    assert_eq!(report["modules"][0]["ops"][1]["verdict"], "unsupported");

    let bad = pccscope(&["run", "--backend", "tt", "--profile", "fp64"], tmp.path());
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown tt precision profile `fp64`"), "{err}");
}
