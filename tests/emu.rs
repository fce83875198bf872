//! The emulator backend on the real binary and through its library API: `exact` equals the
//! reference, the precision presets order the end-to-end PCC as the hardware implies, a
//! bfloat4_b MLP is the first divergence, profiles and TT-NN validation errors surface as a
//! user sees them, and the weight-name mapping covers every parameter of the capture.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use pccscope::backend::emu::{weights, EmuBackend, Profile};
use pccscope::backend::{Backend, Op, OpError, OpKind};
use pccscope::tensor::{DType, Layout, Tensor};

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny")
}

fn pccscope(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pccscope"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("spawn pccscope")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `pccscope run --backend emu` with `extra` args in a fresh report dir; returns the exit
/// code and the report.
fn run_emu(extra: &[&str]) -> (i32, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let g = goldens();
    let mut args = vec![
        "run",
        "--goldens",
        g.to_str().unwrap(),
        "--backend",
        "emu",
        "--report-dir",
        "r",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = pccscope(&args, tmp.path());
    let code = o.status.code().unwrap_or(-1);
    let dir = tmp.path().join("r");
    let runs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no report dir ({e}): {}", text(&o)))
        .flatten()
        .map(|e| e.path().join("report.json"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(runs.len(), 1, "{}", text(&o));
    let r = serde_json::from_str(&std::fs::read_to_string(&runs[0]).unwrap()).unwrap();
    (code, r)
}

fn ops(r: &Value) -> impl Iterator<Item = (&str, &Value)> {
    r["modules"].as_array().unwrap().iter().flat_map(|m| {
        let id = m["id"].as_str().unwrap();
        m["ops"].as_array().unwrap().iter().map(move |o| (id, o))
    })
}

fn final_actions_pcc(r: &Value) -> f64 {
    ops(r)
        .find(|(m, o)| *m == "pi0" && o["name"] == "denoise.9.euler")
        .and_then(|(_, o)| o["chained"]["pcc"].as_f64())
        .expect("denoise.9.euler has a chained PCC")
}

#[test]
fn exact_profile_matches_cpu_on_every_op_in_both_modes() {
    for mode in ["isolated", "pipeline"] {
        let (code, r) = run_emu(&["--profile", "exact", "--mode", mode]);
        assert_eq!(code, 0, "{mode}: {}", r["summary"]);
        assert_eq!(r["run"]["backend"], "emu");
        assert_eq!(r["run"]["profile"], "exact");
        assert_eq!(r["summary"]["ops"], 5101);
        for (m, o) in ops(&r) {
            let local = &o["local"];
            assert!(
                !local.is_null(),
                "{mode}: {m}/{} has no local check",
                o["name"]
            );
            let rel = local["rel_l2"].as_f64().unwrap_or(f64::INFINITY);
            assert!(
                rel <= 1e-6,
                "{mode}: {} differs from cpu: rel_l2 {rel}",
                o["name"]
            );
            assert_eq!(o["verdict"], "pass", "{mode}: {}", o["name"]);
            assert_eq!(o["dtype"], "f32");
            assert_eq!(o["precision"]["math"], "reference");
        }
    }
}

#[test]
fn end_to_end_pcc_falls_in_the_order_of_the_precision_presets() {
    let presets = [
        "exact",
        "bf16-hifi4-fp32acc",
        "bf16-hifi2",
        "bfp8-lofi",
        "bfp4-lofi",
    ];
    let pcc: Vec<f64> = presets
        .iter()
        .map(|p| {
            let (_, r) = run_emu(&["--profile", p, "--modules", "pi0"]);
            assert_eq!(r["run"]["profile"], *p);
            let v = final_actions_pcc(&r);
            eprintln!("{p:>20}: chained PCC of denoise.9.euler = {v:.9}");
            v
        })
        .collect();
    for w in 0..presets.len() - 1 {
        assert!(
            pcc[w] >= pcc[w + 1],
            "{} ({}) < {} ({})",
            presets[w],
            pcc[w],
            presets[w + 1],
            pcc[w + 1]
        );
    }
    // The ladder is not flat: bf16 loses to f32, block floats lose to bf16.
    assert!(pcc[0] > 0.999_999 && pcc[2] < pcc[0]);
    assert!(pcc[3] < pcc[2] - 1e-3 && pcc[4] < pcc[3] - 1e-2, "{pcc:?}");
}

#[test]
fn bfp4_weights_on_one_mlp_make_it_the_first_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bfp4-vlm5.toml");
    std::fs::write(
        &file,
        "name = \"bfp4-vlm5-mlp\"\n\n[[op]]\npattern = \"vlm.layers.5.mlp.*\"\nkind = \"linear\"\nweight_dtype = \"bfloat4_b\"\nmath_fidelity = \"LoFi\"\n",
    )
    .unwrap();
    for mode in ["isolated", "pipeline"] {
        let (code, r) = run_emu(&["--profile", file.to_str().unwrap(), "--mode", mode]);
        assert_eq!(code, 1, "{mode}");
        assert_eq!(r["run"]["profile"], "bfp4-vlm5-mlp");
        let first = &r["summary"]["first_divergence"];
        assert_eq!(first["module"], "vlm", "{mode}: {first}");
        assert_eq!(first["op"], "vlm.layers.5.mlp.gate", "{mode}: {first}");
        // Every op before it passed its local check; the layer's three linears fail it.
        let mut seen_first = false;
        for (_, o) in ops(&r) {
            let name = o["name"].as_str().unwrap();
            if name == "vlm.layers.5.mlp.gate" {
                seen_first = true;
            }
            if !seen_first {
                assert_eq!(
                    o["local"]["pass"], true,
                    "{mode}: {name} before the first divergence"
                );
            }
            if name.starts_with("vlm.layers.5.mlp.") && o["kind"] == "linear" {
                assert_eq!(o["local"]["pass"], false, "{mode}: {name}");
                assert_eq!(o["precision"]["weight_dtype"], "bfloat4_b");
                assert_eq!(o["precision"]["math_fidelity"], "LoFi");
            }
        }
        // Under the same profile without the rule nothing fails locally.
        if mode == "isolated" {
            let (code, base) = run_emu(&["--profile", "bf16-hifi2", "--mode", mode]);
            assert!(base["summary"]["first_divergence"].is_null(), "{code}");
        }
    }
}

#[test]
fn default_profile_records_tt_metadata_and_precision() {
    let (code, r) = run_emu(&["--modules", "siglip,vlm"]);
    assert_eq!(code, 0, "{}", r["summary"]);
    assert_eq!(r["run"]["profile"], "bf16-hifi2");
    let (_, fc1) = ops(&r)
        .find(|(_, o)| o["name"] == "siglip.layers.0.mlp.fc1")
        .unwrap();
    assert_eq!(fc1["dtype"], "bf16");
    assert_eq!(fc1["layout"], "tile");
    assert_eq!(fc1["memory"], "dram_interleaved");
    assert_eq!(fc1["shape"], serde_json::json!([2, 25, 64]));
    assert_eq!(fc1["padded_shape"], serde_json::json!([2, 32, 64]));
    let p = &fc1["precision"];
    assert_eq!(p["profile"], "bf16-hifi2");
    assert_eq!(p["math_fidelity"], "HiFi2");
    assert_eq!(p["fp32_dest_acc_en"], false);
    assert_eq!(p["packer_l1_acc"], true);
    let (_, ln) = ops(&r)
        .find(|(_, o)| o["name"] == "siglip.layers.0.ln1")
        .unwrap();
    assert_eq!(ln["precision"]["math_fidelity"], "HiFi4");
    assert_eq!(ln["precision"]["math_approx_mode"], true);
    let (_, sdpa) = ops(&r)
        .find(|(_, o)| o["name"] == "vlm.layers.0.attn.sdpa")
        .unwrap();
    assert_eq!(sdpa["precision"]["exp_approx_mode"], true);
    let (_, pos) = ops(&r).find(|(_, o)| o["name"] == "vlm.positions").unwrap();
    assert_eq!(pos["dtype"], "f32");
}

#[test]
fn profile_errors_are_setup_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let g = goldens();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            g.to_str().unwrap(),
            "--backend",
            "emu",
            "--profile",
            "bf17",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bf17") && err.contains("bf16-hifi2") && err.contains("pi0-tt"),
        "{err}"
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[op]]\npattern = \"vlm.*\"\nmath_fidelity = \"HiFi5\"\n",
    )
    .unwrap();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            g.to_str().unwrap(),
            "--backend",
            "emu",
            "--profile",
            bad.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 3") && err.contains("HiFi5"),
        "{err}"
    );
    let o = pccscope(
        &[
            "run",
            "--goldens",
            g.to_str().unwrap(),
            "--backend",
            "emu",
            "--profile",
            "missing.toml",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.toml"));
}

/// Every parameter of every op in the capture maps to that op (denoise steps as step 0).
#[test]
fn weight_names_map_to_the_ops_that_read_them() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(goldens().join("manifest.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for m in manifest["modules"].as_array().unwrap() {
        for o in m["ops"].as_array().unwrap() {
            let name = o["name"].as_str().unwrap();
            let step0 = match name.strip_prefix("denoise.") {
                Some(rest) => format!("denoise.0.{}", rest.split_once('.').unwrap().1),
                None => name.to_string(),
            };
            for p in o["params"].as_array().into_iter().flatten() {
                let p = p.as_str().unwrap();
                let cons = weights::consumers(p).unwrap_or_else(|| panic!("{p} unmapped"));
                assert!(
                    cons.iter()
                        .any(|c| c.op == step0 && c.kind == o["kind"].as_str().unwrap()),
                    "{p} → {cons:?}, read by {name}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 700, "{checked}");
}

fn upload(emu: &EmuBackend, name: &str, shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor {
    let n: usize = shape.iter().product();
    let t = Tensor::from_vec(shape, (0..n).map(f).collect()).unwrap();
    emu.upload(name, t).unwrap().with_origin(name)
}

fn device_error(e: OpError) -> String {
    match e {
        OpError::Device { message } => message,
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[test]
fn tt_nn_validation_errors() {
    let emu = EmuBackend::new(Profile::preset("bf16-hifi2").unwrap());
    let x = upload(&emu, "siglip.layers.0.ln2", &[2, 25, 32], |i| {
        i as f32 * 0.01
    });
    let w = upload(
        &emu,
        "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
        &[64, 48],
        |i| (i % 7) as f32 * 0.1,
    );
    let op = Op::new("siglip.layers.0.mlp.fc1", OpKind::Linear);
    let e = device_error(emu.exec(&op, &[&x, &w]).unwrap_err());
    assert!(
        e.starts_with("TT_FATAL @ ttnn/cpp/ttnn/operations/matmul/"),
        "{e}"
    );
    assert!(
        e.contains("width of the first tensor must be equal to the height of the second tensor"),
        "{e}"
    );
    assert!(e.contains("width=32 height=48"), "{e}");

    let a = upload(&emu, "a", &[4, 3], |i| i as f32);
    let b = upload(&emu, "b", &[2, 3], |i| i as f32);
    let e = device_error(
        emu.exec(&Op::new("x.add", OpKind::Add), &[&a, &b])
            .unwrap_err(),
    );
    assert!(
        e.starts_with("TT_THROW @ ") && e.contains("Invalid subtile broadcast type"),
        "{e}"
    );

    // A bfloat8_b embedding table would have to be ROW_MAJOR: refused at upload.
    let p = Profile::from_toml_str(
        "[[op]]\npattern = \"lang_embed.embedding\"\nweight_dtype = \"bfloat8_b\"\n",
        "t",
    )
    .unwrap();
    let emu8 = EmuBackend::new(p);
    let table = Tensor::from_vec(&[4, 32], vec![0.5; 128]).unwrap();
    let e = device_error(
        emu8.upload("paligemma_with_expert.paligemma.lm_head.weight", table)
            .unwrap_err(),
    );
    assert!(
        e.contains("Layout must be Layout::TILE for bfloat8_b or bfloat4_b!"),
        "{e}"
    );
}

#[test]
fn outputs_carry_device_metadata_and_stored_values() {
    let emu = EmuBackend::new(Profile::preset("bf16-hifi2").unwrap());
    let x = upload(&emu, "t.x", &[3, 40], |i| {
        ((i * 7919) % 101) as f32 / 50.0 - 1.0
    });
    assert_eq!(x.meta.dtype, DType::Bf16);
    assert_eq!(x.meta.padded_shape, vec![32, 64]);
    assert!(
        x.as_slice().iter().all(|v| v.to_bits() & 0xFFFF == 0),
        "bf16 values"
    );
    // A parameter of a linear named by the rule: bfloat8_b storage, host value kept aside.
    let wname = "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight";
    let raw = Tensor::from_vec(
        &[20, 40],
        (0..800).map(|i| (i as f32 * 0.37).sin()).collect(),
    )
    .unwrap()
    .with_origin(wname);
    let emu_proj = EmuBackend::new(Profile::preset("bfp8-lofi").unwrap());
    let w = emu_proj
        .upload(wname, raw.clone())
        .unwrap()
        .with_origin(wname);
    assert_eq!(w.meta.dtype, DType::Bfloat8B);
    assert_eq!(w.meta.layout, Layout::Tile);
    assert_ne!(w.as_slice(), raw.as_slice(), "quantised");
    let host = emu_proj
        .reference_input(&w)
        .expect("host value of a lossy parameter");
    assert_eq!(host.as_slice(), raw.as_slice());
    assert!(
        emu_proj.reference_input(&x).is_none(),
        "activations are not substituted"
    );
    // The op's output is stored in its dtype, TILE, padded.
    let px = emu_proj.upload("projector.x", x.clone()).unwrap();
    let y = emu_proj
        .exec(&Op::new("projector.linear", OpKind::Linear), &[&px, &w])
        .unwrap();
    assert_eq!(y.meta.dtype, DType::Bf16);
    assert_eq!(y.shape(), [3, 20]);
    assert_eq!(y.meta.padded_shape, vec![32, 32]);
    let prec = emu_proj
        .precision(&Op::new("projector.linear", OpKind::Linear))
        .unwrap();
    assert_eq!(prec["math_fidelity"], "LoFi");
    assert_eq!(prec["weight_dtype"], "bfloat8_b");
}
