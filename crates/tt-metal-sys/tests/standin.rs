//! The real C++ shim (shim/ttm.cpp) against the stand-in tree of
//! `shim/syntax-check/check-real-shim.sh`: every "TT-NN" call raises, so this exercises exactly
//! the boundary — exceptions become statuses and parsed records, never cross into Rust. Compiled
//! only when build.rs sees the stand-in marker (cfg `ttm_standin`).

#![cfg(all(feature = "tt", ttm_standin))]

use std::ffi::{CStr, CString};
use std::ptr;

use tt_metal_sys::{ffi, Buffer, DType, Device, Layout, OpOptions, Status};

#[test]
fn the_cpp_shim_turns_every_exception_into_a_status() {
    assert_eq!(tt_metal_sys::implementation(), "tt-metal");
    let info = tt_metal_sys::build_info();
    assert!(
        info.contains("implementation=tt-metal") && info.contains("tt_metal_home="),
        "{info}"
    );
    let before = tt_metal_sys::live_handles();
    {
        let d = Device::open(0).expect("the stand-in opens device 0");
        assert_eq!(tt_metal_sys::live_handles().0, before.0 + 1);
        assert!(!d.describe().unwrap().is_empty());

        // TT_FATAL raised inside Tensor::from_vector (host tensors are refused by the stand-in)
        let mut h = ptr::null_mut();
        let (v, dims) = ([1.0f32, 2.0], [1u32, 2]);
        // SAFETY: NULL device = host tensor; data/dims are live for the call; `h` is an out-pointer.
        let st = unsafe {
            ffi::ttm_tensor_from_f32(
                ptr::null_mut(),
                v.as_ptr(),
                2,
                dims.as_ptr(),
                2,
                ffi::TTM_BF16,
                ffi::TTM_TILE,
                ffi::TTM_BUF_DEFAULT,
                &mut h,
            )
        };
        assert_eq!(st, ffi::TTM_E_TT_FATAL);
        assert!(h.is_null());
        // SAFETY: the record is valid until the next ttm_* call on this thread; read at once.
        let (file, line, cond, msg, bt) = unsafe {
            let e = &*ffi::ttm_last_error();
            let s = |p| CStr::from_ptr(p).to_string_lossy().into_owned();
            (
                s(e.file),
                e.line,
                s(e.condition),
                s(e.message),
                s(e.backtrace),
            )
        };
        assert_eq!(
            (file.as_str(), line),
            ("ttnn/api/ttnn/tensor/tensor.cpp", 123)
        );
        assert_eq!(cond, "device != nullptr");
        assert_eq!(msg, "stand-in TT-NN makes device tensors only");
        assert_eq!(bt, " --- tt::tt_metal::Tensor::from_vector");

        // a device tensor handle whose every TT-NN call raises TT_THROW
        let t = d
            .from_f32(
                &[1.0, 2.0],
                &[1, 2],
                DType::Bf16,
                Layout::Tile,
                Buffer::Dram,
            )
            .unwrap();
        assert_eq!(tt_metal_sys::live_handles().1, before.1 + 1);
        let e = d.softmax(&t, -1, true, &OpOptions::default()).unwrap_err();
        assert_eq!((e.status, e.kind.as_str()), (Status::TtThrow, "TT_THROW"));
        assert_eq!(
            (e.function.as_str(), e.message.as_str()),
            ("ttm_softmax", "stand-in TT-NN has no softmax")
        );
        let e = t.info().unwrap_err();
        assert_eq!(e.message, "stand-in TT-NN has no Tensor::logical_shape");
        drop(t);
        assert_eq!(tt_metal_sys::live_handles().1, before.1);

        // an argument error caught by the shim before TT-NN
        let e = d
            .from_f32(&[1.0], &[1, 2], DType::F32, Layout::Tile, Buffer::Dram)
            .unwrap_err();
        assert_eq!((e.status, e.kind.as_str()), (Status::InvalidArg, "shim"));

        // fault injection goes through the same C++ catch path
        tt_metal_sys::inject_error(
            Some("ttm_tensor_from_u32"),
            "TT_THROW @ a.cpp:9: tt::exception\ninfo:\ninjected\n",
        )
        .unwrap();
        let e = d
            .from_u32(&[1], &[1], Layout::RowMajor, Buffer::Dram)
            .unwrap_err();
        assert_eq!(
            (e.status, e.kind.as_str(), e.line),
            (Status::TtThrow, "TT_THROW", 9)
        );
        assert_eq!(e.message, "injected");
    }
    assert_eq!(tt_metal_sys::live_handles(), before);

    // std::exception subclasses keep their demangled type; non-std exceptions are caught too.
    let rel = CString::new("relative/path").unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    let st = unsafe { ffi::ttm_set_runtime_root(rel.as_ptr()) };
    assert_eq!(st, ffi::TTM_E_CXX);
    // SAFETY: the record is valid until the next ttm_* call; read immediately.
    let kind = unsafe { CStr::from_ptr((*ffi::ttm_last_error()).kind) };
    assert_eq!(kind.to_str().unwrap(), "std::invalid_argument");
    let int = CString::new("throw-int").unwrap();
    // SAFETY: as above.
    assert_eq!(
        unsafe { ffi::ttm_set_runtime_root(int.as_ptr()) },
        ffi::TTM_E_UNKNOWN
    );
    // SAFETY: NULL path is refused by the shim itself.
    assert_eq!(
        unsafe { ffi::ttm_set_runtime_root(ptr::null()) },
        ffi::TTM_E_INVALID_ARG
    );
}
