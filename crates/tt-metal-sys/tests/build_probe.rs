//! The `tt` feature's tree probe (build/probe.rs, the code build.rs runs): what it accepts and
//! the message it fails with for each kind of missing piece.

#[path = "../build/probe.rs"]
mod probe;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

fn env(pairs: &[(&str, &Path)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.display().to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn touch(p: &Path) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, "").unwrap();
}

/// A directory with the files a built tree has (empty files are enough for the probe).
fn fake_tree(root: &Path) {
    for f in [
        "build/lib/_ttnncpp.so",
        "build/lib/libtt_metal.so",
        "tt_metal/api/tt-metalium/host_api.hpp",
        "ttnn/cpp/ttnn/operations/matmul/matmul.hpp",
        "ttnn/api/ttnn/device.hpp",
    ] {
        touch(&root.join(f));
    }
}

#[test]
fn unset_tt_metal_home_names_the_variable_and_the_alternative() {
    let e = probe::find_tree(&|_| None).unwrap_err();
    assert!(e.contains("TT_METAL_HOME is not set"), "{e}");
    assert!(
        e.contains("_ttnncpp.so") && e.contains("./build_metal.sh"),
        "{e}"
    );
    assert!(e.contains("--features host-shim"), "{e}");
    assert!(e.contains(probe::PINNED), "{e}");
    let blank = probe::find_tree(&|k| (k == "TT_METAL_HOME").then(|| "  ".to_string()));
    assert_eq!(blank.unwrap_err(), e);
}

#[test]
fn a_home_that_is_not_a_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let e = probe::find_tree(&env(&[("TT_METAL_HOME", &missing)])).unwrap_err();
    assert!(
        e.contains("is not a directory") && e.contains("nope"),
        "{e}"
    );
}

#[test]
fn an_unbuilt_tree_lists_every_missing_piece() {
    let tmp = tempfile::tempdir().unwrap();
    let e = probe::find_tree(&env(&[("TT_METAL_HOME", tmp.path())])).unwrap_err();
    for piece in [
        "build/lib/_ttnncpp.so",
        "build/lib/libtt_metal.so",
        "tt-metalium/host_api.hpp",
        "operations/matmul/matmul.hpp",
        "ttnn/api/ttnn/device.hpp or",
    ] {
        assert!(e.contains(piece), "missing {piece:?} in:\n{e}");
    }
    assert_eq!(e.matches("\n  - ").count(), 5, "{e}");
}

#[test]
fn a_built_tree_is_accepted_with_its_libraries_and_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_tree(root);
    touch(&root.join("build/lib/libtt_stl.so"));
    fs::create_dir_all(root.join(".git/refs/heads")).unwrap();
    fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::write(root.join(".git/refs/heads/main"), "0123abcd\n").unwrap();
    let t = probe::find_tree(&env(&[("TT_METAL_HOME", root)])).unwrap();
    assert_eq!(t.ttnn_lib, root.join("build/lib/_ttnncpp.so"));
    assert_eq!(t.libs, vec!["tt_metal".to_string(), "tt_stl".to_string()]);
    assert_eq!(t.commit.as_deref(), Some("0123abcd"));
    assert!(t.compile_commands.is_none());
}

#[test]
fn tt_metal_build_dir_overrides_the_build_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("src");
    fake_tree(&root);
    fs::remove_dir_all(root.join("build")).unwrap();
    let build = tmp.path().join("build_Release");
    touch(&build.join("lib/_ttnncpp.so"));
    touch(&build.join("lib/libtt_metal.so"));
    touch(&build.join("compile_commands.json"));
    let e = probe::find_tree(&env(&[("TT_METAL_HOME", &root)])).unwrap_err();
    assert!(e.contains("build/lib/_ttnncpp.so"), "{e}");
    let t = probe::find_tree(&env(&[
        ("TT_METAL_HOME", &root),
        ("TT_METAL_BUILD_DIR", &build),
    ]))
    .unwrap();
    assert_eq!(t.lib, build.join("lib"));
    assert_eq!(
        t.compile_commands,
        Some(build.join("compile_commands.json"))
    );
    assert!(t.libs == vec!["tt_metal".to_string()]);
}

#[test]
fn fallback_includes_and_gelu_variant_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_tree(root);
    fs::create_dir_all(root.join(".cpmcache/fmt/69912fb6/include")).unwrap();
    fs::create_dir_all(root.join(".cpmcache/reflect/f93e7747")).unwrap();
    fs::create_dir_all(root.join(".cpmcache/boost/1359e136/libs/core/include")).unwrap();
    let inc = probe::fallback_includes(root, &root.join("build"), None);
    assert!(inc.contains(&root.join("ttnn/cpp/ttnn")));
    assert!(inc.contains(&root.join(".cpmcache/fmt/69912fb6/include")));
    assert!(inc.contains(&root.join(".cpmcache/reflect/f93e7747")));
    assert!(inc.contains(&root.join(".cpmcache/boost/1359e136/libs/core/include")));
    assert!(!probe::has_gelu_variant(root));
    let types = root.join("ttnn/cpp/ttnn/operations/eltwise/unary/common/unary_op_types.hpp");
    touch(&types);
    fs::write(&types, "enum class GeluVariant { ACCURATE, TANH };").unwrap();
    assert!(probe::has_gelu_variant(root));
}

#[test]
fn every_variable_the_build_reads_is_a_rerun_trigger() {
    let build = include_str!("../build.rs");
    assert!(build.contains("for v in probe::ENV_VARS"));
    assert!(build.contains("cargo:rerun-if-env-changed={v}"));
    let probe_src = include_str!("../build/probe.rs");
    for var in ["TT_METAL_HOME", "TT_METAL_BUILD_DIR", "CPM_SOURCE_CACHE"] {
        assert!(probe::ENV_VARS.contains(&var));
        assert!(probe_src.contains(var) || build.contains(var));
    }
    for (i, _) in build.match_indices("env::var(\"") {
        let name: String = build[i + 10..].chars().take_while(|c| *c != '"').collect();
        assert!(
            probe::ENV_VARS.contains(&name.as_str()),
            "{name} is read but not declared"
        );
    }
}
