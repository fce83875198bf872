/*
 * The host implementation of ttm.h: every entry point runs on the CPU, with the shape, layout
 * and dtype rules TT-NN enforces (tile padding, block floats only in TILE, binary_ng's
 * broadcast rules, the matmul / norm / embedding / rotary / SDPA validation rules listed in
 * TTNN_CPP_API.md §1.7), so the whole FFI path — handles, ownership, error records, layouts —
 * runs without a Tenstorrent card.
 *
 * Numerics: op math is f32 with f64 accumulation in dot products and reductions, in the same
 * order as pccscope's cpu reference. Storage rounding follows TT_NUMERICS §1: host uploads
 * round f32 → bf16 to nearest-even and pack bfp8/bfp4 with one shared exponent per 16-element
 * face row (round-to-nearest-even, saturating); op outputs round bf16 ties-away-from-zero and
 * bfp4 by truncating the bfp8 value, as the packer does. Math fidelity, approximation mode and
 * fp32 dest accumulation are validated, not emulated.
 *
 * Storage: values (already rounded to the storage dtype) in padded row-major order; TILE
 * tensors are padded with zeros to 32×32 tiles on their last two dims.
 *
 * Error texts of modelled TT-NN rules are formatted as tt_stl's TT_FATAL / TT_THROW with this
 * file's own __FILE__:__LINE__ (the rule is modelled here, not raised by TT-NN).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ttm_internal.h"

#define TILE 32u
#define DEV_MAGIC 0x54544456u /* "TTDV" */
#define TEN_MAGIC 0x54545453u /* "TTTS" */
#define HOST_DEVICES 1
#define PI_D 3.14159265358979323846

struct ttm_tensor;

struct ttm_device {
    uint32_t magic;
    int32_t id;
    uint64_t live;
    struct ttm_tensor* head; /* tensors on this device (for forced close) */
};

struct ttm_tensor {
    uint32_t magic;
    struct ttm_device* dev; /* NULL = host tensor */
    struct ttm_tensor* prev;
    struct ttm_tensor* next;
    uint32_t rank;
    uint32_t logical[TTM_MAX_RANK];
    uint32_t padded[TTM_MAX_RANK];
    ttm_dtype dtype;
    ttm_layout layout;
    ttm_buffer buffer;
    int allocated;
    size_t stored; /* product(padded) */
    float* f;      /* float dtypes */
    uint32_t* u;   /* U32 */
};

static int g_open[HOST_DEVICES];
static char g_root[1024];

/* ---- small helpers ----------------------------------------------------------------------- */

#define FATAL(cond_text, ...) ttm__fail_tt("TT_FATAL", __FILE__, __LINE__, cond_text, __VA_ARGS__)
#define THROW(...) ttm__fail_tt("TT_THROW", __FILE__, __LINE__, "tt::exception", __VA_ARGS__)
#define BAD(...) ttm__fail_shim(TTM_E_INVALID_ARG, __VA_ARGS__)
#define TRY(expr)                      \
    do {                               \
        ttm_status st_ = (expr);       \
        if (st_ != TTM_OK) return st_; \
    } while (0)

#define ENTER(name)                                                          \
    ttm__begin(name);                                                        \
    do {                                                                     \
        const char* inj_ = ttm__take_injection(name);                        \
        if (inj_) return ttm__fail_what(inj_, "std::runtime_error", TTM_E_CXX); \
    } while (0)

static const char* dtype_name(ttm_dtype d) {
    switch (d) {
        case TTM_BF16: return "DataType::BFLOAT16";
        case TTM_BFP8_B: return "DataType::BFLOAT8_B";
        case TTM_BFP4_B: return "DataType::BFLOAT4_B";
        case TTM_F32: return "DataType::FLOAT32";
        case TTM_U32: return "DataType::UINT32";
        case TTM_I32: return "DataType::INT32";
        case TTM_U16: return "DataType::UINT16";
        case TTM_U8: return "DataType::UINT8";
        default: return "DataType::INVALID";
    }
}

static const char* layout_name(ttm_layout l) { return l == TTM_TILE ? "Layout::TILE" : "Layout::ROW_MAJOR"; }

static int is_float(ttm_dtype d) { return d == TTM_BF16 || d == TTM_BFP8_B || d == TTM_BFP4_B || d == TTM_F32; }
static int is_block(ttm_dtype d) { return d == TTM_BFP8_B || d == TTM_BFP4_B; }

static uint32_t round_up(uint32_t v, uint32_t m) { return (v + m - 1) / m * m; }

static size_t volume(const uint32_t* dims, uint32_t rank) {
    size_t v = 1;
    for (uint32_t i = 0; i < rank; i++) v *= dims[i];
    return v;
}

static void shape_str(char* buf, size_t cap, const uint32_t* dims, uint32_t rank) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < rank && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %u" : "%u", dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static uint32_t fbits(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}
static float bitsf(uint32_t b) {
    float x;
    memcpy(&x, &b, 4);
    return x;
}

/* ---- storage rounding (TT_NUMERICS §1.3–1.4) --------------------------------------------- */

typedef enum { ROUND_HOST = 0, ROUND_DEVICE = 1 } rounding;

static float bf16_rne(float x) {
    uint32_t b = fbits(x);
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu)) return bitsf(0x7FC00000u);
    b += 0x7FFFu + ((b >> 16) & 1u);
    return bitsf(b & 0xFFFF0000u);
}

static float bf16_away(float x) {
    uint32_t b = fbits(x);
    if ((b & 0x7F800000u) == 0x7F800000u) return (b & 0x007FFFFFu) ? bitsf(0x7FC00000u) : x;
    b += 0x8000u;
    return bitsf(b & 0xFFFF0000u);
}

/*
 * One group of 16 values sharing an exponent. w = magnitude bits (7 for bfp8, 3 for bfp4).
 * Host: max raw exponent, align by logical right shift, round to nearest-even, saturate, zero
 * and denormal inputs → 0. Device: each value first rounded to bf16 (ties away), mantissas
 * rounded ties-away to the bfp8 grid; bfp4 then truncates the low 4 magnitude bits.
 */
static void block_quantize(float* v, size_t n, ttm_dtype dtype, rounding mode) {
    int w = mode == ROUND_DEVICE ? 7 : (dtype == TTM_BFP8_B ? 7 : 3);
    if (mode == ROUND_DEVICE)
        for (size_t i = 0; i < n; i++) v[i] = bf16_away(v[i]);
    uint32_t emax = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t e = (fbits(v[i]) >> 23) & 0xFFu;
        if (e > emax) emax = e;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t b = fbits(v[i]);
        uint32_t e = (b >> 23) & 0xFFu;
        uint32_t sign = b >> 31;
        if (emax == 255u) {
            if (e != 255u) v[i] = 0.0f;
            continue;
        }
        if (e == 0) {
            v[i] = 0.0f;
            continue;
        }
        uint32_t shift = emax - e;
        uint32_t m = shift >= 32 ? 0 : ((1u << 23) | (b & 0x007FFFFFu)) >> shift;
        uint32_t drop = 24u - (uint32_t)w;
        uint32_t keep = m >> drop;
        uint32_t rem = m & ((1u << drop) - 1u);
        uint32_t half = 1u << (drop - 1u);
        int up = mode == ROUND_DEVICE ? rem >= half : (rem > half || (rem == half && (keep & 1u)));
        if (up) keep++;
        if (keep >= (1u << w)) keep = (1u << w) - 1u;
        int bits_w = w;
        if (mode == ROUND_DEVICE && dtype == TTM_BFP4_B) {
            keep >>= 4;
            bits_w = 3;
        }
        if (keep == 0) {
            v[i] = 0.0f;
            continue;
        }
        float mag = ldexpf((float)keep, (int)emax - 127 - (bits_w - 1));
        v[i] = sign ? -mag : mag;
    }
}

/* Rounds padded row-major storage to `dtype`. Block groups are aligned 16-element runs of the
 * padded last dim (one row of a 16×16 face). */
static void quantize(float* f, size_t stored, uint32_t width, ttm_dtype dtype, rounding mode) {
    if (dtype == TTM_BF16) {
        for (size_t i = 0; i < stored; i++) f[i] = mode == ROUND_HOST ? bf16_rne(f[i]) : bf16_away(f[i]);
    } else if (is_block(dtype)) {
        for (size_t row = 0; row * width < stored; row++)
            for (uint32_t c = 0; c < width; c += 16) {
                uint32_t n = width - c < 16 ? width - c : 16;
                block_quantize(f + row * width + c, n, dtype, mode);
            }
    }
}

/* ---- tensors ----------------------------------------------------------------------------- */

static void compute_padded(uint32_t rank, const uint32_t* logical, ttm_layout layout, uint32_t* padded) {
    for (uint32_t i = 0; i < rank; i++) padded[i] = logical[i];
    if (layout == TTM_TILE && rank >= 1) {
        padded[rank - 1] = round_up(logical[rank - 1], TILE);
        if (rank >= 2) padded[rank - 2] = round_up(logical[rank - 2], TILE);
    }
}

static size_t physical_volume(const struct ttm_tensor* t) {
    size_t v = t->stored;
    if (t->layout == TTM_TILE && t->rank == 1) v *= TILE; /* a row vector occupies a tile row band */
    return v;
}

