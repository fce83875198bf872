/*
 * ttm.h — a small, versioned C ABI over TT-NN (tt-metal's C++ op library).
 *
 * This header includes no tt-metal header. Two implementations exist:
 *   shim/ttm.cpp  — the real one, C++20 against TT-NN (cargo feature `tt`);
 *   shim/host.c   — a CPU implementation of every entry point with TT-NN's shape, layout and
 *                   dtype rules (cargo feature `host-shim`), so the whole FFI path runs in CI.
 * Both share shim/common.c (error records, handle counters, fault injection).
 *
 * ---------------------------------------------------------------------------------------------
 * Conventions
 *   - Every fallible call returns a ttm_status and writes results through out-params. On
 *     failure every out-param handle is set to NULL and ttm_last_error() describes the failure.
 *   - "Enums" are fixed-width integers with the constants below; values never alias TT-NN's
 *     own enum values (the implementation maps them explicitly).
 *   - Option structs start with `struct_size` (set it to sizeof the struct). A NULL option
 *     pointer, a *_DEFAULT enum value, or -1 in an int8_t tri-state field means "TT-NN's
 *     default" (the C++ shim passes std::nullopt / leaves the struct default).
 *   - No C++ exception and no abort crosses this boundary: every TT_FATAL / TT_THROW /
 *     std::exception raised inside TT-NN becomes a status plus a thread-local error record.
 *
 * Ownership and lifetime rules
 *   1. Every handle written to an out-param is owned by the caller and must be released
 *      exactly once: tensors with ttm_tensor_free, devices with ttm_device_close. On failure
 *      out-params are NULL and nothing is owned.
 *   2. Input handles and arrays are borrowed for the duration of the call only. Host data is
 *      always copied; the caller may reuse or free its buffers as soon as the call returns.
 *   3. A tensor handle refers to its device. ttm_device_close fails with TTM_E_BUSY while
 *      tensors created on that device are alive, unless force != 0: then their device buffers
 *      are released first, those tensors report allocated = 0, reading them fails, and they
 *      must still be freed with ttm_tensor_free.
 *   4. Device memory is returned when the tensor handle is freed, or earlier by
 *      ttm_tensor_deallocate (the handle stays valid and must still be freed).
 *   5. All calls that touch one device (or tensors on it) must be serialised by the caller.
 *      Handles may move between threads. Error records and armed fault injections are per
 *      thread.
 *   6. Strings returned by the library (ttm_build_info, the fields of ttm_error) are owned by
 *      the library. ttm_build_info's string lives for the whole process; a ttm_error record is
 *      valid until the next ttm_* call on the same thread (every entry point clears it first).
 *   7. *_describe functions use the (buf, cap, needed) protocol: `needed` receives the length
 *      including the terminating NUL; if cap < needed the call returns
 *      TTM_E_BUFFER_TOO_SMALL and writes a truncated, NUL-terminated prefix when cap > 0.
 *   8. Well-behaved callers free every tensor and close every device before the process
 *      exits; the device must never be kept in a static that outlives main().
 * ---------------------------------------------------------------------------------------------
 */
#ifndef TTM_H
#define TTM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TTM_ABI_VERSION 1u
#define TTM_MAX_RANK 8u

typedef struct ttm_device ttm_device; /* opaque: one opened (1x1 mesh) device */
typedef struct ttm_tensor ttm_tensor; /* opaque: one ttnn::Tensor */

typedef int32_t ttm_status;
enum {
    TTM_OK = 0,
    TTM_E_UNAVAILABLE = 1,      /* no device, or the entry point is not available here */
    TTM_E_INVALID_ARG = 2,      /* caught by the shim before TT-NN (kind = "shim") */
    TTM_E_TT_FATAL = 3,         /* TT-NN raised TT_FATAL */
    TTM_E_TT_THROW = 4,         /* TT-NN raised TT_THROW */
    TTM_E_CXX = 5,              /* another std::exception */
    TTM_E_UNKNOWN = 6,          /* a non-std exception */
    TTM_E_BUSY = 7,             /* device close with live tensors */
    TTM_E_BUFFER_TOO_SMALL = 8
};

