//! `pccscope compare` on the real binary: a device-like capture with one wrong op is reported at
//! exactly that op; rename maps align a port's names; unmatched ops are listed; setup errors.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::{Backend, Op, OpError, OpKind};
use pccscope::golden::{Capture, CaptureWriter, OpRecord};
use pccscope::modules::{run_module, Checkpoint, Ctx, Env, ModuleId, Pi0Config, Weights};
use pccscope::tensor::Tensor;
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
    serde_json::from_str(&std::fs::read_to_string(runs[0].join("report.json")).unwrap()).unwrap()
}

fn ops(r: &Value) -> Vec<(String, Value)> {
    r["modules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            let id = m["id"].as_str().unwrap().to_string();
            m["ops"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |o| (id.clone(), o.clone()))
        })
        .collect()
}

/// A "device" that is the cpu reference except for one bug, and that records every op it runs
/// (kind, attrs, the names of its inputs and parameters, the output) like a TT-NN op hook.
struct BuggyDevice {
    cpu: CpuBackend,
    bug: fn(&str) -> bool,
    params: HashSet<String>,
    module: Mutex<String>,
    trace: Mutex<CaptureWriter>,
}

impl BuggyDevice {
    /// RoPE without its sin term: x·cos = (rope(x, p) + rope(x, −p)) / 2, computed with the
    /// cpu backend from the op's own inputs.
    fn rope_without_sin(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let scalar = |v: f32| Op::new("bug", OpKind::MulScalar { value: v });
        let neg = self.cpu.exec(&scalar(-1.0), &[inputs[1]])?;
        let a = self.cpu.exec(op, inputs)?;
        let b = self.cpu.exec(op, &[inputs[0], &neg])?;
        let sum = self.cpu.exec(&Op::new("bug", OpKind::Add), &[&a, &b])?;
        self.cpu.exec(&scalar(0.5), &[&sum])
    }
}

impl Backend for BuggyDevice {
    fn name(&self) -> &str {
        "buggy"
    }

    fn exec(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let out = if (self.bug)(&op.name) {
            self.rope_without_sin(op, inputs)?
        } else {
            self.cpu.exec(op, inputs)?
        };
        let (kind, attrs) = op.kind.to_record();
        let mut rec = OpRecord::new(op.name.clone(), kind, out.shape().to_vec());
        rec.attrs = attrs;
        for t in inputs {
            let origin = t
                .origin
                .as_deref()
                .expect("every tensor knows its name")
                .to_string();
            if self.params.contains(&origin) {
                rec.params.push(origin);
            } else {
                rec.inputs.push(origin);
            }
        }
        rec.layout = Some("Layout.ROW_MAJOR".into());
        rec.memory = Some("MemoryConfig(memory_layout=TensorMemoryLayout::INTERLEAVED,buffer_type=BufferType::DRAM,shard_spec=std::nullopt)".into());
        rec.device_dtype = Some("DataType.FLOAT32".into());
        let module = self.module.lock().unwrap().clone();
        self.trace
            .lock()
            .unwrap()
            .add_op(&module, rec, Some(&out))
            .expect("trace op");
        Ok(out)
    }
}

/// Runs all 11 modules in data-flow order on a device with `bug`, every module reading the
/// device's own upstream outputs (a full device-like trace: downstream ops drift), and writes
/// the trace as a capture in `dir`.
fn device_capture(dir: &Path, bug: fn(&str) -> bool) {
    let g = Capture::open(goldens()).unwrap();
    let cfg: Pi0Config = serde_json::from_value(g.manifest().config.clone()).unwrap();
    let ckpt = Checkpoint::open(&g.checkpoint_path().unwrap()).unwrap();
    let params: HashSet<String> = ckpt.canonical_names().into_iter().collect();
    let weights = Weights::new(Arc::new(ckpt));
    let m = g.manifest();
    let mut w = CaptureWriter::new(
        dir,
        serde_json::json!({"name": "compare-test", "kind": "device-trace", "backend": "buggy"}),
        &m.model,
        &m.preset,
        m.config.clone(),
    )
    .unwrap();
    let mut env = Env::new();
    for input in &m.inputs {
        let t = g.tensor(&input.name).unwrap();
        w.add_input(&input.name, &t, &input.dtype).unwrap();
        env.insert(input.name.clone(), t.with_origin(input.name.as_str()));
    }
    let dev = BuggyDevice {
        cpu: CpuBackend::default(),
        bug,
        params,
        module: Mutex::new(String::new()),
        trace: Mutex::new(w),
    };
    for id in ModuleId::ALL {
        dev.trace
            .lock()
            .unwrap()
            .begin_module(id.as_str(), id.inputs(&cfg), id.outputs(&cfg));
        *dev.module.lock().unwrap() = id.as_str().to_string();
        let ctx = Ctx {
            backend: &dev,
            weights: &weights,
            cfg: &cfg,
        };
        run_module(id, &ctx, &mut env).unwrap();
    }
    dev.trace.into_inner().unwrap().finish().unwrap();
}

