//! Integration tests on the real binary in a temp dir: exit codes, the report, and that a
//! perturbed golden is reported at exactly that op.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Loads the single report written under `dir`.
fn report(dir: &Path) -> Value {
    let runs: Vec<_> = std::fs::read_dir(dir)
        .expect("report dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("report.json").exists())
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "expected one run directory in {}",
        dir.display()
    );
    let text = std::fs::read_to_string(runs[0].join("report.json")).expect("read report");
    serde_json::from_str(&text).expect("parse report")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Adds `delta` to the first `n` elements of op `name`'s golden tensor, editing the
/// safetensors bytes in place (F32 data).
fn perturb(capture: &Path, name: &str, delta: f32, n: usize) {
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
    let mut bytes = std::fs::read(&file).unwrap();
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
    let info = &header[&key];
    assert_eq!(info["dtype"], "F32");
    let start = 8 + hlen + info["data_offsets"][0].as_u64().unwrap() as usize;
    for i in 0..n {
        let at = start + 4 * i;
        let v = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) + delta;
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&file, bytes).unwrap();
}

fn failing_ops(report: &Value) -> Vec<(String, String)> {
    report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            m["ops"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o["verdict"] == "fail" || o["verdict"] == "error")
                .map(move |o| {
                    (
                        m["id"].as_str().unwrap().to_string(),
                        o["name"].as_str().unwrap().to_string(),
                    )
                })
        })
        .collect()
}

fn assert_clean_pass(r: &Value, mode: &str) {
    let s = &r["summary"];
    assert_eq!(s["verdict"], "pass", "{mode}: summary {s}");
    assert_eq!(s["modules"], 11);
    assert_eq!(s["coverage"].as_f64(), Some(1.0), "{mode}: coverage");
    assert!(s["first_divergence"].is_null());
    for m in r["modules"].as_array().unwrap() {
        assert_eq!(m["verdict"], "pass", "{mode}: module {}", m["id"]);
        assert!(m["missing_device"].as_array().unwrap().is_empty());
        assert!(m["missing_golden"].as_array().unwrap().is_empty());
        for o in m["ops"].as_array().unwrap() {
            assert_eq!(o["verdict"], "pass", "{mode}: op {}", o["name"]);
            let c = &o["chained"];
            if !c.is_null() {
                if let Some(p) = c["pcc"].as_f64() {
                    assert!(p >= 0.99999, "{mode}: {} pcc {p}", o["name"]);
                }
                let rel = c["rel_l2"].as_f64().unwrap_or(f64::INFINITY);
                assert!(rel <= 1e-4, "{mode}: {} rel_l2 {rel}", o["name"]);
            } else {
                assert!(
                    !o["chained_stats"].is_null(),
                    "{mode}: {} unchecked",
                    o["name"]
                );
            }
        }
    }
    // The sampler's final actions.
    let pi0 = r["modules"].as_array().unwrap().last().unwrap();
    let last = pi0["ops"].as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "denoise.9.euler");
    assert_eq!(last["shape"], serde_json::json!([1, 50, 32]));
}

#[test]
fn cpu_isolated_and_pipeline_pass_with_full_coverage() {
    for mode in ["isolated", "pipeline"] {
        let tmp = tempfile::tempdir().unwrap();
        let g = goldens();
        let o = pccscope(
            &[
                "run",
                "--goldens",
                g.to_str().unwrap(),
                "--mode",
                mode,
                "--report-dir",
                "out",
            ],
            tmp.path(),
        );
        assert_eq!(code(&o), 0, "{mode}: {}", text(&o));
        let r = report(&tmp.path().join("out"));
        assert_eq!(r["schema"], "pccscope.report/1");
        assert_eq!(r["run"]["mode"], mode);
        assert_eq!(r["run"]["backend"], "cpu");
        assert_clean_pass(&r, mode);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("first divergence: none"), "{out}");
    }
}