typedef uint32_t ttm_dtype;
enum {
    TTM_DTYPE_DEFAULT = 0,
    TTM_BF16 = 1,
    TTM_BFP8_B = 2,
    TTM_BFP4_B = 3,
    TTM_F32 = 4,
    TTM_U32 = 5,
    TTM_I32 = 6,
    TTM_U16 = 7,
    TTM_U8 = 8
};

typedef uint32_t ttm_layout;
enum { TTM_LAYOUT_DEFAULT = 0, TTM_ROW_MAJOR = 1, TTM_TILE = 2 };

/* v1 creates interleaved buffers only; sharded layouts can still be reported by ttm_tensor_info. */
typedef uint32_t ttm_buffer;
enum { TTM_BUF_DEFAULT = 0, TTM_DRAM = 1, TTM_L1 = 2 };

typedef uint32_t ttm_mem_layout;
enum {
    TTM_INTERLEAVED = 1,
    TTM_HEIGHT_SHARDED = 2,
    TTM_WIDTH_SHARDED = 3,
    TTM_BLOCK_SHARDED = 4,
    TTM_ND_SHARDED = 5
};

typedef uint32_t ttm_fidelity;
enum { TTM_FID_DEFAULT = 0, TTM_LOFI = 1, TTM_HIFI2 = 2, TTM_HIFI3 = 3, TTM_HIFI4 = 4 };

/* ttnn::ComputeKernelConfig. Tri-state fields: -1 = struct default, 0 = false, 1 = true. */
typedef struct ttm_compute_config {
    uint32_t struct_size;
    ttm_fidelity math_fidelity;
    int8_t math_approx_mode;
    int8_t fp32_dest_acc_en;
    int8_t packer_l1_acc;
    int8_t dst_full_sync_en;
} ttm_compute_config;

/* Options common to every op call. NULL = every TT-NN default. */
typedef struct ttm_op_opts {
    uint32_t struct_size;
    ttm_dtype out_dtype;               /* DEFAULT = the op's own choice */
    ttm_buffer out_buffer;             /* DEFAULT = the op's own choice */
    const ttm_compute_config* compute; /* NULL = the op's own defaults */
} ttm_op_opts;

typedef struct ttm_device_options {
    uint32_t struct_size;
    uint64_t l1_small_size;     /* 0 = TT-NN default */
    uint64_t trace_region_size; /* 0 = TT-NN default */
    uint32_t num_cqs;           /* 0 = 1 */
    int8_t program_cache;       /* -1 = default (on), 0 = off, 1 = on */
} ttm_device_options;

typedef struct ttm_tensor_info {
    uint32_t struct_size;
    uint32_t rank;
    uint32_t logical[TTM_MAX_RANK];
    uint32_t padded[TTM_MAX_RANK]; /* tile padding included (== logical for ROW_MAJOR) */
    ttm_dtype dtype;
    ttm_layout layout;
    int8_t on_device;
    int8_t allocated;
    int8_t sharded;
    ttm_buffer buffer;          /* DEFAULT for host tensors */
    ttm_mem_layout mem_layout;  /* 0 for host tensors */
    uint64_t physical_volume;   /* elements including padding */
} ttm_tensor_info;

/*
 * The parsed error of the last failing call on this thread. TT-NN's TT_FATAL / TT_THROW text
 * "<KIND> @ <file>:<line>: <condition>\ninfo:\n<message>\nbacktrace:\n..." is split into the
 * fields below; other exceptions keep their what() in `message` and `raw`.
 */
typedef struct ttm_error {
    ttm_status status;
    const char* function;  /* shim entry point, e.g. "ttm_linear" */
    const char* kind;      /* "TT_FATAL", "TT_THROW", "std::bad_alloc", "std::exception", "shim", ... */
    const char* file;      /* "" when unknown */
    uint32_t line;         /* 0 when unknown */
    const char* condition; /* "" when unknown; "tt::exception" for TT_THROW */
    const char* message;   /* the info: block, what a user reads */
    const char* backtrace; /* "" when absent */
    const char* raw;       /* the full text as raised (possibly truncated) */
} ttm_error;

