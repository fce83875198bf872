//! The mmap safetensors reader: every malformed header is a distinct error naming the file
//! (and tensor), never a panic; every supported dtype widens to f32.

use std::path::{Path, PathBuf};

use pccscope::golden::{GoldenErrorKind, SafetensorsDtype, SafetensorsFile};
use proptest::prelude::*;

/// A safetensors file from a header text and a data section.
fn file_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

fn open_err(bytes: &[u8]) -> (PathBuf, GoldenErrorKind, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "t.safetensors", bytes);
    let e = SafetensorsFile::open(&p).expect_err("malformed file must not open");
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string()),
        "error names the file: {msg}"
    );
    assert!(
        msg.starts_with(char::is_lowercase),
        "lowercase message: {msg}"
    );
    (p, e.into_kind(), msg)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn truncated_file() {
    for len in [0usize, 1, 7] {
        let (_, kind, _) = open_err(&vec![0u8; len]);
        assert!(
            matches!(kind, GoldenErrorKind::Truncated { len: l, .. } if l == len as u64),
            "{kind:?}"
        );
    }
}

#[test]
fn header_length_past_end() {
    let mut bytes = file_bytes("{}", &[]);
    bytes[..8].copy_from_slice(&1000u64.to_le_bytes());
    let (_, kind, msg) = open_err(&bytes);
    assert!(
        matches!(
            kind,
            GoldenErrorKind::HeaderPastEnd {
                header_len: 1000,
                file_len: 10,
                ..
            }
        ),
        "{kind:?}"
    );
    assert!(msg.contains("1000"), "{msg}");
    // A huge length must not overflow.
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let (_, kind, _) = open_err(&bytes);
    assert!(
        matches!(kind, GoldenErrorKind::HeaderPastEnd { .. }),
        "{kind:?}"
    );
}

#[test]
fn invalid_header_json() {
    for header in ["{not json", "[1, 2]", "\u{0}\u{0}", ""] {
        let (_, kind, _) = open_err(&file_bytes(header, &[]));
        assert!(
            matches!(kind, GoldenErrorKind::InvalidHeader { .. }),
            "{header:?}: {kind:?}"
        );
    }
}

#[test]
fn invalid_entry_names_the_tensor() {
    let header = r#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#;
    let (_, kind, msg) = open_err(&file_bytes(header, &[0; 4]));
    assert!(
        matches!(&kind, GoldenErrorKind::InvalidEntry { tensor, .. } if tensor == "w"),
        "{kind:?}"
    );
    assert!(msg.contains("`w`"), "{msg}");
    let header = r#"{"w": {"dtype": "F32", "shape": [1]}}"#;
    let (_, kind, _) = open_err(&file_bytes(header, &[0; 4]));
    assert!(
        matches!(kind, GoldenErrorKind::InvalidEntry { .. }),
        "{kind:?}"
    );
}

#[test]
fn invalid_metadata() {
    let header = r#"{"__metadata__": {"format": 3}}"#;
    let (_, kind, _) = open_err(&file_bytes(header, &[]));
    assert!(
        matches!(kind, GoldenErrorKind::InvalidMetadata { .. }),
        "{kind:?}"
    );
}

#[test]
fn offsets_out_of_range() {
    let header = r#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#;
    let (_, kind, msg) = open_err(&file_bytes(header, &[0; 4]));
    assert!(
        matches!(
            &kind,
            GoldenErrorKind::OffsetsOutOfRange { tensor, begin: 0, end: 8, data_len: 4, .. }
                if tensor == "w"
        ),
        "{kind:?}"
    );
    assert!(msg.contains("`w`"), "{msg}");
    let reversed = r#"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}"#;
    let (_, kind, _) = open_err(&file_bytes(reversed, &[0; 4]));
    assert!(
        matches!(kind, GoldenErrorKind::OffsetsOutOfRange { .. }),
        "{kind:?}"
    );
}

#[test]
fn offsets_not_matching_shape_times_dtype() {
    let header = r#"{"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}}"#;
    let (_, kind, msg) = open_err(&file_bytes(header, &[0; 8]));
    assert!(
        matches!(
            &kind,
            GoldenErrorKind::DataSizeMismatch { tensor, expected: 6, found: 8, .. } if tensor == "w"
        ),
        "{kind:?}"
    );
    assert!(msg.contains("needs 6 bytes"), "{msg}");
    let huge =
        r#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}}"#;
    let (_, kind, _) = open_err(&file_bytes(huge, &[0; 8]));
    assert!(
        matches!(kind, GoldenErrorKind::ShapeOverflow { .. }),
        "{kind:?}"
    );
}

#[test]
fn overlapping_offsets() {
    let header = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#;
    let (_, kind, _) = open_err(&file_bytes(header, &[0; 12]));
    assert!(
        matches!(&kind, GoldenErrorKind::OverlappingData { tensor, other, .. }
            if tensor == "b" && other == "a"),
        "{kind:?}"
    );
}