#[test]
fn perturbed_golden_is_reported_at_exactly_that_op() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    copy_dir(&goldens(), &cap);
    let target = "vlm.layers.3.mlp.up";
    perturb(&cap, target, 0.5, 64);
    let o = pccscope(
        &[
            "run",
            "--goldens",
            cap.to_str().unwrap(),
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let r = report(&tmp.path().join("out"));
    let bad = failing_ops(&r);
    assert!(!bad.is_empty());
    assert!(
        bad.iter().all(|(_, op)| op == target),
        "only {target} may fail, got {bad:?}"
    );
    assert_eq!(r["summary"]["first_divergence"]["op"], target);
    assert_eq!(r["summary"]["first_divergence"]["module"], "vlm");
}

#[test]
fn usage_and_setup_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let o = pccscope(&["run", "--no-such-flag"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    let o = pccscope(&["run", "--goldens", "does/not/exist"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does/not/exist"));
    let g = goldens();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            g.to_str().unwrap(),
            "--modules",
            "siglip,nope",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown module `nope`"));
    let o = pccscope(
        &["run", "--goldens", g.to_str().unwrap(), "--backend", "gpu"],
        tmp.path(),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
}

#[test]
fn nothing_checked_exits_4() {
    // A capture whose modules list no ops and whose op tensors are gone: every device op is
    // unchecked.
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    copy_dir(&goldens(), &cap);
    let path = cap.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Empty every op list but siglip's and run the projector alone: its input
    // (siglip.post_ln) stays readable through the siglip record, while `projector.linear`
    // (also part of the pi0 sampler's list) has no golden left.
    for md in m["modules"].as_array_mut().unwrap() {
        if md["id"] != "siglip" {
            md["ops"] = serde_json::json!([]);
        }
    }
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            cap.to_str().unwrap(),
            "--modules",
            "projector",
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 4, "{}", text(&o));
    let r = report(&tmp.path().join("out"));
    assert_eq!(r["summary"]["ops_checked"], 0);
    assert_eq!(r["modules"][0]["ops"][0]["verdict"], "unchecked");
    assert_eq!(r["modules"][0]["missing_golden"][0], "projector.linear");
}

#[test]
fn missing_module_shard_is_a_module_error_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    copy_dir(&goldens(), &cap);
    std::fs::remove_file(cap.join("action_proj.safetensors")).unwrap();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            cap.to_str().unwrap(),
            "--modules",
            "action_proj,lang_embed",
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let r = report(&tmp.path().join("out"));
    assert_eq!(r["modules"][0]["verdict"], "error");
    assert!(r["modules"][0]["error"]
        .as_str()
        .unwrap()
        .contains("action_proj.safetensors"));
    assert_eq!(r["modules"][1]["id"], "lang_embed");
    assert_eq!(r["modules"][1]["verdict"], "pass");
}

#[test]
fn golden_shape_mismatch_is_an_op_error_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    copy_dir(&goldens(), &cap);
    // Declare a different config width for the projector output: the device computes
    // [2, 25, 64]; the checkpoint check passes because only the geometry changes.
    let path = cap.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["config"]["lang_tokens"] = serde_json::json!(7);
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            cap.to_str().unwrap(),
            "--modules",
            "prefix,siglip",
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let r = report(&tmp.path().join("out"));
    let prefix = &r["modules"][0];
    assert_eq!(prefix["verdict"], "error");
    let errs: Vec<&Value> = prefix["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["verdict"] == "error")
        .collect();
    assert!(!errs.is_empty(), "{prefix}");
    assert!(errs[0]["error"].as_str().unwrap().contains("shape"));
    assert_eq!(r["modules"][1]["verdict"], "pass");
}

#[test]
fn checkpoint_missing_keys_are_listed_in_one_error() {
    // Rewrite the checkpoint header without three tensors (data left in place).
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    copy_dir(&goldens(), &cap);
    let ck = cap.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
    let drop = [
        "state_proj.bias",
        "paligemma_with_expert.paligemma.model.language_model.layers.5.mlp.up_proj.weight",
        "paligemma_with_expert.gemma_expert.model.norm.weight",
    ];
    for k in drop {
        assert!(header.remove(k).is_some(), "{k} not in the tiny checkpoint");
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + hlen..]);
    std::fs::write(&ck, out).unwrap();
    let o = pccscope(&["run", "--goldens", cap.to_str().unwrap()], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for k in drop {
        assert!(err.contains(k), "error must list {k}:\n{err}");
    }
    assert!(err.contains("3 missing"), "{err}");
}

#[test]
fn inspect_describes_checkpoint_and_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let g = goldens();
    let o = pccscope(&["inspect", g.to_str().unwrap()], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for m in ["siglip", "vlm", "expert", "pi0"] {
        assert!(out.contains(m), "{out}");
    }
    let ck = g.join("checkpoint.safetensors");
    let o = pccscope(&["inspect", ck.to_str().unwrap()], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("tensors: 777"), "{out}");
    assert!(out.contains("naming:  current"), "{out}");
    assert!(out.contains("problems: none"), "{out}");
}

#[test]
fn pickle_checkpoints_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("model.pt");
    std::fs::write(&p, b"not really a pickle").unwrap();
    let o = pccscope(&["inspect", p.to_str().unwrap()], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pickle"));
}

/// Rewrites a safetensors header with renamed keys (data untouched).
fn rename_keys(path: &Path, out: &Path, rename: impl Fn(&str) -> String) {
    let bytes = std::fs::read(path).unwrap();
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
    let renamed: serde_json::Map<String, Value> = header
        .into_iter()
        .map(|(k, v)| {
            if k == "__metadata__" {
                (k, v)
            } else {
                (rename(&k), v)
            }
        })
        .collect();
    let mut h = serde_json::to_vec(&renamed).unwrap();
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let mut data = (h.len() as u64).to_le_bytes().to_vec();
    data.extend_from_slice(&h);
    data.extend_from_slice(&bytes[8 + hlen..]);
    std::fs::write(out, data).unwrap();
}

#[test]
fn legacy_checkpoint_naming_loads_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let legacy = tmp.path().join("legacy.safetensors");
    rename_keys(&goldens().join("checkpoint.safetensors"), &legacy, |k| {
        let pairs = [
            (
                "paligemma_with_expert.paligemma.lm_head",
                "paligemma_with_expert.paligemma.language_model.lm_head",
            ),
            (
                "paligemma_with_expert.paligemma.model.language_model",
                "paligemma_with_expert.paligemma.language_model.model",
            ),
            (
                "paligemma_with_expert.paligemma.model.vision_tower",
                "paligemma_with_expert.paligemma.vision_tower",
            ),
            (
                "paligemma_with_expert.paligemma.model.multi_modal_projector",
                "paligemma_with_expert.paligemma.multi_modal_projector",
            ),
        ];
        let mut k = k.to_string();
        for (from, to) in pairs {
            if let Some(rest) = k.strip_prefix(from) {
                k = format!("{to}{rest}");
                break;
            }
        }
        format!("model.{k}")
    });
    let o = pccscope(&["inspect", legacy.to_str().unwrap()], tmp.path());
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("naming:  legacy"), "{out}");
    assert!(out.contains("problems: none"), "{out}");
    let g = goldens();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            g.to_str().unwrap(),
            "--checkpoint",
            legacy.to_str().unwrap(),
            "--modules",
            "siglip,lang_embed,vlm",
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
}

#[test]
fn nan_in_a_golden_fails_that_op_with_a_message_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    copy_dir(&goldens(), &cap);
    let target = "siglip.layers.2.mlp.fc1";
    perturb(&cap, target, f32::NAN, 3);
    let o = pccscope(
        &[
            "run",
            "--goldens",
            cap.to_str().unwrap(),
            "--modules",
            "siglip,projector",
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let r = report(&tmp.path().join("out"));
    let bad = failing_ops(&r);
    assert_eq!(bad, vec![("siglip".to_string(), target.to_string())]);
    let op = r["modules"][0]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == target)
        .unwrap()
        .clone();
    assert_eq!(op["chained"]["golden_nan"], 3);
    assert!(op["error"].as_str().unwrap().contains("3 NaN"), "{op}");
    assert_eq!(r["modules"][1]["verdict"], "pass");
}

#[test]
fn save_trace_writes_a_capture_that_runs_as_goldens() {
    let tmp = tempfile::tempdir().unwrap();
    let g = goldens();
    let o = pccscope(
        &[
            "run",
            "--goldens",
            g.to_str().unwrap(),
            "--mode",
            "pipeline",
            "--save-trace",
            "trace",
            "--report-dir",
            "out1",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("trace/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["schema"], "pccscope.capture/1");
    assert_eq!(manifest["producer"]["kind"], "pccscope-backend");
    let modules = manifest["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 11);
    let up = modules[4]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "vlm.layers.0.mlp.up")
        .unwrap();
    assert_eq!(up["kind"], "linear");
    assert_eq!(up["inputs"], serde_json::json!(["vlm.layers.0.post_norm"]));
    assert_eq!(
        up["params"],
        serde_json::json!([
            "paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.up_proj.weight"
        ])
    );
    assert_eq!(up["layout"], "row_major");
    // The trace is a capture: the cpu backend reproduces it exactly.
    let ck = g.join("checkpoint.safetensors");
    let o = pccscope(
        &[
            "run",
            "--goldens",
            "trace",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--mode",
            "pipeline",
            "--report-dir",
            "out2",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r = report(&tmp.path().join("out2"));
    assert_eq!(r["summary"]["coverage"].as_f64(), Some(1.0));
    assert_eq!(r["summary"]["ops_failed"], 0);
}
