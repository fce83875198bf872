//! Every function of `include/ttm.h` exists in both implementations and in the Rust bindings,
//! with no extra exported `ttm_` function anywhere: the header, `shim/host.c` + `shim/common.c`,
//! `shim/ttm.cpp` + `shim/common.c` and `src/ffi.rs` describe one ABI.

use std::collections::BTreeSet;

/// Names `ttm_x` written as `<word> ttm_x(` at the start of a line (a declaration or definition
/// of a public function; the `ttm__` internals and indented calls do not match).
fn functions(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in src
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('\t'))
    {
        for (i, _) in l.match_indices("ttm_") {
            if i == 0 || !matches!(l.as_bytes()[i - 1], b' ' | b'*') {
                continue;
            }
            let rest = &l[i..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if rest[name.len()..].starts_with('(') && !name.starts_with("ttm__") {
                out.insert(name);
                break;
            }
        }
    }
    out
}

fn rust_functions(src: &str) -> BTreeSet<String> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("pub fn ttm_"))
        .map(|r| {
            let n: String = r
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            format!("ttm_{n}")
        })
        .collect()
}

#[test]
fn header_implementations_and_bindings_agree() {
    let header = functions(include_str!("../include/ttm.h"));
    assert!(header.len() >= 35, "parsed only {header:?}");
    let common = functions(include_str!("../shim/common.c"));
    let host: BTreeSet<String> = functions(include_str!("../shim/host.c"))
        .union(&common)
        .cloned()
        .collect();
    let real: BTreeSet<String> = functions(include_str!("../shim/ttm.cpp"))
        .union(&common)
        .cloned()
        .collect();
    let rust = rust_functions(include_str!("../src/ffi.rs"));
    assert_eq!(host, header, "shim/host.c + common.c vs ttm.h");
    assert_eq!(real, header, "shim/ttm.cpp + common.c vs ttm.h");
    assert_eq!(rust, header, "src/ffi.rs vs ttm.h");
}