static void link_tensor(struct ttm_tensor* t) {
    if (!t->dev) return;
    t->next = t->dev->head;
    if (t->dev->head) t->dev->head->prev = t;
    t->dev->head = t;
    t->dev->live++;
}

static void unlink_tensor(struct ttm_tensor* t) {
    if (!t->dev) return;
    if (t->prev) t->prev->next = t->next;
    else t->dev->head = t->next;
    if (t->next) t->next->prev = t->prev;
    t->dev->live--;
}

/* A new tensor with zeroed storage. */
static ttm_status new_tensor(struct ttm_device* dev, uint32_t rank, const uint32_t* dims, ttm_dtype dtype,
                             ttm_layout layout, ttm_buffer buffer, struct ttm_tensor** out) {
    *out = NULL;
    struct ttm_tensor* t = calloc(1, sizeof *t);
    if (!t) return ttm__fail_what("std::bad_alloc", "std::bad_alloc", TTM_E_CXX);
    t->magic = TEN_MAGIC;
    t->dev = dev;
    t->rank = rank;
    memcpy(t->logical, dims, rank * sizeof(uint32_t));
    compute_padded(rank, dims, layout, t->padded);
    t->dtype = dtype;
    t->layout = layout;
    t->buffer = dev ? (buffer == TTM_BUF_DEFAULT ? TTM_DRAM : buffer) : TTM_BUF_DEFAULT;
    t->allocated = 1;
    t->stored = volume(t->padded, rank);
    size_t bytes = (t->stored ? t->stored : 1) * 4;
    if (dtype == TTM_U32) t->u = calloc(1, bytes);
    else t->f = calloc(1, bytes);
    if (!t->u && !t->f) {
        free(t);
        return ttm__fail_what("std::bad_alloc", "std::bad_alloc", TTM_E_CXX);
    }
    link_tensor(t);
    ttm__count(1, +1);
    *out = t;
    return TTM_OK;
}

static void destroy_tensor(struct ttm_tensor* t) {
    unlink_tensor(t);
    free(t->f);
    free(t->u);
    t->magic = 0;
    free(t);
    ttm__count(1, -1);
}

/* Offset in padded storage of the logical row-major element `i`. */
static size_t padded_offset(const struct ttm_tensor* t, size_t i) {
    size_t off = 0, stride = 1;
    for (uint32_t d = t->rank; d-- > 0;) {
        size_t idx = i % t->logical[d];
        i /= t->logical[d];
        off += idx * stride;
        stride *= t->padded[d];
    }
    return off;
}

/* Logical values widened to f32 (malloc'd; NULL on allocation failure). */
static float* load(const struct ttm_tensor* t) {
    size_t n = volume(t->logical, t->rank);
    float* v = malloc((n ? n : 1) * sizeof(float));
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t o = padded_offset(t, i);
        v[i] = t->u ? (float)t->u[o] : t->f[o];
    }
    return v;
}

/* Writes logical values and rounds them to the storage dtype. */
static void store(struct ttm_tensor* t, const float* v, rounding mode) {
    size_t n = volume(t->logical, t->rank);
    if (t->u) {
        for (size_t i = 0; i < n; i++) t->u[padded_offset(t, i)] = (uint32_t)v[i];
        return;
    }
    memset(t->f, 0, t->stored * sizeof(float));
    for (size_t i = 0; i < n; i++) t->f[padded_offset(t, i)] = v[i];
    quantize(t->f, t->stored, t->rank ? t->padded[t->rank - 1] : 1, t->dtype, mode);
}

static ttm_status check_tensor(const struct ttm_tensor* t, const char* what) {
    if (t == NULL) return BAD("%s is NULL", what);
    if (t->magic != TEN_MAGIC) return BAD("%s is not a live tensor handle", what);
    return TTM_OK;
}

/* A device-resident, allocated input. */
static ttm_status check_input(const struct ttm_tensor* t, const char* what, const char* op) {
    TRY(check_tensor(t, what));
    if (t->dev == NULL)
        return FATAL("input_tensor.storage_type() == StorageType::DEVICE", "Operands to %s need to be on device!", op);
    if (!t->allocated)
        return FATAL("input_tensor.buffer() != nullptr", "Operands to %s need to be allocated in buffers on device!", op);
    return TTM_OK;
}

static ttm_status same_device(const struct ttm_tensor* a, const struct ttm_tensor* b, const char* op) {
    if (a->dev != b->dev) return FATAL("a.device() == b.device()", "Operands to %s need to be on the same device!", op);
    return TTM_OK;
}

static ttm_status require_tile(const struct ttm_tensor* t, const char* text) {
    if (t->layout != TTM_TILE) return FATAL("input_tensor.layout() == Layout::TILE", "%s", text);
    return TTM_OK;
}

static ttm_status check_opts(const ttm_op_opts* o) {
    if (o == NULL) return TTM_OK;
    if (o->struct_size < sizeof(ttm_op_opts)) return BAD("ttm_op_opts.struct_size %u is too small", o->struct_size);
    if (o->out_dtype > TTM_U8) return BAD("ttm_op_opts.out_dtype %u is not a ttm_dtype", o->out_dtype);
    if (o->out_buffer > TTM_L1) return BAD("ttm_op_opts.out_buffer %u is not a ttm_buffer", o->out_buffer);
    const ttm_compute_config* c = o->compute;
    if (c) {
        if (c->struct_size < sizeof(ttm_compute_config))
            return BAD("ttm_compute_config.struct_size %u is too small", c->struct_size);
        if (c->math_fidelity > TTM_HIFI4) return BAD("math_fidelity %u is not a ttm_fidelity", c->math_fidelity);
        const int8_t tri[] = {c->math_approx_mode, c->fp32_dest_acc_en, c->packer_l1_acc, c->dst_full_sync_en};
        for (size_t i = 0; i < 4; i++)
            if (tri[i] < -1 || tri[i] > 1) return BAD("compute config flag %d must be -1, 0 or 1", tri[i]);
    }
    return TTM_OK;
}

static ttm_dtype out_dtype(const ttm_op_opts* o, ttm_dtype dflt) {
    return o && o->out_dtype != TTM_DTYPE_DEFAULT ? o->out_dtype : dflt;
}
static ttm_buffer out_buffer(const ttm_op_opts* o, ttm_buffer dflt) {
    return o && o->out_buffer != TTM_BUF_DEFAULT ? o->out_buffer : dflt;
}

/* The output of a compute op: TILE, float dtype. */
static ttm_status new_output(const struct ttm_tensor* like, uint32_t rank, const uint32_t* dims,
                             const ttm_op_opts* o, ttm_dtype dflt, struct ttm_tensor** out) {
    ttm_dtype d = out_dtype(o, dflt);
    if (!is_float(d)) return FATAL("is_floating_point(output_dtype)", "Output dtype %s is not supported by this op", dtype_name(d));
    return new_tensor(like->dev, rank, dims, d, TTM_TILE, out_buffer(o, like->buffer), out);
}

/* Finishes an op: stores values with device rounding and frees them. */
static ttm_status finish(struct ttm_tensor* out, float* vals, ttm_tensor** dst) {
    store(out, vals, ROUND_DEVICE);
    free(vals);
    *dst = out;
    return TTM_OK;
}

#define OOM() ttm__fail_what("std::bad_alloc", "std::bad_alloc", TTM_E_CXX)

/* ---- library ------------------------------------------------------------------------------ */

uint32_t ttm_abi_version(void) { return TTM_ABI_VERSION; }
int32_t ttm_available(void) { return 1; }
const char* ttm_implementation(void) { return "host"; }

const char* ttm_build_info(void) {
    return "implementation=host; abi=1; compiler=" __VERSION__
           "; numerics=f32 math with f64 accumulation (pccscope cpu order), storage rounding per dtype "
           "(bf16 RNE on upload, ties-away on op outputs; bfp8/bfp4 one exponent per 16-element face row); "
           "math fidelity / approx mode / fp32 dest acc / packer L1 acc validated, not emulated; "
           "gelu_tanh=tanh formula";
}

ttm_status ttm_set_runtime_root(const char* path) {
    ENTER("ttm_set_runtime_root");
    if (path == NULL) return BAD("path is NULL");
    snprintf(g_root, sizeof g_root, "%s", path);
    return TTM_OK;
}

/* ---- device ------------------------------------------------------------------------------- */

ttm_status ttm_device_count(uint32_t* out) {
    ENTER("ttm_device_count");
    if (out == NULL) return BAD("out is NULL");
    *out = HOST_DEVICES;
    return TTM_OK;
}

ttm_status ttm_device_open(int32_t device_id, const ttm_device_options* opts, ttm_device** out) {
    if (out) *out = NULL;
    ENTER("ttm_device_open");
    if (out == NULL) return BAD("out is NULL");
    if (opts && opts->struct_size < sizeof(ttm_device_options))
        return BAD("ttm_device_options.struct_size %u is too small", opts->struct_size);
    if (device_id < 0 || device_id >= HOST_DEVICES)
        return FATAL("device_id < num_devices", "Device id %d is out of range: %d device(s) available", device_id,
                     HOST_DEVICES);
    if (g_open[device_id]) return THROW("Device %d is already open in this process", device_id);
    struct ttm_device* d = calloc(1, sizeof *d);
    if (!d) return OOM();
    d->magic = DEV_MAGIC;
    d->id = device_id;
    g_open[device_id] = 1;
    ttm__count(0, +1);
    *out = d;
    return TTM_OK;
}