/* ---- library --------------------------------------------------------------------------- */
uint32_t ttm_abi_version(void);
/* 1 when this build can open a device (real tt-metal or the host shim), 0 otherwise. */
int32_t ttm_available(void);
/* "tt-metal" for the real implementation, "host" for the host shim. */
const char* ttm_implementation(void);
/* Tree, commit, compiler and feature mapping the shim was built with (process lifetime). */
const char* ttm_build_info(void);
/* Never NULL; status == TTM_OK when the last call on this thread succeeded. */
const ttm_error* ttm_last_error(void);
void ttm_clear_error(void);
/* Sets tt-metal's runtime root (the directory holding tt_metal/); before the first open. */
ttm_status ttm_set_runtime_root(const char* path);
/* Live handles in the whole process (every created handle not yet freed/closed). */
void ttm_live_handles(uint64_t* devices, uint64_t* tensors);
/*
 * Test hook: arms a fault on this thread. The next call of `function` (an entry point name
 * such as "ttm_layer_norm"; NULL = the next fallible entry point) behaves exactly as if TT-NN
 * had thrown std::runtime_error(what): the same catch and parse path runs. `what` is copied.
 * Passing what == NULL disarms.
 */
ttm_status ttm_debug_inject_error(const char* function, const char* what);

/* ---- device ---------------------------------------------------------------------------- */
ttm_status ttm_device_count(uint32_t* out);
ttm_status ttm_device_open(int32_t device_id, const ttm_device_options* opts, ttm_device** out);
/* TTM_E_BUSY while tensors on the device are alive and force == 0 (rule 3). */
ttm_status ttm_device_close(ttm_device* dev, int32_t force);
/* Architecture, compute grid, live tensors (and free DRAM/L1 where the implementation knows). */
ttm_status ttm_device_describe(const ttm_device* dev, char* buf, size_t cap, size_t* needed);

/* ---- tensors ----------------------------------------------------------------------------- */
/*
 * A tensor from `count` row-major f32 values of shape dims[0..rank). dev == NULL makes a host
 * tensor. dtype: BF16, BFP8_B, BFP4_B or F32 (block floats need TILE). TILE pads the last two
 * dims to multiples of 32 with zeros; the logical shape stays `dims`.
 */
ttm_status ttm_tensor_from_f32(ttm_device* dev, const float* data, size_t count, const uint32_t* dims,
                               size_t rank, ttm_dtype dtype, ttm_layout layout, ttm_buffer buffer,
                               ttm_tensor** out);
/* A UINT32 tensor (embedding indices). */
ttm_status ttm_tensor_from_u32(ttm_device* dev, const uint32_t* data, size_t count, const uint32_t* dims,
                               size_t rank, ttm_layout layout, ttm_buffer buffer, ttm_tensor** out);
/* Logical values, row-major, widened to f32 (padding dropped). `written` = logical volume. */
ttm_status ttm_tensor_read_f32(const ttm_tensor* t, float* dst, size_t capacity, size_t* written);
ttm_status ttm_tensor_get_info(const ttm_tensor* t, ttm_tensor_info* out);
/* TT-NN's own text for the tensor's spec, memory config included. */
ttm_status ttm_tensor_describe(const ttm_tensor* t, char* buf, size_t cap, size_t* needed);
ttm_status ttm_tensor_deallocate(ttm_tensor* t, int32_t force);
void ttm_tensor_free(ttm_tensor* t); /* NULL allowed */

/* ---- layout / placement -------------------------------------------------------------------- */
ttm_status ttm_to_layout(const ttm_tensor* t, ttm_layout layout, const ttm_op_opts* o, ttm_tensor** out);
ttm_status ttm_typecast(const ttm_tensor* t, ttm_dtype dtype, const ttm_op_opts* o, ttm_tensor** out);
ttm_status ttm_to_buffer(const ttm_tensor* t, ttm_buffer buffer, ttm_tensor** out);

/* ---- ops ----------------------------------------------------------------------------------- */
/* a·w (+ bias); PyTorch Linear weights [N, K] need transpose_b = 1. activation: NULL,
 * "relu", "gelu" or "silu" (fused after the bias). */
ttm_status ttm_linear(const ttm_tensor* a, const ttm_tensor* w, const ttm_tensor* bias, int32_t transpose_a,
                      int32_t transpose_b, const char* activation, const ttm_op_opts* o, ttm_tensor** out);