#[test]
fn unsupported_dtype() {
    for dtype in ["F8_E4M3", "C64", "Q4"] {
        let header =
            format!(r#"{{"w": {{"dtype": "{dtype}", "shape": [1], "data_offsets": [0, 1]}}}}"#);
        let (_, kind, msg) = open_err(&file_bytes(&header, &[0]));
        assert!(
            matches!(&kind, GoldenErrorKind::UnsupportedDtype { tensor, dtype: d, .. }
                if tensor == "w" && d == dtype),
            "{kind:?}"
        );
        assert!(msg.contains(dtype), "{msg}");
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = SafetensorsFile::open(dir.path().join("nope.safetensors")).expect_err("missing");
    assert!(
        matches!(e.kind(), GoldenErrorKind::Io { action: "open", .. }),
        "{e:?}"
    );
    assert!(std::error::Error::source(&e).is_some(), "io cause attached");
}

#[test]
fn reads_every_supported_dtype() {
    let mut header = String::from("{");
    let mut data = Vec::new();
    let mut add = |name: &str, dtype: &str, shape: &str, bytes: Vec<u8>| {
        if header.len() > 1 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{name}": {{"dtype": "{dtype}", "shape": {shape}, "data_offsets": [{}, {}]}}"#,
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend(bytes);
    };
    add("f32", "F32", "[2, 2]", f32_bytes(&[1.0, -2.0, 0.5, 3.25]));
    add(
        "bf16",
        "BF16",
        "[2]",
        [half::bf16::from_f32(1.5), half::bf16::from_f32(-3.0)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    add(
        "f16",
        "F16",
        "[1]",
        half::f16::from_f32(0.25).to_le_bytes().to_vec(),
    );
    add(
        "tokens",
        "I64",
        "[1, 3]",
        [2i64, 257_151, 16_777_216]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    add(
        "i32",
        "I32",
        "[2]",
        [-7i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    add("u8", "U8", "[3]", vec![0, 128, 255]);
    add("mask", "BOOL", "[1, 3]", vec![1, 0, 1]);
    add("scalar", "F32", "[]", f32_bytes(&[42.0]));
    add("empty", "F32", "[0, 4]", Vec::new());
    header.push_str(r#","__metadata__": {"format": "pt"}}"#);

    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "all.safetensors", &file_bytes(&header, &data));
    let f = SafetensorsFile::open(&p).expect("valid file");
    assert_eq!(
        f.names(),
        ["bf16", "empty", "f16", "f32", "i32", "mask", "scalar", "tokens", "u8"]
    );
    assert_eq!(f.metadata().get("format").map(String::as_str), Some("pt"));
    assert_eq!(f.info("bf16"), Some(("BF16".to_string(), vec![2])));
    assert_eq!(
        f.entry("tokens").map(|i| i.dtype),
        Some(SafetensorsDtype::I64)
    );
    assert_eq!(f.info("nope"), None);

    let get = |n: &str| {
        let t = f.tensor(n).expect("tensor reads");
        assert_eq!(t.origin.as_deref(), Some(n));
        (t.shape().to_vec(), t.as_slice().to_vec())
    };
    assert_eq!(get("f32"), (vec![2, 2], vec![1.0, -2.0, 0.5, 3.25]));
    assert_eq!(get("bf16"), (vec![2], vec![1.5, -3.0]));
    assert_eq!(get("f16"), (vec![1], vec![0.25]));
    assert_eq!(
        get("tokens"),
        (vec![1, 3], vec![2.0, 257_151.0, 16_777_216.0])
    );
    assert_eq!(get("i32"), (vec![2], vec![-7.0, 9.0]));
    assert_eq!(get("u8"), (vec![3], vec![0.0, 128.0, 255.0]));
    assert_eq!(get("mask"), (vec![1, 3], vec![1.0, 0.0, 1.0]));
    assert_eq!(get("scalar"), (vec![], vec![42.0]));
    assert_eq!(get("empty"), (vec![0, 4], vec![]));
    assert_eq!(f.bytes("u8").expect("bytes"), &[0, 128, 255]);

    let e = f.tensor("nope").expect_err("no such tensor");
    assert!(
        matches!(e.kind(), GoldenErrorKind::TensorNotFound { tensor, .. } if tensor == "nope"),
        "{e:?}"
    );
}

#[test]
fn inexact_token_is_an_error_not_a_silent_rounding() {
    let header = r#"{"tokens": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}"#;
    let data: Vec<u8> = [1i64, 16_777_217]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "t.safetensors", &file_bytes(header, &data));
    let f = SafetensorsFile::open(&p).expect("header is fine");
    let e = f.tensor("tokens").expect_err("2^24 + 1 is not an f32");
    assert!(
        matches!(
            e.kind(),
            GoldenErrorKind::InexactInteger {
                index: 1,
                value: 16_777_217,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn reads_a_file_written_by_python_safetensors() {
    // goldens/pi0-tiny/checkpoint.safetensors is written by the Python `safetensors` package.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens/pi0-tiny/checkpoint.safetensors");
    if !p.exists() {
        eprintln!("note: {} not present, skipping", p.display());
        return;
    }
    let f = SafetensorsFile::open(&p).expect("python-written checkpoint opens");
    assert_eq!(f.len(), 777);
    for name in f.names() {
        let t = f.tensor(name).expect("every checkpoint tensor reads");
        assert!(t.as_slice().iter().all(|v| v.is_finite()), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "x.safetensors", &bytes);
        if let Ok(f) = SafetensorsFile::open(&p) {
            for n in f.names() {
                let _ = f.tensor(n);
            }
        }
    }

    /// Corrupting any byte of a valid file's header never panics the reader.
    #[test]
    fn corrupted_headers_never_panic(pos in 0usize..200, byte in any::<u8>()) {
        let header = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "I64", "shape": [1, 1], "data_offsets": [8, 16]}}"#;
        let mut bytes = file_bytes(header, &[0u8; 16]);
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "x.safetensors", &bytes);
        if let Ok(f) = SafetensorsFile::open(&p) {
            for n in f.names() {
                let _ = f.tensor(n);
            }
        }
    }
}