static ttm_status check_device(const struct ttm_device* d) {
    if (d == NULL) return BAD("device is NULL");
    if (d->magic != DEV_MAGIC) return BAD("device is not a live device handle");
    return TTM_OK;
}

ttm_status ttm_device_close(ttm_device* dev, int32_t force) {
    ENTER("ttm_device_close");
    TRY(check_device(dev));
    if (dev->live > 0 && !force)
        return ttm__fail_shim(TTM_E_BUSY, "device %d still has %llu live tensor(s); free them or close with force",
                              dev->id, (unsigned long long)dev->live);
    for (struct ttm_tensor* t = dev->head; t; t = t->next) {
        t->allocated = 0;
        free(t->f);
        free(t->u);
        t->f = NULL;
        t->u = NULL;
    }
    /* Forced close orphans live tensors: they stay valid handles (host-side) until freed. */
    for (struct ttm_tensor* t = dev->head; t;) {
        struct ttm_tensor* n = t->next;
        t->dev = NULL;
        t->prev = t->next = NULL;
        t = n;
    }
    g_open[dev->id] = 0;
    dev->magic = 0;
    free(dev);
    ttm__count(0, -1);
    return TTM_OK;
}

ttm_status ttm_device_describe(const ttm_device* dev, char* buf, size_t cap, size_t* needed) {
    ENTER("ttm_device_describe");
    TRY(check_device(dev));
    char text[1400];
    snprintf(text, sizeof text, "host shim device %d: arch=host, compute grid 1x1, %llu live tensor(s)%s%s", dev->id,
             (unsigned long long)dev->live, g_root[0] ? ", runtime root " : "", g_root);
    return ttm__copy_out(text, buf, cap, needed);
}

/* ---- tensor creation, reading, info ------------------------------------------------------ */

static ttm_status check_dims(const uint32_t* dims, size_t rank, size_t count) {
    if (rank > TTM_MAX_RANK) return BAD("rank %zu exceeds %u", rank, TTM_MAX_RANK);
    if (rank > 0 && dims == NULL) return BAD("dims is NULL");
    size_t v = volume(dims, (uint32_t)rank);
    if (v != count) return BAD("count %zu does not equal the product of dims (%zu)", count, v);
    return TTM_OK;
}

static ttm_status check_placement(ttm_device* dev, ttm_layout layout, ttm_buffer buffer) {
    if (dev) TRY(check_device(dev));
    if (layout != TTM_ROW_MAJOR && layout != TTM_TILE && layout != TTM_LAYOUT_DEFAULT)
        return BAD("layout %u is not a ttm_layout", layout);
    if (buffer > TTM_L1) return BAD("buffer %u is not a ttm_buffer", buffer);
    return TTM_OK;
}

ttm_status ttm_tensor_from_f32(ttm_device* dev, const float* data, size_t count, const uint32_t* dims, size_t rank,
                               ttm_dtype dtype, ttm_layout layout, ttm_buffer buffer, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_tensor_from_f32");
    if (out == NULL) return BAD("out is NULL");
    if (count > 0 && data == NULL) return BAD("data is NULL");
    TRY(check_dims(dims, rank, count));
    TRY(check_placement(dev, layout, buffer));
    if (layout == TTM_LAYOUT_DEFAULT) layout = TTM_ROW_MAJOR;
    if (dtype == TTM_DTYPE_DEFAULT) dtype = TTM_F32;
    if (!is_float(dtype))
        return FATAL("dtype == spec.data_type()", "Unsupported data type: got %s, expected a float dtype for float data",
                     dtype_name(dtype));
    if (is_block(dtype) && layout != TTM_TILE)
        return FATAL("layout == Layout::TILE", "Block float types are only supported in TILE layout");
    struct ttm_tensor* t;
    TRY(new_tensor(dev, (uint32_t)rank, dims, dtype, layout, buffer, &t));
    store(t, data, ROUND_HOST);
    *out = t;
    return TTM_OK;
}

ttm_status ttm_tensor_from_u32(ttm_device* dev, const uint32_t* data, size_t count, const uint32_t* dims, size_t rank,
                               ttm_layout layout, ttm_buffer buffer, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_tensor_from_u32");
    if (out == NULL) return BAD("out is NULL");
    if (count > 0 && data == NULL) return BAD("data is NULL");
    TRY(check_dims(dims, rank, count));
    TRY(check_placement(dev, layout, buffer));
    if (layout == TTM_LAYOUT_DEFAULT) layout = TTM_ROW_MAJOR;
    struct ttm_tensor* t;
    TRY(new_tensor(dev, (uint32_t)rank, dims, TTM_U32, layout, buffer, &t));
    for (size_t i = 0; i < count; i++) t->u[padded_offset(t, i)] = data[i];
    *out = t;
    return TTM_OK;
}

ttm_status ttm_tensor_read_f32(const ttm_tensor* t, float* dst, size_t capacity, size_t* written) {
    if (written) *written = 0;
    ENTER("ttm_tensor_read_f32");
    TRY(check_tensor(t, "tensor"));
    if (!t->allocated)
        return FATAL("is_allocated()", "Cannot read a tensor whose device buffer has been deallocated");
    size_t n = volume(t->logical, t->rank);
    if (capacity < n) return ttm__fail_shim(TTM_E_BUFFER_TOO_SMALL, "capacity %zu < %zu elements", capacity, n);
    if (n > 0 && dst == NULL) return BAD("dst is NULL");
    for (size_t i = 0; i < n; i++) {
        size_t o = padded_offset(t, i);
        dst[i] = t->u ? (float)t->u[o] : t->f[o];
    }
    if (written) *written = n;
    return TTM_OK;
}

ttm_status ttm_tensor_get_info(const ttm_tensor* t, ttm_tensor_info* out) {
    ENTER("ttm_tensor_get_info");
    TRY(check_tensor(t, "tensor"));
    if (out == NULL) return BAD("out is NULL");
    if (out->struct_size < sizeof(ttm_tensor_info)) return BAD("ttm_tensor_info.struct_size %u is too small", out->struct_size);
    uint32_t size = out->struct_size;
    memset(out, 0, sizeof *out);
    out->struct_size = size;
    out->rank = t->rank;
    memcpy(out->logical, t->logical, sizeof t->logical);
    memcpy(out->padded, t->padded, sizeof t->padded);
    out->dtype = t->dtype;
    out->layout = t->layout;
    out->on_device = t->dev != NULL;
    out->allocated = (int8_t)t->allocated;
    out->sharded = 0;
    out->buffer = t->dev ? t->buffer : TTM_BUF_DEFAULT;
    out->mem_layout = t->dev ? TTM_INTERLEAVED : 0;
    out->physical_volume = physical_volume(t);
    return TTM_OK;
}

ttm_status ttm_tensor_describe(const ttm_tensor* t, char* buf, size_t cap, size_t* needed) {
    ENTER("ttm_tensor_describe");
    TRY(check_tensor(t, "tensor"));
    char l[160], p[160], text[768];
    shape_str(l, sizeof l, t->logical, t->rank);
    shape_str(p, sizeof p, t->padded, t->rank);
    const char* mem = !t->dev ? "std::nullopt"
                      : t->buffer == TTM_L1
                          ? "MemoryConfig(memory_layout=TensorMemoryLayout::INTERLEAVED,buffer_type=BufferType::L1,shard_spec=std::nullopt)"
                          : "MemoryConfig(memory_layout=TensorMemoryLayout::INTERLEAVED,buffer_type=BufferType::DRAM,shard_spec=std::nullopt)";
    snprintf(text, sizeof text,
             "Tensor(logical_shape=Shape(%s), padded_shape=Shape(%s), dtype=%s, layout=%s, memory_config=%s, "
             "storage=%s)",
             l, p, dtype_name(t->dtype), layout_name(t->layout), mem,
             !t->dev ? "HostStorage" : t->allocated ? "DeviceStorage (host shim)" : "DeviceStorage (deallocated)");
    return ttm__copy_out(text, buf, cap, needed);
}

ttm_status ttm_tensor_deallocate(ttm_tensor* t, int32_t force) {
    (void)force;
    ENTER("ttm_tensor_deallocate");
    TRY(check_tensor(t, "tensor"));
    if (t->dev) {
        t->allocated = 0;
        free(t->f);
        free(t->u);
        t->f = NULL;
        t->u = NULL;
    }
    return TTM_OK;
}

void ttm_tensor_free(ttm_tensor* t) {
    if (t == NULL || t->magic != TEN_MAGIC) return;
    destroy_tensor(t);
}

/* ---- layout / placement ---------------------------------------------------------------------- */

static ttm_status copy_as(const struct ttm_tensor* t, ttm_dtype dtype, ttm_layout layout, ttm_buffer buffer,
                          ttm_tensor** out) {
    float* v = load(t);
    if (!v) return OOM();
    struct ttm_tensor* o;
    ttm_status st = new_tensor(t->dev, t->rank, t->logical, dtype, layout, buffer, &o);
    if (st != TTM_OK) {
        free(v);
        return st;
    }
    if (o->u) {
        store(o, v, ROUND_DEVICE);
        free(v);
        *out = o;
        return TTM_OK;
    }
    return finish(o, v, out);
}

