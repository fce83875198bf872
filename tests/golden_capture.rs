//! Capture reader and writer: round trips, dedup, atomic and deterministic writes, and every
//! bad manifest a clear error rather than a panic.

use std::path::{Path, PathBuf};

use pccscope::golden::{
    rewrite_tensor, stats, Capture, CaptureWriter, CheckpointRef, Golden, GoldenErrorKind,
    Manifest, OpRecord, SafetensorsFile, Stats, SCHEMA,
};
use pccscope::tensor::Tensor;
use serde_json::json;

fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::from_vec(shape, data).expect("shape matches data")
}

fn ramp(shape: &[usize], start: f32) -> Tensor {
    let n: usize = shape.iter().product();
    t(shape, (0..n).map(|i| start + i as f32 * 0.25).collect())
}

/// A small capture:
/// * inputs `images` [2,3] F32, `tokens` [1,4] I64, `mask` [1,4] BOOL;
/// * module `a` (inputs images, tokens): `a.x` full, `a.copy` byte-identical to `a.x`,
///   `a.reshaped` the same bytes in another shape, `a.big` stats-only, `a.echo` equal to `images`;
/// * module `b` (input `a.x`): `b.out` full, `b.nan` full with a NaN.
fn build(dir: &Path) -> PathBuf {
    let mut w = CaptureWriter::new(
        dir,
        json!({"name": "test", "kind": "unit-test", "version": "0"}),
        "pi0",
        "test",
        json!({"width": 4, "eps": 1e-6}),
    )
    .expect("writer");
    w.set_checkpoint(Some(CheckpointRef {
        file: "checkpoint.safetensors".into(),
        naming: "current".into(),
        dtype: "BF16".into(),
        tensors: 0,
    }));
    w.add_input("images", &ramp(&[2, 3], -1.0), "F32")
        .expect("images");
    w.add_input("tokens", &t(&[1, 4], vec![2.0, 7.0, 257_151.0, 0.0]), "I64")
        .expect("tokens");
    w.add_input("mask", &t(&[1, 4], vec![1.0, 1.0, 0.0, 1.0]), "BOOL")
        .expect("mask");

    w.begin_module("a", ["images", "tokens"], ["a.x"]);
    let x = ramp(&[2, 3], 0.5);
    let mut rec = OpRecord::new("a.x", "linear", vec![2, 3]);
    rec.inputs = vec!["images".into()];
    rec.params = vec!["w.weight".into()];
    rec.attrs = json!({"k": 1});
    w.add_op("a", rec, Some(&x)).expect("a.x");
    w.add_op("a", OpRecord::new("a.copy", "add", vec![2, 3]), Some(&x))
        .expect("a.copy");
    w.add_op(
        "a",
        OpRecord::new("a.reshaped", "reshape", vec![3, 2]),
        Some(&ramp(&[3, 2], 0.5)),
    )
    .expect("a.reshaped");
    let mut big = OpRecord::new("a.big", "mul", vec![1000]);
    big.stats = Some(stats(&vec![1.5; 1000]));
    w.add_op("a", big, None).expect("a.big");
    w.add_op(
        "a",
        OpRecord::new("a.echo", "reshape", vec![2, 3]),
        Some(&ramp(&[2, 3], -1.0)),
    )
    .expect("a.echo");

    w.begin_module("b", ["a.x"], ["b.out"]);
    let mut out = OpRecord::new("b.out", "silu", vec![3]);
    out.layout = Some("tile".into());
    out.padded_shape = Some(vec![32]);
    out.device_dtype = Some("bfloat8_b".into());
    out.precision = Some(json!({"fidelity": "HiFi2"}));
    w.add_op("b", out, Some(&t(&[3], vec![1.0, -1.0, 3.0])))
        .expect("b.out");
    w.add_op(
        "b",
        OpRecord::new("b.nan", "mul", vec![3]),
        Some(&t(&[3], vec![1.0, f32::NAN, 2.0])),
    )
    .expect("b.nan");
    w.finish().expect("finish")
}