ttm_status ttm_matmul(const ttm_tensor* a, const ttm_tensor* b, int32_t transpose_a, int32_t transpose_b,
                      const ttm_op_opts* o, ttm_tensor** out);

typedef uint32_t ttm_binary_op;
enum { TTM_ADD = 1, TTM_SUB = 2, TTM_MUL = 3 };
/* Broadcasting as ttnn::add/multiply (binary_ng): see the rules in TTNN_CPP_API.md §1.7. */
ttm_status ttm_binary(ttm_binary_op op, const ttm_tensor* a, const ttm_tensor* b, const ttm_op_opts* o,
                      ttm_tensor** out);
ttm_status ttm_binary_scalar(ttm_binary_op op, const ttm_tensor* a, float scalar, const ttm_op_opts* o,
                             ttm_tensor** out);

typedef uint32_t ttm_unary_op;
enum {
    TTM_GELU = 1,      /* erf GELU */
    TTM_GELU_TANH = 2, /* tanh-approximate GELU (see ttm_build_info for the mapping used) */
    TTM_SILU = 3,
    TTM_EXP = 4,
    TTM_RSQRT = 5,
    TTM_SQRT = 6,
    TTM_TANH = 7,
    TTM_SIGMOID = 8,
    TTM_NEG = 9,
    TTM_RECIP = 10
};
ttm_status ttm_unary(ttm_unary_op op, const ttm_tensor* a, int32_t fast_approx, const ttm_op_opts* o,
                     ttm_tensor** out);
ttm_status ttm_softmax(const ttm_tensor* a, int32_t dim, int32_t numeric_stable, const ttm_op_opts* o,
                       ttm_tensor** out);
/* weight / bias / residual may be NULL. */
ttm_status ttm_layer_norm(const ttm_tensor* a, float eps, const ttm_tensor* weight, const ttm_tensor* bias,
                          const ttm_tensor* residual, const ttm_op_opts* o, ttm_tensor** out);
ttm_status ttm_rms_norm(const ttm_tensor* a, float eps, const ttm_tensor* weight, const ttm_tensor* bias,
                        const ttm_tensor* residual, const ttm_op_opts* o, ttm_tensor** out);
/* indices [B, S] UINT32 (or BF16) → [B, S, D] rows of weight [V, D] (ROW_MAJOR BF16). */
ttm_status ttm_embedding(const ttm_tensor* indices, const ttm_tensor* weight, ttm_layout out_layout,
                         const ttm_op_opts* o, ttm_tensor** out);
ttm_status ttm_concat(const ttm_tensor* const* inputs, size_t n, int32_t dim, const ttm_op_opts* o,
                      ttm_tensor** out);
/* steps == NULL means all 1. */
ttm_status ttm_slice(const ttm_tensor* a, const int32_t* begins, const int32_t* ends, const int32_t* steps,
                     size_t rank, const ttm_op_opts* o, ttm_tensor** out);
ttm_status ttm_reshape(const ttm_tensor* a, const int32_t* dims, size_t rank, const ttm_op_opts* o,
                       ttm_tensor** out);
ttm_status ttm_permute(const ttm_tensor* a, const int64_t* perm, size_t rank, const ttm_op_opts* o,
                       ttm_tensor** out);
/* ttnn::experimental::rotary_embedding: x [B, H, S, D] TILE, cos/sin [1, 1, >=S, D];
 * token_index < 0 = none (then the output's sequence dim is rounded up to 32, as TT-NN does). */
ttm_status ttm_rotary_embedding(const ttm_tensor* x, const ttm_tensor* cos, const ttm_tensor* sin,
                                int64_t token_index, const ttm_op_opts* o, ttm_tensor** out);
/* q [B, Hq, Sq, D], k/v [B, Hkv, Sk, D]; mask NULL or additive [B|1, Hq|1, Sq, Sk];
 * scale NaN = TT-NN default (1/sqrt(D)). */
ttm_status ttm_sdpa(const ttm_tensor* q, const ttm_tensor* k, const ttm_tensor* v, const ttm_tensor* mask,
                    int32_t is_causal, float scale, const ttm_op_opts* o, ttm_tensor** out);

#ifdef __cplusplus
}
#endif

#endif /* TTM_H */