ttm_status ttm_to_layout(const ttm_tensor* t, ttm_layout layout, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_to_layout");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(t, "tensor", "to_layout"));
    TRY(check_opts(o));
    if (layout != TTM_ROW_MAJOR && layout != TTM_TILE) return BAD("layout %u is not ROW_MAJOR or TILE", layout);
    ttm_dtype d = out_dtype(o, t->dtype);
    if (is_block(d) && layout != TTM_TILE)
        return FATAL("layout == Layout::TILE", "Block float types are only supported in TILE layout");
    return copy_as(t, d, layout, out_buffer(o, t->buffer), out);
}

ttm_status ttm_typecast(const ttm_tensor* t, ttm_dtype dtype, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_typecast");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(t, "tensor", "typecast"));
    TRY(check_opts(o));
    TRY(require_tile(t, "Typecast operation requires input to be in Tile layout"));
    if (!is_float(dtype))
        return FATAL("is_floating_point(output_dtype)", "The host shim models typecast to float dtypes only, not %s",
                     dtype_name(dtype));
    return copy_as(t, dtype, TTM_TILE, out_buffer(o, t->buffer), out);
}

ttm_status ttm_to_buffer(const ttm_tensor* t, ttm_buffer buffer, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_to_buffer");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(t, "tensor", "to_memory_config"));
    if (buffer != TTM_DRAM && buffer != TTM_L1) return BAD("buffer %u is not DRAM or L1", buffer);
    return copy_as(t, t->dtype, t->layout, buffer, out);
}

/* ---- matmul / linear ------------------------------------------------------------------------ */

static float activate(const char* act, float x) {
    if (act == NULL) return x;
    double v = x;
    if (strcmp(act, "relu") == 0) return x > 0 ? x : 0.0f;
    if (strcmp(act, "silu") == 0) return (float)(v / (1.0 + exp(-v)));
    /* "gelu": TT-NN's fused gelu is the erf form */
    return (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0))));
}

static ttm_status matmul_impl(const struct ttm_tensor* a, const struct ttm_tensor* b, const struct ttm_tensor* bias,
                              int ta, int tb, const char* act, const ttm_op_opts* o, ttm_tensor** out,
                              const char* opname) {
    TRY(check_input(a, "input_tensor_a", opname));
    TRY(check_input(b, "input_tensor_b", opname));
    TRY(same_device(a, b, opname));
    TRY(check_opts(o));
    if (a->layout != TTM_TILE || b->layout != TTM_TILE)
        return FATAL("(input_tensor_a.layout() == Layout::TILE && input_tensor_b.layout() == Layout::TILE)",
                     "Inputs to matmul must be tilized");
    if (!is_float(a->dtype) || !is_float(b->dtype))
        return FATAL("is_floating_point(input_tensor_a.dtype())", "Unsupported data type for matmul: %s x %s",
                     dtype_name(a->dtype), dtype_name(b->dtype));
    if (a->rank < 2 || b->rank < 2)
        return FATAL("rank >= 2", "Matmul inputs must have rank >= 2, got %u and %u", a->rank, b->rank);
    if (act && strcmp(act, "relu") && strcmp(act, "gelu") && strcmp(act, "silu"))
        return FATAL("activation is supported", "Unsupported fused activation \"%s\"", act);
    uint32_t am = a->logical[a->rank - 2], ak = a->logical[a->rank - 1];
    if (ta) { uint32_t x = am; am = ak; ak = x; }
    uint32_t bk = b->logical[b->rank - 2], bn = b->logical[b->rank - 1];
    if (tb) { uint32_t x = bk; bk = bn; bn = x; }
    if (ak != bk)
        return FATAL("a_shape[-1] == b_shape[-2]",
                     "The width of the first tensor must be equal to the height of the second tensor. Mismatch: "
                     "width=%u height=%u",
                     ak, bk);
    /* Batch dims: b's must be all 1 (broadcast) or equal to a's. */
    uint32_t rank = a->rank > b->rank ? a->rank : b->rank;
    uint32_t dims[TTM_MAX_RANK];
    size_t batch_a = volume(a->logical, a->rank - 2), batch_b = volume(b->logical, b->rank - 2);
    for (uint32_t i = 0; i + 2 < rank; i++) {
        int ia = (int)i - (int)(rank - a->rank), ib = (int)i - (int)(rank - b->rank);
        uint32_t da = ia >= 0 ? a->logical[ia] : 1, db = ib >= 0 ? b->logical[ib] : 1;
        if (batch_b != 1 && da != db)
            return FATAL("batch_b == 1 || batch_a == batch_b",
                         "The batch dims of the second matmul input must be 1 or equal to the first input's "
                         "(dim %u: %u vs %u)",
                         i, da, db);
        dims[i] = batch_b == 1 ? da : db;
    }
    dims[rank - 2] = am;
    dims[rank - 1] = bn;
    size_t batch = batch_b == 1 ? batch_a : batch_b;
    if (batch_b != 1 && batch_a != batch_b)
        return FATAL("batch_a == batch_b", "Matmul batch volumes differ: %zu vs %zu", batch_a, batch_b);
    float* bv = NULL;
    if (bias) {
        TRY(check_input(bias, "bias", opname));
        TRY(same_device(a, bias, opname));
        TRY(require_tile(bias, "Bias tensor must be tilized"));
        size_t bvol = volume(bias->logical, bias->rank);
        if (bias->rank < 1 || bias->logical[bias->rank - 1] != bn || bvol != bn) {
            char s[160];
            shape_str(s, sizeof s, bias->logical, bias->rank);
            return FATAL("bias_shape[-1] == N && bias is a row", "Bias shape %s must be a row of width %u", s, bn);
        }
        bv = load(bias);
        if (!bv) return OOM();
    }
    float* av = load(a);
    float* bw = load(b);
    size_t m_total = batch * am * bn;
    float* ov = malloc((m_total ? m_total : 1) * sizeof(float));
    if (!av || !bw || !ov) {
        free(av); free(bw); free(ov); free(bv);
        return OOM();
    }
    uint32_t a_rows = a->logical[a->rank - 2], a_cols = a->logical[a->rank - 1];
    uint32_t b_rows = b->logical[b->rank - 2], b_cols = b->logical[b->rank - 1];
    for (size_t bi = 0; bi < batch; bi++) {
        const float* A = av + (batch_a == 1 ? 0 : bi) * (size_t)a_rows * a_cols;
        const float* B = bw + (batch_b == 1 ? 0 : bi) * (size_t)b_rows * b_cols;
        float* O = ov + bi * (size_t)am * bn;
        for (uint32_t i = 0; i < am; i++)
            for (uint32_t j = 0; j < bn; j++) {
                double acc = 0.0;
                for (uint32_t k = 0; k < ak; k++) {
                    float x = ta ? A[(size_t)k * a_cols + i] : A[(size_t)i * a_cols + k];
                    float y = tb ? B[(size_t)j * b_cols + k] : B[(size_t)k * b_cols + j];
                    acc += (double)x * (double)y;
                }
                float r = (float)acc;
                if (bv) r += bv[j];
                O[(size_t)i * bn + j] = activate(act, r);
            }
    }
    free(av);
    free(bw);
    free(bv);
    struct ttm_tensor* t;
    ttm_status st = new_output(a, rank, dims, o, a->dtype, &t);
    if (st != TTM_OK) {
        free(ov);
        return st;
    }
    return finish(t, ov, out);
}

ttm_status ttm_linear(const ttm_tensor* a, const ttm_tensor* w, const ttm_tensor* bias, int32_t transpose_a,
                      int32_t transpose_b, const char* activation, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_linear");
    if (out == NULL) return BAD("out is NULL");
    return matmul_impl(a, w, bias, transpose_a, transpose_b, activation, o, out, "linear");
}

ttm_status ttm_matmul(const ttm_tensor* a, const ttm_tensor* b, int32_t transpose_a, int32_t transpose_b,
                      const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_matmul");
    if (out == NULL) return BAD("out is NULL");
    return matmul_impl(a, b, NULL, transpose_a, transpose_b, NULL, o, out, "matmul");
}

/* ---- element-wise ------------------------------------------------------------------------------ */

static float binop(ttm_binary_op op, float x, float y) {
    switch (op) {
        case TTM_ADD: return x + y;
        case TTM_SUB: return x - y;
        default: return x * y;
    }
}

