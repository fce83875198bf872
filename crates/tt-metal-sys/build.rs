//! Builds one implementation of `include/ttm.h`:
//!
//! * feature `tt`: `shim/ttm.cpp` (C++20) against the built tt-metal tree in `TT_METAL_HOME`,
//!   linked to its `_ttnncpp.so` and `libtt_metal.so`; fails with a message naming what is
//!   missing when the tree is not there;
//! * feature `host-shim` (and not `tt`): `shim/host.c`, the CPU implementation;
//! * neither: nothing is compiled.
//!
//! `shim/common.c` (error records, counters, fault injection) is linked in both cases.

#[path = "build/probe.rs"]
#[allow(dead_code)]
mod probe;

use std::env;
use std::path::PathBuf;

fn main() {
    for v in probe::ENV_VARS {
        println!("cargo:rerun-if-env-changed={v}");
    }
    for f in [
        "build/probe.rs",
        "include/ttm.h",
        "shim/ttm_internal.h",
        "shim/common.c",
        "shim/host.c",
        "shim/ttm.cpp",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rustc-check-cfg=cfg(ttm_standin)");
    let tt = env::var_os("CARGO_FEATURE_TT").is_some();
    let host = env::var_os("CARGO_FEATURE_HOST_SHIM").is_some();
    if tt {
        if host {
            println!(
                "cargo:warning=tt-metal-sys: both `tt` and `host-shim` are enabled; linking the \
                 real tt-metal implementation (host-shim is ignored)"
            );
        }
        let get = |k: &str| env::var(k).ok();
        match probe::find_tree(&get) {
            Ok(tree) => build_real(&tree),
            Err(msg) => {
                eprintln!("{msg}");
                std::process::exit(1);
            }
        }
    } else if host {
        build_host();
    }
}

fn common(b: &mut cc::Build) {
    b.file("shim/common.c")
        .include("include")
        .include("shim")
        .std("c11")
        .warnings(true)
        .extra_warnings(true);
}

fn build_host() {
    let mut b = cc::Build::new();
    common(&mut b);
    b.file("shim/host.c").compile("ttm_host");
    println!("cargo:rustc-link-lib=m");
}

/// -I / -isystem / -D flags of one TT-NN op translation unit in compile_commands.json.
#[cfg(feature = "tt")]
fn flags_from_compile_commands(path: &std::path::Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let entry = v.as_array()?.iter().find(|e| {
        e["file"]
            .as_str()
            .is_some_and(|f| f.contains("/ttnn/cpp/ttnn/operations/") && f.ends_with(".cpp"))
    })?;
    let args: Vec<String> = match entry["arguments"].as_array() {
        Some(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        None => entry["command"]
            .as_str()?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    };
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "-I" || a == "-isystem" || a == "-D" {
            if let Some(v) = it.next() {
                out.push(a);
                out.push(v);
            }
        } else if a.starts_with("-I") || a.starts_with("-D") || a.starts_with("-isystem") {
            out.push(a);
        }
    }
    Some(out)
}

#[cfg(not(feature = "tt"))]
fn flags_from_compile_commands(_: &std::path::Path) -> Option<Vec<String>> {
    None
}

fn build_real(t: &probe::Tree) {
    if t.home.join("TTM_STANDIN").exists() {
        // The stand-in tree of shim/syntax-check/check-real-shim.sh: no TT-NN inside.
        println!(
            "cargo:warning=tt-metal-sys: building against the stand-in tree {} (no TT-NN code)",
            t.home.display()
        );
        println!("cargo:rustc-cfg=ttm_standin");
    }
    let mut b = cc::Build::new();
    b.cpp(true)
        .std("c++20")
        .file("shim/ttm.cpp")
        .include("include")
        .include("shim")
        .warnings(false)
        .define("FMT_HEADER_ONLY", None)
        .define("SPDLOG_FMT_EXTERNAL", None)
        .flag_if_supported("-fsized-deallocation");
    let from_cc = t
        .compile_commands
        .as_deref()
        .and_then(flags_from_compile_commands);
    match from_cc {
        Some(flags) => {
            for f in flags {
                b.flag(&f);
            }
        }
        None => {
            let cpm = env::var("CPM_SOURCE_CACHE").ok().map(PathBuf::from);
            for inc in probe::fallback_includes(&t.home, &t.build, cpm.as_deref()) {
                b.include(inc);
            }
        }
    }
    if probe::has_gelu_variant(&t.home) {
        b.define("TTM_HAVE_GELU_VARIANT", "1");
    }
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    b.define(
        "TTM_TT_METAL_HOME",
        quoted(&t.home.display().to_string()).as_str(),
    );
    b.define(
        "TTM_TT_METAL_COMMIT",
        quoted(t.commit.as_deref().unwrap_or("unknown")).as_str(),
    );
    b.define("TTM_TT_METAL_PINNED", quoted(probe::PINNED).as_str());
    if let Ok(extra) = env::var("TT_METAL_SYS_CXXFLAGS") {
        for f in extra.split_whitespace() {
            b.flag(f);
        }
    }
    b.compile("ttm_real");

    let mut c = cc::Build::new();
    common(&mut c);
    c.compile("ttm_common");

    let lib = t.lib.display();
    println!("cargo:rustc-link-search=native={lib}");
    // _ttnncpp.so has no `lib` prefix: link it by file name.
    println!("cargo:rustc-link-lib=dylib:+verbatim=_ttnncpp.so");
    for l in &t.libs {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    println!("cargo:rustc-link-lib=dylib=stdc++");
    // rpath for this crate's own tests; dependents read DEP_TTM_LIB_DIR or set LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:lib_dir={lib}");
    if let Some(c) = &t.commit {
        println!("cargo:commit={c}");
    }
}
