//! Locating and checking a built tt-metal tree for the `tt` feature. Pure path logic with the
//! environment passed in, so `tests/build_probe.rs` can exercise every message.

use std::path::{Path, PathBuf};

/// The tt-metal release the C++ shim is written against (see the crate README).
pub const PINNED: &str = "v0.81.1";

/// Every environment variable the build script reads.
pub const ENV_VARS: &[&str] = &[
    "TT_METAL_HOME",
    "TT_METAL_BUILD_DIR",
    "CPM_SOURCE_CACHE",
    "ARCH_NAME",
    "TT_METAL_SYS_CXXFLAGS",
];

/// A tree that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub home: PathBuf,
    pub build: PathBuf,
    pub lib: PathBuf,
    /// `_ttnncpp.so` (no `lib` prefix: linked by file name).
    pub ttnn_lib: PathBuf,
    /// Other libraries in `lib` to link by name (`tt_metal`, and `tt_stl` when present).
    pub libs: Vec<String>,
    pub compile_commands: Option<PathBuf>,
    pub commit: Option<String>,
}

fn missing_home() -> String {
    format!(
        "tt-metal-sys: the `tt` feature needs a built tt-metal tree, but TT_METAL_HOME is not set.\n\
         \x20 Set TT_METAL_HOME to a tt-metal checkout (pinned release: {PINNED}) built with\n\
         \x20 ./build_metal.sh, so that $TT_METAL_HOME/build/lib/_ttnncpp.so and\n\
         \x20 $TT_METAL_HOME/build/lib/libtt_metal.so exist, then rebuild.\n\
         \x20 Without Tenstorrent hardware, build with `--features host-shim` instead: the CPU\n\
         \x20 implementation of the same ABI."
    )
}

/// Finds the tree named by the environment (`get` reads one variable) and checks that it holds
/// the headers and libraries the shim needs. The error lists everything missing at once.
pub fn find_tree(get: &dyn Fn(&str) -> Option<String>) -> Result<Tree, String> {
    let home = match get("TT_METAL_HOME").filter(|s| !s.trim().is_empty()) {
        None => return Err(missing_home()),
        Some(h) => PathBuf::from(h),
    };
    if !home.is_dir() {
        return Err(format!(
            "tt-metal-sys: TT_METAL_HOME={} is not a directory; point it at a built tt-metal \
             checkout (pinned release: {PINNED}), or build with `--features host-shim`.",
            home.display()
        ));
    }
    let build = get("TT_METAL_BUILD_DIR")
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join("build"));
    let lib = build.join("lib");
    let mut missing: Vec<String> = Vec::new();
    let mut need = |p: PathBuf, what: &str| {
        if !p.exists() {
            missing.push(format!("{} ({what})", p.display()));
        }
    };
    need(
        lib.join("_ttnncpp.so"),
        "the TT-NN C++ library: build tt-metal with ./build_metal.sh",
    );
    need(
        lib.join("libtt_metal.so"),
        "the tt-metal runtime library: build tt-metal with ./build_metal.sh",
    );
    need(
        home.join("tt_metal/api/tt-metalium/host_api.hpp"),
        "tt-metal API headers",
    );
    need(
        home.join("ttnn/cpp/ttnn/operations/matmul/matmul.hpp"),
        "TT-NN op headers",
    );
    let device_hpp = ["ttnn/api/ttnn/device.hpp", "ttnn/cpp/ttnn/device.hpp"];
    if !device_hpp.iter().any(|p| home.join(p).exists()) {
        missing.push(format!(
            "{} or {} (TT-NN device header)",
            home.join(device_hpp[0]).display(),
            home.join(device_hpp[1]).display()
        ));
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|m| format!("  - {m}")).collect();
        return Err(format!(
            "tt-metal-sys: TT_METAL_HOME={} is not a built tt-metal tree (pinned release: \
             {PINNED}); missing:\n{}\n  Build it with ./build_metal.sh (or set TT_METAL_BUILD_DIR \
             to its build directory), or build pccscope with `--features host-shim` instead.",
            home.display(),
            list.join("\n")
        ));
    }
    let mut libs = vec!["tt_metal".to_string()];
    if lib.join("libtt_stl.so").exists() {
        libs.push("tt_stl".into());
    }
    let cc = build.join("compile_commands.json");
    Ok(Tree {
        ttnn_lib: lib.join("_ttnncpp.so"),
        commit: git_commit(&home),
        compile_commands: cc.exists().then_some(cc),
        home,
        build,
        lib,
        libs,
    })
}

/// The checked-out commit of a git tree, read from `.git` without running git.
pub fn git_commit(home: &Path) -> Option<String> {
    let git = home.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(r) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    if let Ok(c) = std::fs::read_to_string(git.join(r)) {
        return Some(c.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed
        .lines()
        .find_map(|l| l.strip_suffix(r).map(|c| c.trim().to_string()))
}

/// The fallback include roots of TTNN_CPP_API.md §1.1 (used when the tree has no
/// compile_commands.json), plus the CPM dependency headers found in the cache.
pub fn fallback_includes(home: &Path, build: &Path, cpm_cache: Option<&Path>) -> Vec<PathBuf> {
    let rel = [
        "ttnn",
        "ttnn/api",
        "ttnn/core",
        "ttnn/cpp",
        "ttnn/cpp/ttnn",
        "ttnn/cpp/ttnn/deprecated",
        ".",
        "tt_metal",
        "tt_metal/api",
        "tt_metal/include",
        "tt_metal/hostdevcommon/api",
        "tt_metal/hw/inc",
        "tt_metal/third_party/umd",
        "tt_metal/third_party/umd/device/api",
        "tt_metal/third_party/tracy/public",
        "tt_stl",
        "tt_stl/tt_stl",
    ];
    let mut out: Vec<PathBuf> = rel
        .iter()
        .map(|r| home.join(r))
        .filter(|p| p.is_dir())
        .collect();
    let gen = build.join("include");
    if gen.is_dir() {
        out.push(gen);
    }
    let cache = cpm_cache
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.join(".cpmcache"));
    // .cpmcache/<pkg>/<hash>/{include, libs/core/include, .}
    if let Ok(pkgs) = std::fs::read_dir(&cache) {
        for pkg in pkgs.flatten() {
            let Ok(versions) = std::fs::read_dir(pkg.path()) else {
                continue;
            };
            for v in versions.flatten() {
                let v = v.path();
                for sub in ["include", "libs/core/include"] {
                    if v.join(sub).is_dir() {
                        out.push(v.join(sub));
                    }
                }
                if pkg.file_name() == "reflect" && v.is_dir() {
                    out.push(v.clone());
                }
            }
        }
    }
    out
}

/// Whether the tree's unary headers declare `GeluVariant` (the tanh GELU overload).
pub fn has_gelu_variant(home: &Path) -> bool {
    fn scan(dir: &Path, depth: usize) -> bool {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return false;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if depth < 4 && scan(&p, depth + 1) {
                    return true;
                }
            } else if p.extension().is_some_and(|x| x == "hpp")
                && std::fs::read_to_string(&p).is_ok_and(|s| s.contains("GeluVariant"))
            {
                return true;
            }
        }
        false
    }
    scan(&home.join("ttnn/cpp/ttnn/operations/eltwise/unary"), 0)
}