ttm_status ttm_binary(ttm_binary_op op, const ttm_tensor* a, const ttm_tensor* b, const ttm_op_opts* o,
                      ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_binary");
    if (out == NULL) return BAD("out is NULL");
    if (op != TTM_ADD && op != TTM_SUB && op != TTM_MUL) return BAD("op %u is not a ttm_binary_op", op);
    TRY(check_input(a, "input_tensor_a", "eltwise binary"));
    TRY(check_input(b, "input_tensor_b", "eltwise binary"));
    TRY(check_opts(o));
    /* binary_ng: the subtile broadcast type of the last two logical dims comes first. */
    uint32_t ah = a->rank >= 2 ? a->logical[a->rank - 2] : 1, aw = a->rank >= 1 ? a->logical[a->rank - 1] : 1;
    uint32_t bh = b->rank >= 2 ? b->logical[b->rank - 2] : 1, bw = b->rank >= 1 ? b->logical[b->rank - 1] : 1;
    int ok = (ah == bh && aw == bw) || (ah == 1 && aw == 1) || (bh == 1 && bw == 1) || (ah == 1 && bw == 1) ||
             (aw == 1 && bh == 1) || ah == 1 || aw == 1 || bh == 1 || bw == 1;
    if (!ok) return THROW("Invalid subtile broadcast type");
    uint32_t rank = a->rank > b->rank ? a->rank : b->rank;
    uint32_t dims[TTM_MAX_RANK];
    for (int i = -1; i >= -(int)rank; i--) {
        uint32_t da = -i <= (int)a->rank ? a->logical[(int)a->rank + i] : 1;
        uint32_t db = -i <= (int)b->rank ? b->logical[(int)b->rank + i] : 1;
        if (!(da == db || da == 1 || db == 1))
            return FATAL("a_dim == b_dim || a_dim == 1 || b_dim == 1",
                         "Broadcasting rule violation for rank %d, dim a: %u, dim b: %u", i, da, db);
        if (i <= -6 && da != db)
            return FATAL("a_dim == b_dim",
                         "Broadcasting rule violation for rank >= 6 : dim %d, Broadcast is supported up to rank 5, "
                         "dim a: %u, dim b: %u",
                         i, da, db);
        dims[(int)rank + i] = da > db ? da : db;
    }
    TRY(require_tile(a, "First operand to eltwise binary must be tilized"));
    if (b->layout != TTM_TILE)
        return FATAL("input_tensor_b->layout() == Layout::TILE", "Second operand to eltwise binary must be tilized");
    TRY(same_device(a, b, "eltwise binary"));
    float* av = load(a);
    float* bv = load(b);
    size_t n = volume(dims, rank);
    float* ov = malloc((n ? n : 1) * sizeof(float));
    if (!av || !bv || !ov) {
        free(av); free(bv); free(ov);
        return OOM();
    }
    for (size_t i = 0; i < n; i++) {
        size_t rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = (int)rank - 1; d >= 0; d--) {
            size_t idx = rem % dims[d];
            rem /= dims[d];
            int da = d - (int)(rank - a->rank), db = d - (int)(rank - b->rank);
            if (da >= 0) {
                if (a->logical[da] != 1) ia += idx * sa;
                sa *= a->logical[da];
            }
            if (db >= 0) {
                if (b->logical[db] != 1) ib += idx * sb;
                sb *= b->logical[db];
            }
        }
        ov[i] = binop(op, av[ia], bv[ib]);
    }
    free(av);
    free(bv);
    struct ttm_tensor* t;
    ttm_status st = new_output(a, rank, dims, o, a->dtype, &t);
    if (st != TTM_OK) {
        free(ov);
        return st;
    }
    return finish(t, ov, out);
}

ttm_status ttm_binary_scalar(ttm_binary_op op, const ttm_tensor* a, float scalar, const ttm_op_opts* o,
                             ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_binary_scalar");
    if (out == NULL) return BAD("out is NULL");
    if (op != TTM_ADD && op != TTM_SUB && op != TTM_MUL) return BAD("op %u is not a ttm_binary_op", op);
    TRY(check_input(a, "input_tensor_a", "eltwise binary"));
    TRY(check_opts(o));
    TRY(require_tile(a, "First operand to eltwise binary must be tilized"));
    float* v = load(a);
    if (!v) return OOM();
    size_t n = volume(a->logical, a->rank);
    for (size_t i = 0; i < n; i++) v[i] = binop(op, v[i], scalar);
    struct ttm_tensor* t;
    ttm_status st = new_output(a, a->rank, a->logical, o, a->dtype, &t);
    if (st != TTM_OK) {
        free(v);
        return st;
    }
    return finish(t, v, out);
}

static float unary_value(ttm_unary_op op, float x) {
    double v = x;
    switch (op) {
        case TTM_GELU: return (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0))));
        case TTM_GELU_TANH: {
            double k = sqrt(2.0 / PI_D);
            return (float)(0.5 * v * (1.0 + tanh(k * (v + 0.044715 * v * v * v))));
        }
        case TTM_SILU: return (float)(v / (1.0 + exp(-v)));
        case TTM_EXP: return expf(x);
        case TTM_RSQRT: return 1.0f / sqrtf(x);
        case TTM_SQRT: return sqrtf(x);
        case TTM_TANH: return (float)tanh(v);
        case TTM_SIGMOID: return (float)(1.0 / (1.0 + exp(-v)));
        case TTM_NEG: return -x;
        default: return 1.0f / x;
    }
}

ttm_status ttm_unary(ttm_unary_op op, const ttm_tensor* a, int32_t fast_approx, const ttm_op_opts* o,
                     ttm_tensor** out) {
    (void)fast_approx;
    if (out) *out = NULL;
    ENTER("ttm_unary");
    if (out == NULL) return BAD("out is NULL");
    if (op < TTM_GELU || op > TTM_RECIP) return BAD("op %u is not a ttm_unary_op", op);
    TRY(check_input(a, "input_tensor", "eltwise unary"));
    TRY(check_opts(o));
    TRY(require_tile(a, "Unary operation requires tensor to be in Tile layout when working with non-sharded input tensor"));
    float* v = load(a);
    if (!v) return OOM();
    size_t n = volume(a->logical, a->rank);
    for (size_t i = 0; i < n; i++) v[i] = unary_value(op, v[i]);
    struct ttm_tensor* t;
    ttm_status st = new_output(a, a->rank, a->logical, o, a->dtype, &t);
    if (st != TTM_OK) {
        free(v);
        return st;
    }
    return finish(t, v, out);
}

/* ---- softmax and norms ------------------------------------------------------------------------- */

/* pccscope cpu order: optional max subtraction, f32 exp, f64 sum and division. */
static void softmax_strided(float* v, size_t n, size_t stride, int stable) {
    float mx = -INFINITY;
    if (stable)
        for (size_t i = 0; i < n; i++) mx = v[i * stride] > mx ? v[i * stride] : mx;
    else
        mx = 0.0f;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        float e = expf(v[i * stride] - mx);
        v[i * stride] = e;
        sum += e;
    }
    for (size_t i = 0; i < n; i++) v[i * stride] = (float)(v[i * stride] / sum);
}

ttm_status ttm_softmax(const ttm_tensor* a, int32_t dim, int32_t numeric_stable, const ttm_op_opts* o,
                       ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_softmax");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(a, "input_tensor", "softmax"));
    TRY(check_opts(o));
    TRY(require_tile(a, "Inputs to softmax must be tilized"));
    int r = (int)a->rank;
    int d = dim < 0 ? dim + r : dim;
    if (r == 0 || d < 0 || d >= r) return FATAL("dim < rank", "Softmax dim %d is out of range for rank %d", dim, r);
    float* v = load(a);
    if (!v) return OOM();
    size_t inner = 1;
    for (int i = d + 1; i < r; i++) inner *= a->logical[i];
    size_t len = a->logical[d], outer = volume(a->logical, (uint32_t)d);
    for (size_t p = 0; p < outer; p++)
        for (size_t q = 0; q < inner; q++) softmax_strided(v + p * len * inner + q, len, inner, numeric_stable);
    struct ttm_tensor* t;
    ttm_status st = new_output(a, a->rank, a->logical, o, a->dtype, &t);
    if (st != TTM_OK) {
        free(v);
        return st;
    }
    return finish(t, v, out);
}

/* Norm parameters: TILE rows [.., 1, W] (padded[-2] == 32, padded[-1] == the input's) or
 * ROW_MAJOR sticks [W/32, 32]; all present ones share a layout. Loads it into a width-W vector. */
static ttm_status norm_param(const struct ttm_tensor* a, const struct ttm_tensor* p, const char* what,
                             ttm_layout* shared, float** dst) {
    *dst = NULL;
    if (p == NULL) return TTM_OK;
    TRY(check_input(p, what, "layernorm"));
    TRY(same_device(a, p, "layernorm"));
    uint32_t w = a->logical[a->rank - 1];
    if (*shared && p->layout != *shared)
        return FATAL("gamma.layout() == beta.layout()", "Gamma and beta must have the same layout");
    *shared = p->layout;
    if (!(p->dtype == TTM_F32 || p->dtype == TTM_BF16))
        return FATAL("gamma.dtype() == FLOAT32 || gamma.dtype() == BFLOAT16", "%s must be FLOAT32 or BFLOAT16, got %s",
                     what, dtype_name(p->dtype));
    if (p->layout == TTM_TILE) {
        if (p->rank < 1 || p->padded[p->rank - 1] != a->padded[a->rank - 1] ||
            (p->rank >= 2 && p->padded[p->rank - 2] != TILE) || volume(p->logical, p->rank) != w)
            return FATAL("gamma.padded_shape()[-1] == a.padded_shape()[-1] && gamma.padded_shape()[-2] == TILE_HEIGHT",
                         "%s in TILE layout must be a [1, %u] row", what, w);
    } else {
        if (p->rank < 2 || p->logical[p->rank - 1] != TILE || volume(p->logical, p->rank) * 1u != (size_t)round_up(w, TILE))
            return FATAL("gamma.padded_shape()[-1] == TILE_WIDTH",
                         "%s in ROW_MAJOR layout must be [%u, 32] sticks", what, round_up(w, TILE) / TILE);
    }
    *dst = load(p);
    return *dst ? TTM_OK : OOM();
}