fn built() -> (tempfile::TempDir, Capture) {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let cap = Capture::open(dir.path()).expect("open the built capture");
    (dir, cap)
}

fn full(cap: &Capture, name: &str) -> Tensor {
    match cap.golden(name).expect("golden reads") {
        Some(Golden::Full(t)) => t,
        other => panic!("{name}: expected full data, got {other:?}"),
    }
}

fn read_manifest(dir: &Path) -> Manifest {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest parses")
}

fn write_manifest(dir: &Path, m: &Manifest) {
    let text = serde_json::to_string_pretty(m).expect("serialize manifest");
    std::fs::write(dir.join("manifest.json"), text).expect("write manifest");
}

/// True when serde_json parses floats exactly (its `float_roundtrip` feature). Without it a
/// number read back from a manifest can be 1 ULP off the one written.
fn json_floats_exact() -> bool {
    let x = 0.426_956_281_914_983_25_f64;
    serde_json::from_str::<f64>(&serde_json::to_string(&x).expect("ser")).ok() == Some(x)
}

/// Stats read from a manifest equal `want`: hash and counts exactly, floats exactly when
/// serde_json parses exactly and within 1 ULP otherwise.
#[track_caller]
fn assert_stats_eq(got: Option<&Stats>, want: &Stats, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: no stats"));
    if json_floats_exact() {
        assert_eq!(got, want, "{what}");
        return;
    }
    assert_eq!(
        (got.nan, got.inf, &got.hash),
        (want.nan, want.inf, &want.hash),
        "{what}"
    );
    let close = |a: f64, b: f64| {
        (a.is_nan() && b.is_nan()) || a == b || (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1
    };
    for (a, b) in [
        (got.min, want.min),
        (got.max, want.max),
        (got.mean, want.mean),
        (got.std, want.std),
        (got.l2, want.l2),
    ] {
        assert!(close(a, b), "{what}: {got:?} vs {want:?}");
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writer_round_trip() {
    let (_dir, cap) = built();
    let m = cap.manifest();
    assert_eq!(m.schema, SCHEMA);
    assert_eq!(m.model, "pi0");
    assert_eq!(m.config["width"], 4);
    assert_eq!(m.producer["kind"], "unit-test");
    assert_eq!(
        cap.checkpoint_path(),
        Some(cap.dir().join("checkpoint.safetensors"))
    );

    let images = cap.tensor("images").expect("images");
    assert_eq!(images.shape(), [2, 3]);
    assert_eq!(
        images.as_slice().to_vec(),
        ramp(&[2, 3], -1.0).as_slice().to_vec()
    );
    assert_eq!(cap.input("tokens").map(|i| i.dtype.as_str()), Some("I64"));
    assert_eq!(
        cap.tensor("tokens").expect("tokens").as_slice().to_vec(),
        [2.0, 7.0, 257_151.0, 0.0]
    );
    assert_eq!(
        cap.tensor("mask").expect("mask").as_slice().to_vec(),
        [1.0, 1.0, 0.0, 1.0]
    );

    let x = full(&cap, "a.x");
    assert_eq!(
        x.as_slice().to_vec(),
        ramp(&[2, 3], 0.5).as_slice().to_vec()
    );
    assert_eq!(x.origin.as_deref(), Some("a.x"));
    let rec = cap.record("a.x").expect("record");
    assert_eq!(rec.kind, "linear");
    assert_eq!(rec.attrs, json!({"k": 1}));
    assert_eq!(rec.inputs, ["images"]);
    assert_eq!(rec.params, ["w.weight"]);
    assert_stats_eq(rec.stats.as_ref(), &stats(&x.as_slice()), "a.x");
    let hash = rec.stats.as_ref().map(|s| s.hash.len());
    assert_eq!(hash, Some("fnv1a64:".len() + 16));

    let out = cap.record("b.out").expect("b.out");
    assert_eq!(out.layout.as_deref(), Some("tile"));
    assert_eq!(out.padded_shape.as_deref(), Some(&[32][..]));
    assert_eq!(out.device_dtype.as_deref(), Some("bfloat8_b"));
    assert_eq!(out.precision, Some(json!({"fidelity": "HiFi2"})));
    assert_eq!(out.memory, None);

    match cap.golden("a.big").expect("stats-only golden") {
        Some(Golden::Stats(s)) => assert_stats_eq(Some(&s), &stats(&vec![1.5; 1000]), "a.big"),
        other => panic!("expected stats, got {other:?}"),
    }
    assert!(cap
        .golden("nope")
        .expect("unknown is not an error")
        .is_none());
    for id in ["a", "b"] {
        cap.check_module(id).expect("valid module");
    }
    // Only what the writer meant to write is there; shard headers carry the right keys.
    assert_eq!(
        files(cap.dir()),
        [
            "a.safetensors",
            "b.safetensors",
            "inputs.safetensors",
            "manifest.json"
        ]
    );
    let b = SafetensorsFile::open(cap.dir().join("b.safetensors")).expect("shard");
    assert_eq!(b.names(), ["b.nan", "b.out"]);
}

#[test]
fn identical_bytes_are_stored_once() {
    let (dir, cap) = built();
    let copy = cap.record("a.copy").expect("a.copy");
    assert_eq!(copy.file.as_deref(), Some("a.safetensors"));
    assert_eq!(
        copy.tensor.as_deref(),
        Some("a.x"),
        "points at the first copy"
    );
    assert_eq!(
        full(&cap, "a.copy").as_slice(),
        full(&cap, "a.x").as_slice()
    );
    // Same bytes, other shape: stored separately (a record's shape must match its tensor).
    let reshaped = cap.record("a.reshaped").expect("a.reshaped");
    assert_eq!(reshaped.tensor.as_deref(), Some("a.reshaped"));
    // An op equal to a raw input points into the input shard.
    let echo = cap.record("a.echo").expect("a.echo");
    assert_eq!(echo.file.as_deref(), Some("inputs.safetensors"));
    assert_eq!(echo.tensor.as_deref(), Some("images"));
    assert_eq!(full(&cap, "a.echo").origin.as_deref(), Some("a.echo"));

    let a = SafetensorsFile::open(dir.path().join("a.safetensors")).expect("shard a");
    assert_eq!(a.names(), ["a.reshaped", "a.x"]);
}

#[test]
fn finish_leaves_no_temporary_files_and_replaces_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let first = files(dir.path());
    assert!(first.iter().all(|f| !f.ends_with(".tmp")), "{first:?}");
    // Rewriting over an open capture: the old mapping stays valid, the new files replace the
    // old ones whole.
    let cap = Capture::open(dir.path()).expect("open");
    let before = full(&cap, "b.out");
    build(dir.path());
    assert_eq!(full(&cap, "b.out").as_slice(), before.as_slice());
    assert_eq!(files(dir.path()), first);
}

#[test]
fn output_is_deterministic() {
    let one = tempfile::tempdir().expect("tempdir");
    let two = tempfile::tempdir().expect("tempdir");
    build(one.path());
    build(two.path());
    let names = files(one.path());
    assert_eq!(names, files(two.path()));
    for name in names {
        let a = std::fs::read(one.path().join(&name)).expect("read");
        let b = std::fs::read(two.path().join(&name)).expect("read");
        assert!(a == b, "{name} differs between two identical writes");
    }
    // The manifest is the diff-friendly layout: one line per op record.
    let text = std::fs::read_to_string(one.path().join("manifest.json")).expect("manifest");
    assert!(text.lines().any(|l| l
        .trim_start()
        .starts_with(r#"{"name":"a.x","kind":"linear""#)));
}

#[test]
fn from_capture_round_trips_byte_identically() {
    let (_dir, cap) = built();
    let out = tempfile::tempdir().expect("tempdir");
    CaptureWriter::from_capture(&cap, out.path())
        .expect("load")
        .finish()
        .expect("write");
    for name in files(cap.dir()) {
        let a = std::fs::read(cap.dir().join(&name)).expect("read");
        let b = std::fs::read(out.path().join(&name)).expect("read");
        if name == "manifest.json" && !json_floats_exact() {
            // Stats-only records' numbers pass through serde_json's parser.
            let (ma, mb) = (read_manifest(cap.dir()), read_manifest(out.path()));
            assert_eq!(ma.modules.len(), mb.modules.len());
            continue;
        }
        assert!(a == b, "{name} changed in a round trip");
    }
    let again = Capture::open(out.path()).expect("reopen");
    for (x, y) in cap.manifest().modules.iter().zip(&again.manifest().modules) {
        for (p, q) in x.ops.iter().zip(&y.ops) {
            assert_eq!((&p.name, &p.file, &p.tensor), (&q.name, &q.file, &q.tensor));
            assert_stats_eq(q.stats.as_ref(), p.stats.as_ref().expect("stats"), &p.name);
        }
    }
}

#[test]
fn rewrite_tensor_perturbs_one_name_only() {
    let (dir, cap) = built();
    let x_before = full(&cap, "a.x");
    drop(cap);
    rewrite_tensor(dir.path(), "a.copy", |v| v[0] += 100.0).expect("rewrite");
    let cap = Capture::open(dir.path()).expect("reopen");
    let copy = full(&cap, "a.copy");
    assert_eq!(copy.as_slice()[0], x_before.as_slice()[0] + 100.0);
    assert_eq!(&copy.as_slice()[1..], &x_before.as_slice()[1..]);
    assert_eq!(
        full(&cap, "a.x").as_slice(),
        x_before.as_slice(),
        "a.x shared a.copy's bytes but keeps its value"
    );
    let rec = cap.record("a.copy").expect("record");
    assert_eq!(rec.tensor.as_deref(), Some("a.copy"));
    assert_stats_eq(rec.stats.as_ref(), &stats(&copy.as_slice()), "a.copy");
    for id in ["a", "b"] {
        cap.check_module(id).expect("still valid");
    }
    assert!(files(dir.path()).iter().all(|f| !f.ends_with(".tmp")));

    // Integer inputs stay integers; a non-integer result is refused, nothing is written.
    rewrite_tensor(dir.path(), "tokens", |v| v[0] = 9.0).expect("integral");
    let e = rewrite_tensor(dir.path(), "tokens", |v| v[0] = 0.5).expect_err("not an I64");
    assert!(
        matches!(e.kind(), GoldenErrorKind::NotRepresentable { .. }),
        "{e:?}"
    );
    let cap = Capture::open(dir.path()).expect("reopen");
    assert_eq!(cap.tensor("tokens").expect("tokens").as_slice()[0], 9.0);

    let e = rewrite_tensor(dir.path(), "a.big", |_| {}).expect_err("stats-only");
    assert!(
        matches!(e.kind(), GoldenErrorKind::StatsOnly { .. }),
        "{e:?}"
    );
    let e = rewrite_tensor(dir.path(), "zzz", |_| {}).expect_err("unknown");
    assert!(
        matches!(e.kind(), GoldenErrorKind::UnknownTensor { .. }),
        "{e:?}"
    );
}

#[test]
fn nan_golden_loads_and_reports_nan() {
    let (_dir, cap) = built();
    let g = cap.golden("b.nan").expect("reads").expect("present");
    let Golden::Full(t) = &g else {
        panic!("expected full data")
    };
    assert!(t.as_slice()[1].is_nan(), "returned as stored, not zeroed");
    assert_eq!(g.stats().nan, 1);
    assert_eq!(
        cap.record("b.nan")
            .and_then(|r| r.stats.as_ref())
            .map(|s| s.nan),
        Some(1)
    );
}

#[test]
fn tensor_needs_full_data() {
    let (_dir, cap) = built();
    let e = cap.tensor("a.big").expect_err("stats-only");
    assert!(
        matches!(e.kind(), GoldenErrorKind::StatsOnly { name } if name == "a.big"),
        "{e:?}"
    );
    let e = cap.tensor("nope").expect_err("unknown");
    assert!(
        matches!(e.kind(), GoldenErrorKind::UnknownTensor { .. }),
        "{e:?}"
    );
}

#[test]
fn schema_mismatch_names_both_schemas() {
    let (dir, _cap) = built();
    let mut m = read_manifest(dir.path());
    m.schema = "pccscope.capture/2".into();
    write_manifest(dir.path(), &m);
    let e = Capture::open(dir.path()).expect_err("wrong schema");
    let msg = e.to_string();
    assert!(
        msg.contains("pccscope.capture/2") && msg.contains(SCHEMA),
        "{msg}"
    );
    assert!(
        matches!(e.kind(), GoldenErrorKind::SchemaMismatch { .. }),
        "{e:?}"
    );
    // A manifest of another format entirely reports the schema, not a missing field.
    std::fs::write(dir.path().join("manifest.json"), r#"{"hello": 1}"#).expect("write");
    let e = Capture::open(dir.path()).expect_err("no schema");
    assert!(matches!(e.kind(), GoldenErrorKind::SchemaMismatch { found, .. } if found == "(none)"));
}

#[test]
fn invalid_manifest_json() {
    let (dir, _cap) = built();
    std::fs::write(dir.path().join("manifest.json"), "{\"schema\": ").expect("write");
    let e = Capture::open(dir.path()).expect_err("bad json");
    assert!(
        matches!(e.kind(), GoldenErrorKind::InvalidManifest { .. }),
        "{e:?}"
    );
    let text = format!(r#"{{"schema": "{SCHEMA}", "model": "pi0"}}"#);
    std::fs::write(dir.path().join("manifest.json"), text).expect("write");
    let e = Capture::open(dir.path()).expect_err("missing field");
    let chain = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(chain.contains("preset"), "{chain}");
    let e = Capture::open(dir.path().join("nowhere")).expect_err("no dir");
    assert!(matches!(e.kind(), GoldenErrorKind::Io { .. }), "{e:?}");
}

#[test]
fn paths_may_not_leave_the_capture() {
    for (bad, reason) in [
        ("../x.safetensors", "`..`"),
        ("sub/../../x.safetensors", "`..`"),
        ("..\\x.safetensors", "`..`"),
        ("/etc/passwd", "absolute"),
        ("", "empty"),
    ] {
        let (dir, _cap) = built();
        let mut m = read_manifest(dir.path());
        m.modules[1].ops[0].file = Some(bad.into());
        write_manifest(dir.path(), &m);
        let e = Capture::open(dir.path()).expect_err("escaping path");
        let msg = e.to_string();
        assert!(
            matches!(e.kind(), GoldenErrorKind::PathEscape { .. }),
            "{bad}: {e:?}"
        );
        assert!(
            msg.contains(reason) && msg.contains("b.out"),
            "{bad}: {msg}"
        );
    }
    // Inputs and the checkpoint too.
    let (dir, _cap) = built();
    let mut m = read_manifest(dir.path());
    m.inputs[0].file = "../inputs.safetensors".into();
    write_manifest(dir.path(), &m);
    let e = Capture::open(dir.path()).expect_err("escaping input");
    assert!(e.to_string().contains("input `images`"), "{e}");
    let (dir, _cap) = built();
    let mut m = read_manifest(dir.path());
    if let Some(c) = m.checkpoint.as_mut() {
        c.file = "/models/pi0.safetensors".into();
    }
    write_manifest(dir.path(), &m);
    let e = Capture::open(dir.path()).expect_err("escaping checkpoint");
    assert!(e.to_string().contains("checkpoint"), "{e}");
}

#[cfg(unix)]
#[test]
fn symlinks_may_not_leave_the_capture() {
    let (dir, _cap) = built();
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("b.safetensors");
    std::fs::rename(dir.path().join("b.safetensors"), &target).expect("move shard out");
    std::os::unix::fs::symlink(&target, dir.path().join("b.safetensors")).expect("symlink");
    let cap = Capture::open(dir.path()).expect("the manifest itself is fine");
    let e = cap
        .check_module("b")
        .expect_err("shard escapes through a symlink");
    assert!(
        matches!(e.kind(), GoldenErrorKind::PathEscape { .. }),
        "{e:?}"
    );
    assert!(cap.golden("b.out").is_err());
    cap.check_module("a").expect("other modules unaffected");
    // A symlink that stays inside is fine.
    std::fs::remove_file(dir.path().join("b.safetensors")).expect("rm link");
    std::fs::create_dir(dir.path().join("shards")).expect("mkdir");
    std::fs::rename(&target, dir.path().join("shards/b.safetensors")).expect("move back");
    std::os::unix::fs::symlink("shards/b.safetensors", dir.path().join("b.safetensors"))
        .expect("symlink");
    Capture::open(dir.path())
        .expect("open")
        .check_module("b")
        .expect("inside symlink is fine");
}

#[test]
fn missing_shard_fails_only_its_modules() {
    let (dir, _cap) = built();
    std::fs::remove_file(dir.path().join("b.safetensors")).expect("rm");
    let cap = Capture::open(dir.path()).expect("open does not need shards");
    cap.check_module("a").expect("module a is intact");
    let e = cap.check_module("b").expect_err("b's shard is gone");
    assert!(
        matches!(e.kind(), GoldenErrorKind::MissingShard { module, file, .. }
            if module == "b" && file == "b.safetensors"),
        "{e:?}"
    );
    assert!(e.to_string().contains("module `b`"), "{e}");
    let e = cap.golden("b.out").expect_err("golden of a missing shard");
    assert!(
        matches!(e.kind(), GoldenErrorKind::MissingShard { .. }),
        "{e:?}"
    );
    // Inputs shard gone: every module fed from it fails, naming the module being checked.
    std::fs::remove_file(dir.path().join("inputs.safetensors")).expect("rm");
    let cap = Capture::open(dir.path()).expect("reopen (shards already mapped stay valid)");
    let e = cap.check_module("a").expect_err("a needs images");
    assert!(
        matches!(e.kind(), GoldenErrorKind::MissingShard { module, file, .. }
            if module == "a" && file == "inputs.safetensors"),
        "{e:?}"
    );
    let e = cap.check_module("zzz").expect_err("unknown module");
    assert!(
        matches!(e.kind(), GoldenErrorKind::UnknownModule { .. }),
        "{e:?}"
    );
}

#[test]
fn record_and_header_must_agree() {
    let (dir, _cap) = built();
    let mut m = read_manifest(dir.path());
    m.modules[1].ops[0].shape = vec![4];
    write_manifest(dir.path(), &m);
    let cap = Capture::open(dir.path()).expect("open");
    let e = cap.check_module("b").expect_err("shape mismatch");
    match e.kind() {
        GoldenErrorKind::RecordShapeMismatch {
            op,
            file,
            expected,
            found,
            ..
        } => {
            assert_eq!((op.as_str(), file.as_str()), ("b.out", "b.safetensors"));
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[4][..], &[3][..])
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string().contains("[4]") && e.to_string().contains("[3]"),
        "{e}"
    );
    assert!(cap.golden("b.out").is_err(), "golden() checks too");
    cap.check_module("a").expect("a unaffected");

    let mut m = read_manifest(dir.path());
    m.modules[1].ops[0].shape = vec![3];
    m.modules[1].ops[0].dtype = "BF16".into();
    m.modules[1].ops[1].tensor = Some("not-there".into());
    write_manifest(dir.path(), &m);
    let cap = Capture::open(dir.path()).expect("open");
    let e = cap.check_module("b").expect_err("dtype mismatch");
    assert!(
        matches!(e.kind(), GoldenErrorKind::RecordDtypeMismatch { .. }),
        "{e:?}"
    );
    let e = cap.golden("b.nan").expect_err("tensor missing");
    assert!(
        matches!(e.kind(), GoldenErrorKind::RecordTensorMissing { op, tensor, .. }
            if op == "b.nan" && tensor == "not-there"),
        "{e:?}"
    );
}

#[test]
fn module_inputs_must_resolve_to_full_data() {
    let (dir, _cap) = built();
    let mut m = read_manifest(dir.path());
    m.modules[1].inputs = vec!["a.big".into()];
    write_manifest(dir.path(), &m);
    let e = Capture::open(dir.path())
        .expect("open")
        .check_module("b")
        .expect_err("stats-only input");
    assert!(
        matches!(e.kind(), GoldenErrorKind::ModuleInputStatsOnly { .. }),
        "{e:?}"
    );

    m.modules[1].inputs = vec!["ghost".into()];
    write_manifest(dir.path(), &m);
    let e = Capture::open(dir.path())
        .expect("open")
        .check_module("b")
        .expect_err("unknown input");
    assert!(
        matches!(e.kind(), GoldenErrorKind::UnknownModuleInput { .. }),
        "{e:?}"
    );

    // An output without a record is unchecked, not a broken module.
    m.modules[1].inputs = vec!["a.x".into()];
    m.modules[1].outputs = vec!["b.gone".into()];
    write_manifest(dir.path(), &m);
    Capture::open(dir.path())
        .expect("open")
        .check_module("b")
        .expect("outputs need no record");
}

#[test]
fn duplicate_modules_and_inputs_are_rejected() {
    let (dir, _cap) = built();
    let mut m = read_manifest(dir.path());
    m.modules.push(m.modules[0].clone());
    write_manifest(dir.path(), &m);
    let e = Capture::open(dir.path()).expect_err("duplicate module");
    assert!(
        matches!(e.kind(), GoldenErrorKind::DuplicateModule { .. }),
        "{e:?}"
    );
    let mut m = read_manifest(dir.path());
    m.modules.pop();
    m.inputs.push(m.inputs[0].clone());
    write_manifest(dir.path(), &m);
    let e = Capture::open(dir.path()).expect_err("duplicate input");
    assert!(
        matches!(e.kind(), GoldenErrorKind::DuplicateInput { .. }),
        "{e:?}"
    );
}

#[test]
fn writer_rejections_are_reported_and_block_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = CaptureWriter::new(dir.path(), json!({}), "pi0", "t", json!({})).expect("writer");
    w.begin_module("m", Vec::<String>::new(), Vec::<String>::new());
    let op = OpRecord::new("m.a", "add", vec![2]);
    let e = w
        .add_op("m", op.clone(), Some(&ramp(&[3], 0.0)))
        .expect_err("shape mismatch");
    assert!(
        matches!(e.kind(), GoldenErrorKind::TensorShapeMismatch { .. }),
        "{e:?}"
    );
    let e = w
        .add_op("m", op.clone(), None)
        .expect_err("no data, no stats");
    assert!(
        matches!(e.kind(), GoldenErrorKind::MissingStats { .. }),
        "{e:?}"
    );
    let e = w
        .add_op("nope", op.clone(), None)
        .expect_err("module not begun");
    assert!(
        matches!(e.kind(), GoldenErrorKind::ModuleNotBegun { .. }),
        "{e:?}"
    );
    w.add_op("m", op.clone(), Some(&ramp(&[2], 0.0)))
        .expect("fine");
    let e = w
        .add_op("m", op, Some(&ramp(&[2], 0.0)))
        .expect_err("twice");
    assert!(
        matches!(e.kind(), GoldenErrorKind::DuplicateOp { .. }),
        "{e:?}"
    );
    let e = w
        .add_input("x", &ramp(&[2], 0.5), "I64")
        .expect_err("0.5 as I64");
    assert!(
        matches!(e.kind(), GoldenErrorKind::NotRepresentable { index: 0, .. }),
        "{e:?}"
    );
    let e = w
        .add_input("x", &ramp(&[2], 0.0), "F8_E4M3")
        .expect_err("dtype");
    assert!(
        matches!(e.kind(), GoldenErrorKind::WriterDtype { .. }),
        "{e:?}"
    );
    w.begin_module("../evil", Vec::<String>::new(), Vec::<String>::new());
    let e = w.finish().expect_err("rejected calls block finish");
    match e.kind() {
        GoldenErrorKind::Rejected { count, first, .. } => {
            assert_eq!(*count, 7);
            assert!(first.contains("m.a"), "{first}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(files(dir.path()), Vec::<String>::new(), "nothing written");
}

#[test]
fn writer_refuses_op_named_like_an_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = CaptureWriter::new(dir.path(), json!({}), "pi0", "t", json!({})).expect("writer");
    w.add_input("x", &ramp(&[2], 0.0), "F32").expect("input");
    w.begin_module("m", ["x"], ["x"]);
    w.add_op(
        "m",
        OpRecord::new("x", "add", vec![2]),
        Some(&ramp(&[2], 1.0)),
    )
    .expect("buffered");
    let e = w.finish().expect_err("one namespace");
    assert!(
        matches!(e.kind(), GoldenErrorKind::NameCollision { .. }),
        "{e:?}"
    );
}

/// The committed capture: opens, every module validates, every full record's stored stats
/// equal the Rust computation (the Python and Rust stats definitions agree), and a copy can be
/// perturbed in place without touching any other record.
#[test]
fn committed_pi0_tiny_capture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny");
    if !dir.join("manifest.json").exists() {
        eprintln!("note: {} has no manifest.json yet, skipping", dir.display());
        return;
    }
    let cap = Capture::open(&dir).expect("pi0-tiny opens");
    let m = cap.manifest();
    assert_eq!(m.schema, SCHEMA);
    assert_eq!(m.modules.len(), 11);
    assert_eq!(m.checkpoint.as_ref().map(|c| c.tensors), Some(777));
    let mut hashes = std::collections::BTreeMap::new();
    for md in &m.modules {
        cap.check_module(&md.id)
            .unwrap_or_else(|e| panic!("module {}: {e}", md.id));
        for rec in md.ops.iter().filter(|r| r.file.is_some()) {
            let Some(Golden::Full(g)) = cap.golden(&rec.name).expect("golden reads") else {
                panic!("{}: full record without data", rec.name)
            };
            let s = stats(&g.as_slice());
            assert_stats_eq(rec.stats.as_ref(), &s, &rec.name);
            hashes.insert(rec.name.clone(), s.hash);
        }
    }
    assert!(hashes.len() > 1000, "{}", hashes.len());
    assert_eq!(cap.tensor("tokens").expect("tokens").shape(), [1, 8]);

    let copy = tempfile::tempdir().expect("tempdir");
    for f in files(&dir) {
        std::fs::copy(dir.join(&f), copy.path().join(&f)).expect("copy");
    }
    let target = "vlm.layers.3.attn.q";
    rewrite_tensor(copy.path(), target, |v| v[0] += 1.0).expect("rewrite pi0-tiny copy");
    // Shards written by Python's `safetensors` come back byte-identical from the Rust writer.
    for f in files(&dir).iter().filter(|f| f.ends_with(".safetensors")) {
        let same = std::fs::read(dir.join(f)).ok() == std::fs::read(copy.path().join(f)).ok();
        assert_eq!(same, f != "vlm.safetensors", "{f}");
    }
    let cap = Capture::open(copy.path()).expect("reopen");
    for md in &cap.manifest().modules {
        cap.check_module(&md.id)
            .unwrap_or_else(|e| panic!("module {}: {e}", md.id));
    }
    for (name, hash) in &hashes {
        let Some(Golden::Full(g)) = cap.golden(name).expect("reads") else {
            panic!("{name} lost its data")
        };
        let now = stats(&g.as_slice()).hash;
        assert_eq!(&now != hash, name == target, "{name}");
    }
}
