//! Raw bindings to `include/ttm.h`, written by hand (no bindgen). Keep in sync with the header:
//! every type mirrors its C definition field by field, every "enum" is the fixed-width integer
//! the header uses, so no Rust enum can ever hold an out-of-range value coming from C.
//!
//! Ownership rules are the header's (see its top comment); [`crate::Device`] and
//! [`crate::Tensor`] encode them in types.

#![allow(non_camel_case_types)]

use std::os::raw::c_char;

pub const TTM_ABI_VERSION: u32 = 1;
pub const TTM_MAX_RANK: usize = 8;

/// Opaque device handle.
#[repr(C)]
pub struct ttm_device {
    _private: [u8; 0],
}

/// Opaque tensor handle.
#[repr(C)]
pub struct ttm_tensor {
    _private: [u8; 0],
}

pub type ttm_status = i32;
pub const TTM_OK: ttm_status = 0;
pub const TTM_E_UNAVAILABLE: ttm_status = 1;
pub const TTM_E_INVALID_ARG: ttm_status = 2;
pub const TTM_E_TT_FATAL: ttm_status = 3;
pub const TTM_E_TT_THROW: ttm_status = 4;
pub const TTM_E_CXX: ttm_status = 5;
pub const TTM_E_UNKNOWN: ttm_status = 6;
pub const TTM_E_BUSY: ttm_status = 7;
pub const TTM_E_BUFFER_TOO_SMALL: ttm_status = 8;

pub type ttm_dtype = u32;
pub const TTM_DTYPE_DEFAULT: ttm_dtype = 0;
pub const TTM_BF16: ttm_dtype = 1;
pub const TTM_BFP8_B: ttm_dtype = 2;
pub const TTM_BFP4_B: ttm_dtype = 3;
pub const TTM_F32: ttm_dtype = 4;
pub const TTM_U32: ttm_dtype = 5;
pub const TTM_I32: ttm_dtype = 6;
pub const TTM_U16: ttm_dtype = 7;
pub const TTM_U8: ttm_dtype = 8;

pub type ttm_layout = u32;
pub const TTM_LAYOUT_DEFAULT: ttm_layout = 0;
pub const TTM_ROW_MAJOR: ttm_layout = 1;
pub const TTM_TILE: ttm_layout = 2;

pub type ttm_buffer = u32;
pub const TTM_BUF_DEFAULT: ttm_buffer = 0;
pub const TTM_DRAM: ttm_buffer = 1;
pub const TTM_L1: ttm_buffer = 2;

pub type ttm_mem_layout = u32;
pub const TTM_INTERLEAVED: ttm_mem_layout = 1;
pub const TTM_HEIGHT_SHARDED: ttm_mem_layout = 2;
pub const TTM_WIDTH_SHARDED: ttm_mem_layout = 3;
pub const TTM_BLOCK_SHARDED: ttm_mem_layout = 4;
pub const TTM_ND_SHARDED: ttm_mem_layout = 5;

pub type ttm_fidelity = u32;
pub const TTM_FID_DEFAULT: ttm_fidelity = 0;
pub const TTM_LOFI: ttm_fidelity = 1;
pub const TTM_HIFI2: ttm_fidelity = 2;
pub const TTM_HIFI3: ttm_fidelity = 3;
pub const TTM_HIFI4: ttm_fidelity = 4;

pub type ttm_binary_op = u32;
pub const TTM_ADD: ttm_binary_op = 1;
pub const TTM_SUB: ttm_binary_op = 2;
pub const TTM_MUL: ttm_binary_op = 3;