static ttm_status norm_common(int rms, const struct ttm_tensor* a, float eps, const struct ttm_tensor* weight,
                              const struct ttm_tensor* bias, const struct ttm_tensor* residual, const ttm_op_opts* o,
                              ttm_tensor** out) {
    TRY(check_input(a, "input_tensor", "layernorm"));
    TRY(check_opts(o));
    TRY(require_tile(a, "Only tilized inputs supported"));
    if (!(a->dtype == TTM_F32 || a->dtype == TTM_BF16 || a->dtype == TTM_BFP8_B))
        return FATAL("a.dtype() == FLOAT32 || a.dtype() == BFLOAT16 || a.dtype() == BFLOAT8_B",
                     "Input must be FLOAT32, BFLOAT16 or BFLOAT8_B, got %s", dtype_name(a->dtype));
    if (a->rank < 1) return FATAL("rank >= 1", "Input must have rank >= 1");
    if (residual) {
        TRY(check_input(residual, "residual", "layernorm"));
        TRY(same_device(a, residual, "layernorm"));
        if (residual->rank != a->rank || memcmp(residual->logical, a->logical, a->rank * sizeof(uint32_t)))
            return FATAL("residual.padded_shape() == a.padded_shape()", "Residual must have the input's shape");
    }
    ttm_layout shared = 0;
    float *w = NULL, *b = NULL, *r = NULL;
    ttm_status st = norm_param(a, weight, "gamma", &shared, &w);
    if (st == TTM_OK) st = norm_param(a, bias, "beta", &shared, &b);
    if (st != TTM_OK) {
        free(w); free(b);
        return st;
    }
    float* v = load(a);
    if (residual) r = load(residual);
    if (!v || (residual && !r)) {
        free(w); free(b); free(v); free(r);
        return OOM();
    }
    size_t d = a->logical[a->rank - 1], n = volume(a->logical, a->rank);
    if (r)
        for (size_t i = 0; i < n; i++) v[i] += r[i];
    free(r);
    for (size_t row = 0; d > 0 && row < n / d; row++) {
        float* x = v + row * d;
        if (rms) {
            double ms = 0.0;
            for (size_t i = 0; i < d; i++) ms += (double)x[i] * (double)x[i];
            ms /= (double)d;
            float rr = 1.0f / sqrtf((float)ms + eps);
            for (size_t i = 0; i < d; i++) {
                float y = x[i] * rr;
                if (w) y = y * w[i];
                if (b) y = y + b[i];
                x[i] = y;
            }
        } else {
            double mean = 0.0, var = 0.0;
            for (size_t i = 0; i < d; i++) mean += x[i];
            mean /= (double)d;
            for (size_t i = 0; i < d; i++) {
                double c = (double)x[i] - mean;
                var += c * c;
            }
            var /= (double)d;
            float m = (float)mean;
            float rstd = 1.0f / sqrtf((float)var + eps);
            for (size_t i = 0; i < d; i++) {
                float y = (x[i] - m) * rstd;
                /* one rounding for y·w + b, as the cpu reference's fused multiply-add */
                x[i] = w ? (float)((double)y * (double)w[i] + (b ? (double)b[i] : 0.0)) : (b ? y + b[i] : y);
            }
        }
    }
    free(w);
    free(b);
    struct ttm_tensor* t;
    st = new_output(a, a->rank, a->logical, o, a->dtype, &t);
    if (st != TTM_OK) {
        free(v);
        return st;
    }
    return finish(t, v, out);
}

ttm_status ttm_layer_norm(const ttm_tensor* a, float eps, const ttm_tensor* weight, const ttm_tensor* bias,
                          const ttm_tensor* residual, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_layer_norm");
    if (out == NULL) return BAD("out is NULL");
    return norm_common(0, a, eps, weight, bias, residual, o, out);
}

ttm_status ttm_rms_norm(const ttm_tensor* a, float eps, const ttm_tensor* weight, const ttm_tensor* bias,
                        const ttm_tensor* residual, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_rms_norm");
    if (out == NULL) return BAD("out is NULL");
    return norm_common(1, a, eps, weight, bias, residual, o, out);
}

/* ---- embedding ------------------------------------------------------------------------------- */

ttm_status ttm_embedding(const ttm_tensor* idx, const ttm_tensor* weight, ttm_layout out_layout,
                         const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_embedding");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(idx, "input_tensor", "embedding"));
    TRY(check_input(weight, "weight", "embedding"));
    TRY(same_device(idx, weight, "embedding"));
    TRY(check_opts(o));
    if (out_layout == TTM_LAYOUT_DEFAULT) out_layout = TTM_ROW_MAJOR;
    if (out_layout != TTM_ROW_MAJOR && out_layout != TTM_TILE) return BAD("out_layout %u is not a ttm_layout", out_layout);
    if (weight->layout != TTM_ROW_MAJOR)
        return FATAL("weights.layout() == Layout::ROW_MAJOR", "Weights tensor layout must be ROW_MAJOR but got %s",
                     layout_name(weight->layout));
    if (!(idx->dtype == TTM_U32 || idx->dtype == TTM_BF16))
        return FATAL("a.dtype() == DataType::UINT32 or a.dtype() == DataType::BFLOAT16", "Input must be UINT32 or BFLOAT16");
    if (weight->dtype != TTM_BF16)
        return FATAL("weights.dtype() == DataType::BFLOAT16", "Weights tensor must have BFLOAT16 dtype");
    /* ttnn::embedding unsqueezes the weight to 4-D and reshapes indices to [B, 1, 1, S]. */
    if (weight->rank < 2 || weight->rank > 4) return FATAL("weight rank <= 4", "Weights must have rank 2 to 4");
    uint32_t w4[4] = {1, 1, 1, 1};
    for (uint32_t i = 0; i < weight->rank; i++) w4[4 - weight->rank + i] = weight->logical[i];
    if (w4[0] != 1 || w4[1] != 1)
        return FATAL("weights.padded_shape()[0] == 1 && weights.padded_shape()[1] == 1",
                     "First two dimensions for the weights must be 1 but got %u and %u", w4[0], w4[1]);
    if (idx->rank < 1) return FATAL("input rank >= 1", "Indices must have rank >= 1");
    uint32_t batch = idx->rank >= 2 ? idx->logical[0] : 1, seq = idx->logical[idx->rank - 1];
    if (volume(idx->logical, idx->rank) != (size_t)batch * seq)
        return FATAL("a.padded_shape()[1] == 1 && a.padded_shape()[2] == 1", "Only dim 0 && 3 for the input can be non 1");
    uint32_t vocab = w4[2], width = w4[3];
    if (out_layout == TTM_TILE) {
        uint32_t ip = idx->layout == TTM_TILE ? idx->padded[idx->rank - 1] : seq;
        if (ip % TILE)
            return FATAL("a.padded_shape()[-1] % TILE_HEIGHT == 0",
                         "Input tensor width %u must be a multiple of tile height %u to have the output tensor tilized",
                         ip, TILE);
        if (weight->padded[weight->rank - 1] % TILE)
            return FATAL("weights.padded_shape()[-1] % TILE_WIDTH == 0",
                         "Number of columns in table %u must be factor of tile width %u",
                         weight->padded[weight->rank - 1], TILE);
    }
    ttm_dtype d = out_dtype(o, weight->dtype);
    if (is_block(d) && out_layout != TTM_TILE)
        return FATAL("layout == Layout::TILE", "Block float types are only supported in TILE layout");
    float* iv = load(idx);
    float* wv = load(weight);
    size_t n = (size_t)batch * seq * width;
    float* ov = malloc((n ? n : 1) * sizeof(float));
    if (!iv || !wv || !ov) {
        free(iv); free(wv); free(ov);
        return OOM();
    }
    for (size_t i = 0; i < (size_t)batch * seq; i++) {
        float fi = iv[i];
        if (!(fi >= 0.0f) || fi >= (float)vocab || fi != floorf(fi)) {
            free(iv); free(wv); free(ov);
            return ttm__fail_shim(TTM_E_INVALID_ARG,
                                  "index %g at position %zu is not a row of the %u-row table (TT-NN does not check "
                                  "this on device; the host shim does)",
                                  (double)fi, i, vocab);
        }
        memcpy(ov + i * width, wv + (size_t)fi * width, width * sizeof(float));
    }
    free(iv);
    free(wv);
    uint32_t dims[3] = {batch, seq, width};
    struct ttm_tensor* t;
    ttm_status st = new_tensor(idx->dev, 3, dims, d, out_layout, out_buffer(o, idx->buffer), &t);
    if (st != TTM_OK) {
        free(ov);
        return st;
    }
    return finish(t, ov, out);
}

/* ---- data movement ------------------------------------------------------------------------------ */