fn rope_of_expert_layer_3(name: &str) -> bool {
    name.ends_with("expert.layers.3.attn.q_rope") || name.ends_with("expert.layers.3.attn.k_rope")
}

#[test]
fn rope_without_sin_in_one_expert_layer_is_the_first_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("device");
    device_capture(&cap, rope_of_expert_layer_3);
    let g = goldens();
    let o = pccscope(
        &[
            "compare",
            g.to_str().unwrap(),
            cap.to_str().unwrap(),
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("first divergence: expert.layers.3.attn.q_rope (module expert"),
        "{stdout}"
    );
    let r = report(&tmp.path().join("out"));
    assert_eq!(r["schema"], "pccscope.report/1");
    assert_eq!(r["run"]["mode"], "compare");
    assert_eq!(r["run"]["backend"], "buggy");
    let first = &r["summary"]["first_divergence"];
    assert_eq!(first["op"], "expert.layers.3.attn.q_rope", "{first}");
    assert_eq!(first["module"], "expert");
    assert_eq!(r["summary"]["modules"], 11);
    assert_eq!(r["summary"]["coverage"].as_f64(), Some(1.0));

    let all = ops(&r);
    assert_eq!(all.len(), 5101);
    let at = all
        .iter()
        .position(|(_, o)| o["name"] == "expert.layers.3.attn.q_rope")
        .unwrap();
    assert_eq!(all[at].1["index"].as_u64(), Some(at as u64));
    // Before the bug everything passes both checks; every op got a local check.
    for (m, o) in &all[..at] {
        assert_eq!(o["verdict"], "pass", "{m} {}", o["name"]);
    }
    for (_, o) in &all {
        assert!(!o["local"].is_null(), "{} has no local check", o["name"]);
        assert_eq!(o["layout"], "row_major");
        assert_eq!(o["memory"], "dram_interleaved");
        assert_eq!(o["dtype"], "f32");
    }
    let find = |name: &str| {
        all.iter()
            .find(|(_, o)| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in the report"))
            .1
            .clone()
    };
    // The buggy ops fail locally; downstream ops drift (chained) but are locally fine.
    for bad in [
        "expert.layers.3.attn.q_rope",
        "expert.layers.3.attn.k_rope",
        "denoise.0.expert.layers.3.attn.q_rope",
        "denoise.9.expert.layers.3.attn.k_rope",
    ] {
        let o = find(bad);
        assert_eq!(o["local"]["pass"], false, "{bad}: {o}");
        assert_eq!(o["verdict"], "fail");
    }
    for drifted in [
        "expert.layers.3.attn.sdpa",
        "expert.norm",
        "action_proj.linear",
        "denoise.9.euler",
    ] {
        let o = find(drifted);
        assert_eq!(o["local"]["pass"], true, "{drifted}: {}", o["local"]);
        assert_eq!(
            o["verdict"], "fail",
            "{drifted} must drift: {}",
            o["chained"]
        );
    }
    // Upstream modules are clean, and nothing is unmatched.
    for m in r["modules"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let clean = [
            "siglip",
            "projector",
            "lang_embed",
            "prefix",
            "vlm",
            "suffix",
            "attn_masks",
        ];
        assert_eq!(
            m["verdict"],
            if clean.contains(&id) { "pass" } else { "fail" },
            "module {id}"
        );
        assert!(m["missing_device"].as_array().unwrap().is_empty(), "{id}");
        assert!(m["missing_golden"].as_array().unwrap().is_empty(), "{id}");
    }
}

/// Writes a capture holding the first `n` ops of the goldens' siglip module under `rename(name)`
/// (as module `module`), minus `drop`, plus one extra op with no golden.
fn renamed_capture(dir: &Path, module: &str, n: usize, drop: &str, rename: fn(&str) -> String) {
    let g = Capture::open(goldens()).unwrap();
    let m = g.manifest();
    let mut w = CaptureWriter::new(
        dir,
        serde_json::json!({"name": "port"}),
        &m.model,
        &m.preset,
        m.config.clone(),
    )
    .unwrap();
    let images = g.tensor("images").unwrap();
    w.add_input("images", &images, "F32").unwrap();
    w.begin_module(module, ["images"], Vec::<String>::new());
    for rec in g.module("siglip").unwrap().ops.iter().take(n) {
        if rec.name == drop {
            continue;
        }
        let t = g.tensor(&rec.name).unwrap();
        let mut r = OpRecord::new(rename(&rec.name), "ttnn.some_op", rec.shape.clone());
        r.inputs = rec.inputs.iter().map(|i| rename(i)).collect();
        w.add_op(module, r, Some(&t)).unwrap();
    }
    let extra = Tensor::from_vec(&[2], vec![1.0, 2.0]).unwrap();
    w.add_op(
        module,
        OpRecord::new("tt.vision.typecast_7", "ttnn.typecast", vec![2]),
        Some(&extra),
    )
    .unwrap();
    w.finish().unwrap();
}

fn port_name(n: &str) -> String {
    match n.strip_prefix("siglip.layers.") {
        Some(rest) => format!("tt.vision.blocks.{rest}"),
        None => n.replacen("siglip.", "tt.vision.", 1),
    }
}

#[test]
fn a_rename_map_aligns_a_port_and_unmatched_ops_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("port");
    renamed_capture(&cap, "tt_siglip", 16, "siglip.layers.0.attn.v", port_name);
    let map = tmp.path().join("map.toml");
    std::fs::write(
        &map,
        "[modules]\ntt_siglip = \"siglip\"\n\n\
         [[rename]]\nfrom = \"tt.vision.blocks.**\"\nto = \"siglip.layers.{1}\"\n\n\
         [[rename]]\nfrom = \"tt.vision.*\"\nto = \"siglip.{1}\"\n",
    )
    .unwrap();
    let g = goldens();
    let o = pccscope(
        &[
            "compare",
            g.to_str().unwrap(),
            cap.to_str().unwrap(),
            "--map",
            map.to_str().unwrap(),
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    // Every golden op of siglip but 15 is missing in the capture: a coverage failure.
    assert_eq!(code(&o), 1, "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("renamed by the map: 16 ops"), "{stdout}");
    assert!(
        stdout.contains("golden modules not in the capture (10)"),
        "{stdout}"
    );
    let r = report(&tmp.path().join("out"));
    assert_eq!(r["modules"].as_array().unwrap().len(), 1);
    let m = &r["modules"][0];
    assert_eq!(m["id"], "siglip");
    assert_eq!(m["verdict"], "fail");
    assert_eq!(
        m["missing_golden"],
        serde_json::json!(["siglip.typecast_7"])
    );
    let missing: Vec<&str> = m["missing_device"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(missing.len(), 328 - 15);
    assert_eq!(missing[0], "siglip.layers.0.attn.v");
    let by_name: Vec<(String, Value)> = ops(&r);
    for (_, o) in &by_name[..15] {
        assert_eq!(o["verdict"], "pass", "{}", o["name"]);
        assert!(o["local"].is_null(), "ttnn kinds get no local check");
        assert!(
            o["name"].as_str().unwrap().starts_with("siglip."),
            "{}",
            o["name"]
        );
    }
    let extra = &by_name[15].1;
    assert_eq!(extra["verdict"], "unchecked");
    assert_eq!(extra["class"], "data_movement");
    assert!(r["summary"]["first_divergence"].is_null());

    // Without the map nothing lines up: nothing checked.
    let o = pccscope(
        &[
            "compare",
            g.to_str().unwrap(),
            cap.to_str().unwrap(),
            "--report-dir",
            "out2",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 4, "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("capture ops without a golden (16)"),
        "{stdout}"
    );
}

#[test]
fn an_op_that_raised_on_the_device_is_the_first_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("crashed");
    renamed_capture(&cap, "siglip", 5, "", |n| n.to_string());
    let path = cap.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ops = m["modules"][0]["ops"].as_array_mut().unwrap();
    ops.truncate(4);
    ops.push(serde_json::json!({
        "name": "siglip.layers.0.attn.sdpa", "kind": "ttnn.transformer.scaled_dot_product_attention",
        "shape": [2, 25, 32], "error": "TT_FATAL: Q and K must have the same head dim"}));
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    let g = goldens();
    let o = pccscope(
        &[
            "compare",
            g.to_str().unwrap(),
            cap.to_str().unwrap(),
            "--report-dir",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let r = report(&tmp.path().join("out"));
    let first = &r["summary"]["first_divergence"];
    assert_eq!(first["op"], "siglip.layers.0.attn.sdpa");
    assert!(
        first["reason"].as_str().unwrap().contains("TT_FATAL"),
        "{first}"
    );
    assert_eq!(r["modules"][0]["verdict"], "error");
    assert_eq!(r["summary"]["verdict"], "error");
    assert_eq!(r["modules"][0]["ops"][4]["class"], "attention");
}

#[test]
fn compare_setup_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let g = goldens();
    let gs = g.to_str().unwrap();
    let o = pccscope(&["compare", gs, "no/such/capture"], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no/such/capture"),
        "{}",
        text(&o)
    );
    let map = tmp.path().join("bad.toml");
    std::fs::write(&map, "[[rename]]\nfrom = \"a.*\"\nto = \"{3}\"\n").unwrap();
    let o = pccscope(
        &["compare", gs, gs, "--map", map.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml") && err.contains("rule 1"), "{err}");
    let o = pccscope(&["compare", gs], tmp.path());
    assert_eq!(code(&o), 2, "{}", text(&o));
}