pub type ttm_unary_op = u32;
pub const TTM_GELU: ttm_unary_op = 1;
pub const TTM_GELU_TANH: ttm_unary_op = 2;
pub const TTM_SILU: ttm_unary_op = 3;
pub const TTM_EXP: ttm_unary_op = 4;
pub const TTM_RSQRT: ttm_unary_op = 5;
pub const TTM_SQRT: ttm_unary_op = 6;
pub const TTM_TANH: ttm_unary_op = 7;
pub const TTM_SIGMOID: ttm_unary_op = 8;
pub const TTM_NEG: ttm_unary_op = 9;
pub const TTM_RECIP: ttm_unary_op = 10;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ttm_compute_config {
    pub struct_size: u32,
    pub math_fidelity: ttm_fidelity,
    pub math_approx_mode: i8,
    pub fp32_dest_acc_en: i8,
    pub packer_l1_acc: i8,
    pub dst_full_sync_en: i8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ttm_op_opts {
    pub struct_size: u32,
    pub out_dtype: ttm_dtype,
    pub out_buffer: ttm_buffer,
    pub compute: *const ttm_compute_config,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ttm_device_options {
    pub struct_size: u32,
    pub l1_small_size: u64,
    pub trace_region_size: u64,
    pub num_cqs: u32,
    pub program_cache: i8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ttm_tensor_info {
    pub struct_size: u32,
    pub rank: u32,
    pub logical: [u32; TTM_MAX_RANK],
    pub padded: [u32; TTM_MAX_RANK],
    pub dtype: ttm_dtype,
    pub layout: ttm_layout,
    pub on_device: i8,
    pub allocated: i8,
    pub sharded: i8,
    pub buffer: ttm_buffer,
    pub mem_layout: ttm_mem_layout,
    pub physical_volume: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ttm_error {
    pub status: ttm_status,
    pub function: *const c_char,
    pub kind: *const c_char,
    pub file: *const c_char,
    pub line: u32,
    pub condition: *const c_char,
    pub message: *const c_char,
    pub backtrace: *const c_char,
    pub raw: *const c_char,
}

extern "C" {
    // library
    pub fn ttm_abi_version() -> u32;
    pub fn ttm_available() -> i32;
    pub fn ttm_implementation() -> *const c_char;
    pub fn ttm_build_info() -> *const c_char;
    pub fn ttm_last_error() -> *const ttm_error;
    pub fn ttm_clear_error();
    pub fn ttm_set_runtime_root(path: *const c_char) -> ttm_status;
    pub fn ttm_live_handles(devices: *mut u64, tensors: *mut u64);
    pub fn ttm_debug_inject_error(function: *const c_char, what: *const c_char) -> ttm_status;

    // device
    pub fn ttm_device_count(out: *mut u32) -> ttm_status;
    pub fn ttm_device_open(
        device_id: i32,
        opts: *const ttm_device_options,
        out: *mut *mut ttm_device,
    ) -> ttm_status;
    pub fn ttm_device_close(dev: *mut ttm_device, force: i32) -> ttm_status;
    pub fn ttm_device_describe(
        dev: *const ttm_device,
        buf: *mut c_char,
        cap: usize,
        needed: *mut usize,
    ) -> ttm_status;

    // tensors
    pub fn ttm_tensor_from_f32(
        dev: *mut ttm_device,
        data: *const f32,
        count: usize,
        dims: *const u32,
        rank: usize,
        dtype: ttm_dtype,
        layout: ttm_layout,
        buffer: ttm_buffer,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_tensor_from_u32(
        dev: *mut ttm_device,
        data: *const u32,
        count: usize,
        dims: *const u32,
        rank: usize,
        layout: ttm_layout,
        buffer: ttm_buffer,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_tensor_read_f32(
        t: *const ttm_tensor,
        dst: *mut f32,
        capacity: usize,
        written: *mut usize,
    ) -> ttm_status;
    pub fn ttm_tensor_get_info(t: *const ttm_tensor, out: *mut ttm_tensor_info) -> ttm_status;
    pub fn ttm_tensor_describe(
        t: *const ttm_tensor,
        buf: *mut c_char,
        cap: usize,
        needed: *mut usize,
    ) -> ttm_status;
    pub fn ttm_tensor_deallocate(t: *mut ttm_tensor, force: i32) -> ttm_status;
    pub fn ttm_tensor_free(t: *mut ttm_tensor);

    // layout / placement
    pub fn ttm_to_layout(
        t: *const ttm_tensor,
        layout: ttm_layout,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_typecast(
        t: *const ttm_tensor,
        dtype: ttm_dtype,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_to_buffer(
        t: *const ttm_tensor,
        buffer: ttm_buffer,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;

    // ops
    pub fn ttm_linear(
        a: *const ttm_tensor,
        w: *const ttm_tensor,
        bias: *const ttm_tensor,
        transpose_a: i32,
        transpose_b: i32,
        activation: *const c_char,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_matmul(
        a: *const ttm_tensor,
        b: *const ttm_tensor,
        transpose_a: i32,
        transpose_b: i32,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_binary(
        op: ttm_binary_op,
        a: *const ttm_tensor,
        b: *const ttm_tensor,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_binary_scalar(
        op: ttm_binary_op,
        a: *const ttm_tensor,
        scalar: f32,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_unary(
        op: ttm_unary_op,
        a: *const ttm_tensor,
        fast_approx: i32,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_softmax(
        a: *const ttm_tensor,
        dim: i32,
        numeric_stable: i32,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_layer_norm(
        a: *const ttm_tensor,
        eps: f32,
        weight: *const ttm_tensor,
        bias: *const ttm_tensor,
        residual: *const ttm_tensor,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_rms_norm(
        a: *const ttm_tensor,
        eps: f32,
        weight: *const ttm_tensor,
        bias: *const ttm_tensor,
        residual: *const ttm_tensor,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_embedding(
        indices: *const ttm_tensor,
        weight: *const ttm_tensor,
        out_layout: ttm_layout,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_concat(
        inputs: *const *const ttm_tensor,
        n: usize,
        dim: i32,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_slice(
        a: *const ttm_tensor,
        begins: *const i32,
        ends: *const i32,
        steps: *const i32,
        rank: usize,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_reshape(
        a: *const ttm_tensor,
        dims: *const i32,
        rank: usize,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_permute(
        a: *const ttm_tensor,
        perm: *const i64,
        rank: usize,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_rotary_embedding(
        x: *const ttm_tensor,
        cos: *const ttm_tensor,
        sin: *const ttm_tensor,
        token_index: i64,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
    pub fn ttm_sdpa(
        q: *const ttm_tensor,
        k: *const ttm_tensor,
        v: *const ttm_tensor,
        mask: *const ttm_tensor,
        is_causal: i32,
        scale: f32,
        o: *const ttm_op_opts,
        out: *mut *mut ttm_tensor,
    ) -> ttm_status;
}