ttm_status ttm_concat(const ttm_tensor* const* inputs, size_t n, int32_t dim, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_concat");
    if (out == NULL) return BAD("out is NULL");
    if (inputs == NULL || n == 0) return BAD("concat needs at least one input");
    TRY(check_opts(o));
    for (size_t i = 0; i < n; i++) {
        TRY(check_input(inputs[i], "input", "concat"));
        TRY(same_device(inputs[0], inputs[i], "concat"));
    }
    const struct ttm_tensor* f = inputs[0];
    int r = (int)f->rank;
    int d = dim < 0 ? dim + r : dim;
    if (r == 0 || d < 0 || d >= r) return FATAL("dim < rank", "Concat dim %d is out of range for rank %d", dim, r);
    uint32_t dims[TTM_MAX_RANK];
    memcpy(dims, f->logical, f->rank * sizeof(uint32_t));
    dims[d] = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ttm_tensor* t = inputs[i];
        if (t->layout != f->layout) return FATAL("tensor.layout() == first.layout()", "All Tensors should have same layouts");
        if (t->dtype != f->dtype) return FATAL("tensor.dtype() == first.dtype()", "All Tensors should have same dtypes");
        if (t->rank != f->rank)
            return FATAL("tensor.rank() == first.rank()", "All tensors must have the same rank");
        for (int k = 0; k < r; k++)
            if (k != d && t->logical[k] != f->logical[k])
                return FATAL("shapes match except along dim",
                             "All dimensions must be the same size except for the dimension along which the "
                             "concatenation is taking place.");
        dims[d] += t->logical[d];
    }
    size_t inner = 1;
    for (int k = d + 1; k < r; k++) inner *= dims[k];
    size_t outer = volume(dims, (uint32_t)d), total = volume(dims, f->rank);
    float* ov = malloc((total ? total : 1) * sizeof(float));
    if (!ov) return OOM();
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ttm_tensor* t = inputs[i];
        float* v = load(t);
        if (!v) {
            free(ov);
            return OOM();
        }
        size_t chunk = (size_t)t->logical[d] * inner;
        for (size_t p = 0; p < outer; p++) memcpy(ov + p * dims[d] * inner + off, v + p * chunk, chunk * sizeof(float));
        off += chunk;
        free(v);
    }
    struct ttm_tensor* t;
    ttm_status st = new_tensor(f->dev, f->rank, dims, f->dtype, f->layout, out_buffer(o, f->buffer), &t);
    if (st != TTM_OK) {
        free(ov);
        return st;
    }
    return finish(t, ov, out);
}

/* Output values of a gather-style op: out[i] = in[src(i)]. */
static ttm_status gather(const struct ttm_tensor* a, uint32_t rank, const uint32_t* dims, const size_t* src_of,
                         const ttm_op_opts* o, ttm_tensor** out) {
    float* v = load(a);
    size_t n = volume(dims, rank);
    float* ov = malloc((n ? n : 1) * sizeof(float));
    if (!v || !ov) {
        free(v); free(ov);
        return OOM();
    }
    for (size_t i = 0; i < n; i++) ov[i] = v[src_of[i]];
    free(v);
    struct ttm_tensor* t;
    ttm_status st = new_tensor(a->dev, rank, dims, a->dtype, a->layout, out_buffer(o, a->buffer), &t);
    if (st != TTM_OK) {
        free(ov);
        return st;
    }
    return finish(t, ov, out);
}

ttm_status ttm_slice(const ttm_tensor* a, const int32_t* begins, const int32_t* ends, const int32_t* steps,
                     size_t rank, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_slice");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(a, "input_tensor", "slice"));
    TRY(check_opts(o));
    if (begins == NULL || ends == NULL) return BAD("begins/ends is NULL");
    if (rank != a->rank) return FATAL("begins.size() == rank", "Slice rank %zu does not match the input rank %u", rank, a->rank);
    uint32_t dims[TTM_MAX_RANK], start[TTM_MAX_RANK], step[TTM_MAX_RANK];
    for (uint32_t i = 0; i < a->rank; i++) {
        int64_t sz = a->logical[i];
        int64_t b = begins[i] < 0 ? begins[i] + sz : begins[i];
        int64_t e = ends[i] < 0 ? ends[i] + sz : ends[i];
        int64_t s = steps ? steps[i] : 1;
        if (s <= 0) return FATAL("step > 0", "Slice step must be positive, got %lld at dim %u", (long long)s, i);
        if (b < 0 || e > sz || b > e)
            return FATAL("begin <= end <= dim", "Slice [%d, %d) is out of range for dim %u of size %u", begins[i],
                         ends[i], i, a->logical[i]);
        start[i] = (uint32_t)b;
        step[i] = (uint32_t)s;
        dims[i] = (uint32_t)((e - b + s - 1) / s);
    }
    size_t n = volume(dims, a->rank);
    size_t* src = malloc((n ? n : 1) * sizeof(size_t));
    if (!src) return OOM();
    for (size_t i = 0; i < n; i++) {
        size_t rem = i, off = 0, stride = 1;
        for (uint32_t d = a->rank; d-- > 0;) {
            size_t idx = rem % dims[d];
            rem /= dims[d];
            off += (start[d] + idx * step[d]) * stride;
            stride *= a->logical[d];
        }
        src[i] = off;
    }
    ttm_status st = gather(a, a->rank, dims, src, o, out);
    free(src);
    return st;
}

ttm_status ttm_reshape(const ttm_tensor* a, const int32_t* dims_in, size_t rank, const ttm_op_opts* o,
                       ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_reshape");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(a, "input_tensor", "reshape"));
    TRY(check_opts(o));
    if (rank > TTM_MAX_RANK) return BAD("rank %zu exceeds %u", rank, TTM_MAX_RANK);
    if (rank > 0 && dims_in == NULL) return BAD("dims is NULL");
    uint32_t dims[TTM_MAX_RANK];
    int infer = -1;
    size_t known = 1, vol = volume(a->logical, a->rank);
    for (size_t i = 0; i < rank; i++) {
        if (dims_in[i] == -1) {
            if (infer >= 0) return FATAL("only one -1", "Only one dimension can be inferred (-1)");
            infer = (int)i;
            continue;
        }
        if (dims_in[i] < 0) return FATAL("dim >= 0", "Invalid reshape dimension %d", dims_in[i]);
        dims[i] = (uint32_t)dims_in[i];
        known *= dims[i];
    }
    if (infer >= 0) {
        if (known == 0 || vol % known) return FATAL("volume % known == 0", "Cannot infer dimension for reshape");
        dims[infer] = (uint32_t)(vol / known);
        known *= dims[infer];
    }
    if (known != vol) {
        char s1[160], s2[160];
        shape_str(s1, sizeof s1, a->logical, a->rank);
        shape_str(s2, sizeof s2, dims, (uint32_t)rank);
        return FATAL("input_tensor.logical_volume() == new_shape.volume()",
                     "Invalid arguments to reshape: cannot reshape %s to %s", s1, s2);
    }
    float* v = load(a);
    if (!v) return OOM();
    struct ttm_tensor* t;
    ttm_status st = new_tensor(a->dev, (uint32_t)rank, dims, a->dtype, a->layout, out_buffer(o, a->buffer), &t);
    if (st != TTM_OK) {
        free(v);
        return st;
    }
    return finish(t, v, out);
}

ttm_status ttm_permute(const ttm_tensor* a, const int64_t* perm, size_t rank, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_permute");
    if (out == NULL) return BAD("out is NULL");
    TRY(check_input(a, "input_tensor", "permute"));
    TRY(check_opts(o));
    if (perm == NULL && rank > 0) return BAD("perm is NULL");
    if (rank != a->rank) return FATAL("dims.size() == rank", "Permute needs %u dims, got %zu", a->rank, rank);
    uint32_t p[TTM_MAX_RANK], dims[TTM_MAX_RANK];
    int seen[TTM_MAX_RANK] = {0};
    for (size_t i = 0; i < rank; i++) {
        int64_t d = perm[i] < 0 ? perm[i] + (int64_t)rank : perm[i];
        if (d < 0 || d >= (int64_t)rank || seen[d])
            return FATAL("dims is a permutation", "Permute dims must be a permutation of 0..%zu", rank - 1);
        seen[d] = 1;
        p[i] = (uint32_t)d;
        dims[i] = a->logical[d];
    }
    size_t n = volume(dims, a->rank);
    size_t* src = malloc((n ? n : 1) * sizeof(size_t));
    if (!src) return OOM();
    size_t in_stride[TTM_MAX_RANK];
    size_t s = 1;
    for (uint32_t d = a->rank; d-- > 0;) {
        in_stride[d] = s;
        s *= a->logical[d];
    }
    for (size_t i = 0; i < n; i++) {
        size_t rem = i, off = 0;
        for (uint32_t d = a->rank; d-- > 0;) {
            size_t idx = rem % dims[d];
            rem /= dims[d];
            off += idx * in_stride[p[d]];
        }
        src[i] = off;
    }
    ttm_status st = gather(a, a->rank, dims, src, o, out);
    free(src);
    return st;
}

/* ---- rotary embedding and attention --------------------------------------------------------------- */

ttm_status ttm_rotary_embedding(const ttm_tensor* x, const ttm_tensor* cos_t, const ttm_tensor* sin_t,
                                int64_t token_index, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_rotary_embedding");
    if (out == NULL) return BAD("out is NULL");
    const struct ttm_tensor* ins[3] = {x, cos_t, sin_t};
    for (int i = 0; i < 3; i++) {
        TRY(check_input(ins[i], i == 0 ? "input_tensor" : i == 1 ? "cos" : "sin", "rotary embedding"));
        TRY(same_device(x, ins[i], "rotary embedding"));
        TRY(require_tile(ins[i], "Inputs to rotary embedding must be tilized"));
    }
    TRY(check_opts(o));
    if (x->rank != 4) return FATAL("input_tensor rank == 4", "Input must be [B, H, S, D], got rank %u", x->rank);
    uint32_t X = x->padded[3], seq_padded = x->padded[2];
    if (X % (TILE * 2)) return FATAL("input_tensor.padded_shape()[-1] % (TILE_WIDTH * 2) == 0", "Input X dim must be divisible into tiles");
    if (cos_t->dtype != sin_t->dtype) return FATAL("cos.dtype() == sin.dtype()", "Cos and Sin dtypes must match");
    if (cos_t->rank != sin_t->rank || memcmp(cos_t->padded, sin_t->padded, cos_t->rank * sizeof(uint32_t)))
        return FATAL("cos.padded_shape() == sin.padded_shape()", "Cos and Sin dims must match");
    if (cos_t->rank != 4 || cos_t->padded[0] != 1 || cos_t->padded[1] != 1 || cos_t->padded[3] != X)
        return FATAL("cos.padded_shape()[0] == 1 && cos.padded_shape()[1] == 1 && cos.padded_shape()[-1] == X",
                     "Cos dims must match input dims");
    if (token_index >= 0 ? cos_t->padded[2] < (uint64_t)token_index : cos_t->padded[2] < seq_padded)
        return FATAL("cos.padded_shape()[-2] >= seq_len", "Cos dims must match input dims");
    if (token_index >= 0 && token_index >= (int64_t)cos_t->logical[2])
        return ttm__fail_shim(TTM_E_INVALID_ARG, "token_index %lld is not a row of the cos table",
                              (long long)token_index);
    uint32_t B = x->logical[0], H = x->logical[1], S = x->logical[2], D = x->logical[3];
    uint32_t so = token_index >= 0 ? S : round_up(S, TILE); /* no token index: output seq rounded up */
    uint32_t dims[4] = {B, H, so, token_index >= 0 ? D : X};
    float* xv = load(x);
    float* cv = load(cos_t);
    float* sv = load(sin_t);
    size_t n = volume(dims, 4);
    float* ov = calloc(n ? n : 1, sizeof(float));
    if (!xv || !cv || !sv || !ov) {
        free(xv); free(cv); free(sv); free(ov);
        return OOM();
    }
    uint32_t half = D / 2, cw = cos_t->logical[3];
    for (uint32_t b = 0; b < B; b++)
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t s = 0; s < S; s++) {
                const float* xr = xv + (((size_t)b * H + h) * S + s) * D;
                uint32_t crow = token_index >= 0 ? (uint32_t)token_index : s;
                const float* c = cv + (size_t)crow * cw;
                const float* si = sv + (size_t)crow * cw;
                float* orow = ov + (((size_t)b * H + h) * so + s) * dims[3];
                for (uint32_t j = 0; j < D; j++) {
                    float rot = j < half ? -xr[j + half] : xr[j - half];
                    orow[j] = xr[j] * c[j] + rot * si[j];
                }
            }
    free(xv);
    free(cv);
    free(sv);
    struct ttm_tensor* t;
    ttm_status st = new_output(x, 4, dims, o, x->dtype, &t);
    if (st != TTM_OK) {
        free(ov);
        return st;
    }
    return finish(t, ov, out);
}

static int sdpa_dtype(ttm_dtype d) { return d == TTM_BF16 || d == TTM_BFP8_B || d == TTM_BFP4_B; }

ttm_status ttm_sdpa(const ttm_tensor* q, const ttm_tensor* k, const ttm_tensor* v, const ttm_tensor* mask,
                    int32_t is_causal, float scale, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = NULL;
    ENTER("ttm_sdpa");
    if (out == NULL) return BAD("out is NULL");
    const struct ttm_tensor* ins[3] = {q, k, v};
    const char* names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        TRY(check_input(ins[i], names[i], "SDPA"));
        TRY(same_device(q, ins[i], "SDPA"));
        TRY(require_tile(ins[i], "Inputs to SDPA must be tilized"));
        if (!sdpa_dtype(ins[i]->dtype))
            return FATAL("input_tensor.dtype() == BFLOAT16 || BFLOAT8_B || BFLOAT4_B",
                         "Data type of input tensor %s must be BFLOAT16, BFLOAT8_B or BFLOAT4_B and not %s", names[i],
                         dtype_name(ins[i]->dtype));
        if (ins[i]->rank != 4) return FATAL("rank == 4", "Input tensor %s must be 4-D, got rank %u", names[i], ins[i]->rank);
    }
    TRY(check_opts(o));
    uint32_t B = q->logical[0], Hq = q->logical[1], Sq = q->logical[2], D = q->logical[3];
    uint32_t Hkv = k->logical[1], Sk = k->logical[2];
    if (k->logical[0] != B || v->logical[0] != B)
        return FATAL("k_shape[0] == q_shape[0] && v_shape[0] == q_shape[0]", "Batch size must match for Q, K and V");
    if (v->logical[1] != Hkv || v->logical[2] != Sk)
        return FATAL("k_shape == v_shape", "K and V must have the same number of heads and sequence length");
    if (k->logical[3] != D || v->logical[3] != D)
        return FATAL("k_shape[3] == q_shape[3] && v_shape[3] == q_shape[3]", "Head dimension must match for Q, K and V");
    if (Hkv == 0 || Hq % Hkv)
        return FATAL("nqh % nkv == 0", "Number of query heads %u must be a multiple of the number of KV heads %u", Hq, Hkv);
    if (D % TILE)
        return FATAL("q_shape[-1] % TILE_WIDTH == 0", "Padding is not supported on the head_dim dimension (head_dim %u)", D);
    if (is_causal && mask) return FATAL("!(is_causal && attn_mask.has_value())", "attn_mask must be None when is_causal is True");
    if (is_causal && Sq != Sk) return FATAL("q_shape[2] == k_shape[2]", "Causal SDPA requires Q and K to have the same sequence length");
    float* mv = NULL;
    uint32_t mb = 1, mh = 1;
    if (mask) {
        TRY(check_input(mask, "attn_mask", "SDPA"));
        TRY(same_device(q, mask, "SDPA"));
        TRY(require_tile(mask, "Attention mask must be tilized"));
        if (!sdpa_dtype(mask->dtype))
            return FATAL("mask.dtype() == BFLOAT16 || BFLOAT8_B || BFLOAT4_B",
                         "Attention mask must be BFLOAT16, BFLOAT8_B or BFLOAT4_B and not %s", dtype_name(mask->dtype));
        if (mask->buffer != TTM_DRAM) return FATAL("mask.buffer()->buffer_type() == BufferType::DRAM", "Attention mask must be in DRAM");
        if (mask->rank != 4 || mask->logical[2] != Sq || mask->logical[3] != Sk || (mask->logical[0] != 1 && mask->logical[0] != B) ||
            (mask->logical[1] != 1 && mask->logical[1] != Hq)) {
            char s[160];
            shape_str(s, sizeof s, mask->logical, mask->rank);
            return FATAL("mask_shape == [B|1, NQH|1, Sq, Sk]", "Attention mask %s must be [%u or 1, %u or 1, %u, %u]", s, B, Hq, Sq, Sk);
        }
        mb = mask->logical[0];
        mh = mask->logical[1];
        mv = load(mask);
        if (!mv) return OOM();
    }
    if (isnan(scale)) scale = 1.0f / sqrtf((float)D);
    float* qv = load(q);
    float* kv = load(k);
    float* vv = load(v);
    size_t n = (size_t)B * Hq * Sq * D;
    float* ov = malloc((n ? n : 1) * sizeof(float));
    float* row = malloc((Sk ? Sk : 1) * sizeof(float));
    if (!qv || !kv || !vv || !ov || !row) {
        free(qv); free(kv); free(vv); free(ov); free(row); free(mv);
        return OOM();
    }
    uint32_t group = Hq / Hkv;
    for (uint32_t b = 0; b < B; b++)
        for (uint32_t h = 0; h < Hq; h++) {
            uint32_t g = h / group;
            const float* Q = qv + ((size_t)b * Hq + h) * Sq * D;
            const float* K = kv + ((size_t)b * Hkv + g) * Sk * D;
            const float* V = vv + ((size_t)b * Hkv + g) * Sk * D;
            for (uint32_t i = 0; i < Sq; i++) {
                for (uint32_t j = 0; j < Sk; j++) {
                    double acc = 0.0;
                    for (uint32_t d = 0; d < D; d++) acc += (double)Q[(size_t)i * D + d] * (double)K[(size_t)j * D + d];
                    float s = (float)acc * scale;
                    if (mv) {
                        size_t mi = ((((size_t)(mb == 1 ? 0 : b) * mh + (mh == 1 ? 0 : h)) * Sq + i) * Sk) + j;
                        s += mv[mi];
                    }
                    if (is_causal && j > i) s = -INFINITY;
                    row[j] = s;
                }
                softmax_strided(row, Sk, 1, 1);
                for (uint32_t d = 0; d < D; d++) {
                    double acc = 0.0;
                    for (uint32_t j = 0; j < Sk; j++) acc += (double)row[j] * (double)V[(size_t)j * D + d];
                    ov[(((size_t)b * Hq + h) * Sq + i) * D + d] = (float)acc;
                }
            }
        }
    free(qv);
    free(kv);
    free(vv);
    free(mv);
    free(row);
    struct ttm_tensor* t;
    ttm_status st = new_output(q, 4, q->logical, o, q->dtype, &t);
    if (st != TTM_OK) {
        free(ov);
        return st;
    }
    return finish(t, ov, out);
}
