// The real implementation of ttm.h over TT-NN's C++ API (C++20).
//
// Written against the tt-metal release named in the crate README (see TTNN_CPP_API.md for the
// signatures relied on). Rules followed throughout:
//   * only the leading arguments of each TT-NN call are passed; defaults fill the rest, so
//     trailing parameters added by later releases do not break the build;
//   * every ttm_* entry point runs its body inside `guarded`, which turns TT_FATAL / TT_THROW
//     (std::runtime_error), any other std::exception and non-std exceptions into a status plus
//     the thread-local error record — no exception ever crosses into C or Rust;
//   * ttm enum values are mapped explicitly, never cast.
#include <cxxabi.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include <fmt/format.h>

#include <tt-metalium/host_api.hpp>
#include <ttnn/device.hpp>
#include <ttnn/types.hpp>
#include <ttnn/tensor/tensor.hpp>
#include <ttnn/tensor/types.hpp>
#include <ttnn/operations/core/core.hpp>
#include <ttnn/operations/core/compute_kernel/compute_kernel_config.hpp>
#include <ttnn/operations/copy/typecast/typecast.hpp>
#include <ttnn/operations/matmul/matmul.hpp>
#include <ttnn/operations/eltwise/binary/binary.hpp>
#include <ttnn/operations/eltwise/unary/unary.hpp>
#include <ttnn/operations/normalization/softmax/softmax.hpp>
#include <ttnn/operations/normalization/layernorm/layernorm.hpp>
#include <ttnn/operations/normalization/rmsnorm/rmsnorm.hpp>
#include <ttnn/operations/embedding/embedding.hpp>
#include <ttnn/operations/data_movement/concat/concat.hpp>
#include <ttnn/operations/data_movement/slice/slice.hpp>
#include <ttnn/operations/data_movement/reshape_view/reshape.hpp>
#include <ttnn/operations/data_movement/permute/permute.hpp>
#include <ttnn/operations/experimental/transformer/rotary_embedding/rotary_embedding.hpp>
#include <ttnn/operations/transformer/sdpa/sdpa.hpp>

#include "ttm.h"
#include "ttm_internal.h"

#ifndef TTM_TT_METAL_HOME
#define TTM_TT_METAL_HOME "unknown"
#endif
#ifndef TTM_TT_METAL_COMMIT
#define TTM_TT_METAL_COMMIT "unknown"
#endif
#ifndef TTM_TT_METAL_PINNED
#define TTM_TT_METAL_PINNED "unknown"
#endif
#ifndef TTM_HAVE_GELU_VARIANT
#define TTM_HAVE_GELU_VARIANT 0
#endif

struct ttm_tensor;

struct ttm_device {
    std::shared_ptr<ttnn::MeshDevice> mesh;
    int32_t id = 0;
    std::set<ttm_tensor*> tensors;  // live tensors created on this device
};

struct ttm_tensor {
    ttnn::Tensor t;
    ttm_device* dev = nullptr;  // nullptr: host tensor (or orphaned by a forced close)
};

namespace {

// An argument error found by the shim itself (kind "shim").
struct shim_error {
    ttm_status status;
    std::string message;
};

[[noreturn]] void bad(std::string message) { throw shim_error{TTM_E_INVALID_ARG, std::move(message)}; }

std::string demangled(const std::type_info& ti) {
    int st = 0;
    char* name = abi::__cxa_demangle(ti.name(), nullptr, nullptr, &st);
    std::string out = (st == 0 && name) ? name : ti.name();
    std::free(name);
    return out;
}

// Runs `body` with the error record cleared; converts every exception into a status.
template <class F>
ttm_status guarded(const char* function, F&& body) noexcept {
    ttm__begin(function);
    try {
        if (const char* w = ttm__take_injection(function)) throw std::runtime_error(w);
        return body();
    } catch (const shim_error& e) {
        return ttm__fail_shim(e.status, "%s", e.message.c_str());
    } catch (const std::bad_alloc& e) {
        return ttm__fail_what(e.what(), "std::bad_alloc", TTM_E_CXX);
    } catch (const std::exception& e) {
        std::string kind = demangled(typeid(e));
        return ttm__fail_what(e.what(), kind.c_str(), TTM_E_CXX);
    } catch (...) {
        return ttm__fail_what("a non-std C++ exception was thrown", "unknown", TTM_E_UNKNOWN);
    }
}

// Process-wide registry of open devices, for the exit hook (header rule 8 / TTNN_CPP_API §1.3).
std::mutex g_devices_mu;
std::set<ttm_device*> g_devices;
std::atomic<bool> g_exit_hook{false};

void close_leaked_devices() {
    std::lock_guard<std::mutex> lock(g_devices_mu);
    for (ttm_device* d : g_devices) {
        try {
            for (ttm_tensor* t : d->tensors) {
                ttnn::deallocate(t->t, true);
                t->dev = nullptr;
            }
            d->tensors.clear();
            if (d->mesh) ttnn::close_device(*d->mesh);
            d->mesh.reset();
        } catch (...) {
            // Exiting: nothing sensible is left to do with a failure here.
        }
    }
    g_devices.clear();
}

using Fidelity = decltype(ttnn::WormholeComputeKernelConfig{}.math_fidelity);

std::optional<ttnn::DataType> dtype_of(ttm_dtype d) {
    switch (d) {
        case TTM_DTYPE_DEFAULT: return std::nullopt;
        case TTM_BF16: return ttnn::DataType::BFLOAT16;
        case TTM_BFP8_B: return ttnn::DataType::BFLOAT8_B;
        case TTM_BFP4_B: return ttnn::DataType::BFLOAT4_B;
        case TTM_F32: return ttnn::DataType::FLOAT32;
        case TTM_U32: return ttnn::DataType::UINT32;
        case TTM_I32: return ttnn::DataType::INT32;
        case TTM_U16: return ttnn::DataType::UINT16;
        case TTM_U8: return ttnn::DataType::UINT8;
        default: bad(fmt::format("dtype {} is not a ttm_dtype", d));
    }
}

ttm_dtype to_ttm_dtype(ttnn::DataType d) {
    switch (d) {
        case ttnn::DataType::BFLOAT16: return TTM_BF16;
        case ttnn::DataType::BFLOAT8_B: return TTM_BFP8_B;
        case ttnn::DataType::BFLOAT4_B: return TTM_BFP4_B;
        case ttnn::DataType::FLOAT32: return TTM_F32;
        case ttnn::DataType::UINT32: return TTM_U32;
        case ttnn::DataType::INT32: return TTM_I32;
        case ttnn::DataType::UINT16: return TTM_U16;
        case ttnn::DataType::UINT8: return TTM_U8;
        default: return TTM_DTYPE_DEFAULT;
    }
}

ttnn::Layout layout_of(ttm_layout l) {
    switch (l) {
        case TTM_LAYOUT_DEFAULT:
        case TTM_ROW_MAJOR: return ttnn::Layout::ROW_MAJOR;
        case TTM_TILE: return ttnn::Layout::TILE;
        default: bad(fmt::format("layout {} is not a ttm_layout", l));
    }
}

std::optional<ttnn::MemoryConfig> memcfg_of(ttm_buffer b) {
    switch (b) {
        case TTM_BUF_DEFAULT: return std::nullopt;
        case TTM_DRAM: return ttnn::DRAM_MEMORY_CONFIG;
        case TTM_L1: return ttnn::L1_MEMORY_CONFIG;
        default: bad(fmt::format("buffer {} is not a ttm_buffer", b));
    }
}

struct Opts {
    std::optional<ttnn::DataType> dtype;
    std::optional<ttnn::MemoryConfig> memcfg;
    std::optional<ttnn::DeviceComputeKernelConfig> compute;
};

Opts opts_of(const ttm_op_opts* o) {
    Opts r;
    if (o == nullptr) return r;
    if (o->struct_size < sizeof(ttm_op_opts)) bad("ttm_op_opts.struct_size is too small");
    r.dtype = dtype_of(o->out_dtype);
    r.memcfg = memcfg_of(o->out_buffer);
    if (const ttm_compute_config* c = o->compute) {
        if (c->struct_size < sizeof(ttm_compute_config)) bad("ttm_compute_config.struct_size is too small");
        // Value-initialise, then assign by field name (what tt-mlir's runtime does).
        ttnn::WormholeComputeKernelConfig k{};
        switch (c->math_fidelity) {
            case TTM_FID_DEFAULT: break;
            case TTM_LOFI: k.math_fidelity = Fidelity::LoFi; break;
            case TTM_HIFI2: k.math_fidelity = Fidelity::HiFi2; break;
            case TTM_HIFI3: k.math_fidelity = Fidelity::HiFi3; break;
            case TTM_HIFI4: k.math_fidelity = Fidelity::HiFi4; break;
            default: bad(fmt::format("math_fidelity {} is not a ttm_fidelity", c->math_fidelity));
        }
        auto tri = [](int8_t v, bool& field, const char* name) {
            if (v < -1 || v > 1) bad(fmt::format("{} must be -1, 0 or 1", name));
            if (v >= 0) field = v != 0;
        };
        tri(c->math_approx_mode, k.math_approx_mode, "math_approx_mode");
        tri(c->fp32_dest_acc_en, k.fp32_dest_acc_en, "fp32_dest_acc_en");
        tri(c->packer_l1_acc, k.packer_l1_acc, "packer_l1_acc");
        tri(c->dst_full_sync_en, k.dst_full_sync_en, "dst_full_sync_en");
        r.compute = k;
    }
    return r;
}

const ttm_tensor* need(const ttm_tensor* t, const char* what) {
    if (t == nullptr) bad(fmt::format("{} is NULL", what));
    return t;
}

std::optional<ttnn::Tensor> maybe(const ttm_tensor* t) {
    if (t == nullptr) return std::nullopt;
    return t->t;
}

// The device of an op's first input (nullptr for host tensors; TT-NN then raises its own error).
ttm_device* device_of(const ttm_tensor* t) { return t->dev; }

ttm_status emit(ttm_device* dev, ttnn::Tensor t, ttm_tensor** out) {
    auto* h = new ttm_tensor{std::move(t), dev};
    if (dev) dev->tensors.insert(h);
    ttm__count(1, +1);
    *out = h;
    return TTM_OK;
}

// Applies out dtype / buffer for calls whose TT-NN form takes neither as a leading argument.
ttnn::Tensor post(ttnn::Tensor t, const Opts& o) {
    if (o.dtype && t.dtype() != *o.dtype) t = ttnn::typecast(t, *o.dtype, o.memcfg);
    if (o.memcfg && t.memory_config() != *o.memcfg) t = ttnn::to_memory_config(t, *o.memcfg, std::nullopt);
    return t;
}

ttnn::Shape shape_of(const uint32_t* dims, size_t rank) {
    if (rank > TTM_MAX_RANK) bad(fmt::format("rank {} exceeds {}", rank, TTM_MAX_RANK));
    if (rank > 0 && dims == nullptr) bad("dims is NULL");
    return ttnn::Shape(std::vector<uint32_t>(dims, dims + rank));
}

size_t volume_of(const uint32_t* dims, size_t rank) {
    size_t v = 1;
    for (size_t i = 0; i < rank; i++) v *= dims[i];
    return v;
}

std::string build_info_text() {
    std::string gelu = TTM_HAVE_GELU_VARIANT ? "gelu_tanh=GeluVariant::TANH"
                                             : "gelu_tanh=fast_and_approximate_mode=true (TT's own approximation)";
    return fmt::format(
        "implementation=tt-metal; abi={}; tt_metal_home={}; tt_metal_commit={}; pinned={}; compiler={}; {}",
        TTM_ABI_VERSION, TTM_TT_METAL_HOME, TTM_TT_METAL_COMMIT, TTM_TT_METAL_PINNED, __VERSION__, gelu);
}

}  // namespace

extern "C" {

// ---- library --------------------------------------------------------------------------------

uint32_t ttm_abi_version(void) { return TTM_ABI_VERSION; }
int32_t ttm_available(void) { return 1; }
const char* ttm_implementation(void) { return "tt-metal"; }

const char* ttm_build_info(void) {
    static const std::string text = build_info_text();
    return text.c_str();
}

ttm_status ttm_set_runtime_root(const char* path) {
    return guarded("ttm_set_runtime_root", [&]() -> ttm_status {
        if (path == nullptr) bad("path is NULL");
        tt::tt_metal::SetRootDir(path);
        return TTM_OK;
    });
}

// ---- device -----------------------------------------------------------------------------------

ttm_status ttm_device_count(uint32_t* out) {
    return guarded("ttm_device_count", [&]() -> ttm_status {
        if (out == nullptr) bad("out is NULL");
        *out = static_cast<uint32_t>(tt::tt_metal::GetNumAvailableDevices());
        return TTM_OK;
    });
}

static std::shared_ptr<ttnn::MeshDevice> open_mesh(int32_t id, const ttm_device_options* o) {
    using namespace ttnn;  // for the DEFAULT_* sizes, wherever the tree declares them
    if (o == nullptr || (o->l1_small_size == 0 && o->trace_region_size == 0 && o->num_cqs == 0))
        return ttnn::open_mesh_device(id);
    size_t l1 = o->l1_small_size ? o->l1_small_size : DEFAULT_L1_SMALL_SIZE;
    size_t trace = o->trace_region_size ? o->trace_region_size : DEFAULT_TRACE_REGION_SIZE;
    size_t cqs = o->num_cqs ? o->num_cqs : 1;
    return ttnn::open_mesh_device(id, l1, trace, cqs);
}

ttm_status ttm_device_open(int32_t device_id, const ttm_device_options* opts, ttm_device** out) {
    if (out) *out = nullptr;
    return guarded("ttm_device_open", [&]() -> ttm_status {
        if (out == nullptr) bad("out is NULL");
        if (opts && opts->struct_size < sizeof(ttm_device_options)) bad("ttm_device_options.struct_size is too small");
        if (opts && (opts->program_cache < -1 || opts->program_cache > 1)) bad("program_cache must be -1, 0 or 1");
        auto dev = std::make_unique<ttm_device>();
        dev->id = device_id;
        dev->mesh = open_mesh(device_id, opts);
        if (!dev->mesh) bad("open_mesh_device returned no device");
        if (opts && opts->program_cache == 0)
            ttnn::disable_and_clear_program_cache(*dev->mesh);
        else
            ttnn::enable_program_cache(*dev->mesh);
        {
            std::lock_guard<std::mutex> lock(g_devices_mu);
            g_devices.insert(dev.get());
        }
        if (!g_exit_hook.exchange(true)) std::atexit(close_leaked_devices);
        ttm__count(0, +1);
        *out = dev.release();
        return TTM_OK;
    });
}

ttm_status ttm_device_close(ttm_device* dev, int32_t force) {
    return guarded("ttm_device_close", [&]() -> ttm_status {
        if (dev == nullptr) bad("device is NULL");
        if (!dev->tensors.empty() && !force)
            throw shim_error{TTM_E_BUSY, fmt::format("device {} still has {} live tensor(s); free them or close "
                                                     "with force",
                                                     dev->id, dev->tensors.size())};
        for (ttm_tensor* t : dev->tensors) {
            ttnn::deallocate(t->t, true);
            t->dev = nullptr;
        }
        dev->tensors.clear();
        {
            std::lock_guard<std::mutex> lock(g_devices_mu);
            g_devices.erase(dev);
        }
        if (dev->mesh) ttnn::close_device(*dev->mesh);
        dev->mesh.reset();
        delete dev;
        ttm__count(0, -1);
        return TTM_OK;
    });
}

ttm_status ttm_device_describe(const ttm_device* dev, char* buf, size_t cap, size_t* needed) {
    return guarded("ttm_device_describe", [&]() -> ttm_status {
        if (dev == nullptr || !dev->mesh) bad("device is NULL or closed");
        auto grid = dev->mesh->compute_with_storage_grid_size();
        std::string text = fmt::format("device {}: arch={}, compute grid {}x{}, {} live tensor(s)", dev->id,
                                       dev->mesh->arch(), grid.x, grid.y, dev->tensors.size());
        return ttm__copy_out(text.c_str(), buf, cap, needed);
    });
}

// ---- tensors ------------------------------------------------------------------------------------

ttm_status ttm_tensor_from_f32(ttm_device* dev, const float* data, size_t count, const uint32_t* dims, size_t rank,
                               ttm_dtype dtype, ttm_layout layout, ttm_buffer buffer, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_tensor_from_f32", [&]() -> ttm_status {
        if (out == nullptr) bad("out is NULL");
        if (count > 0 && data == nullptr) bad("data is NULL");
        ttnn::Shape shape = shape_of(dims, rank);
        if (volume_of(dims, rank) != count)
            bad(fmt::format("count {} does not equal the product of dims ({})", count, volume_of(dims, rank)));
        auto dt = dtype_of(dtype).value_or(ttnn::DataType::FLOAT32);
        auto mem = memcfg_of(buffer).value_or(ttnn::DRAM_MEMORY_CONFIG);
        ttnn::TensorSpec spec(
            shape, tt::tt_metal::TensorLayout(dt, tt::tt_metal::PageConfig(layout_of(layout)), mem));
        std::vector<float> v(data, data + count);
        ttnn::Tensor t = ttnn::Tensor::from_vector<float>(std::move(v), spec, dev ? dev->mesh.get() : nullptr);
        return emit(dev, std::move(t), out);
    });
}

ttm_status ttm_tensor_from_u32(ttm_device* dev, const uint32_t* data, size_t count, const uint32_t* dims, size_t rank,
                               ttm_layout layout, ttm_buffer buffer, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_tensor_from_u32", [&]() -> ttm_status {
        if (out == nullptr) bad("out is NULL");
        if (count > 0 && data == nullptr) bad("data is NULL");
        ttnn::Shape shape = shape_of(dims, rank);
        if (volume_of(dims, rank) != count)
            bad(fmt::format("count {} does not equal the product of dims ({})", count, volume_of(dims, rank)));
        auto mem = memcfg_of(buffer).value_or(ttnn::DRAM_MEMORY_CONFIG);
        ttnn::TensorSpec spec(shape, tt::tt_metal::TensorLayout(ttnn::DataType::UINT32,
                                                               tt::tt_metal::PageConfig(layout_of(layout)), mem));
        std::vector<uint32_t> v(data, data + count);
        ttnn::Tensor t = ttnn::Tensor::from_vector<uint32_t>(std::move(v), spec, dev ? dev->mesh.get() : nullptr);
        return emit(dev, std::move(t), out);
    });
}

ttm_status ttm_tensor_read_f32(const ttm_tensor* t, float* dst, size_t capacity, size_t* written) {
    if (written) *written = 0;
    return guarded("ttm_tensor_read_f32", [&]() -> ttm_status {
        need(t, "tensor");
        size_t n = t->t.logical_volume();
        if (capacity < n)
            throw shim_error{TTM_E_BUFFER_TOO_SMALL, fmt::format("capacity {} < {} elements", capacity, n)};
        if (n > 0 && dst == nullptr) bad("dst is NULL");
        if (t->t.storage_type() == tt::tt_metal::StorageType::DEVICE && !t->t.is_allocated())
            bad("the tensor's device buffer has been deallocated");
        ttnn::DataType dt = t->t.dtype();
        if (dt == ttnn::DataType::UINT32) {
            std::vector<uint32_t> v = t->t.to_vector<uint32_t>();
            for (size_t i = 0; i < v.size() && i < n; i++) dst[i] = static_cast<float>(v[i]);
        } else if (dt == ttnn::DataType::INT32) {
            std::vector<int32_t> v = t->t.to_vector<int32_t>();
            for (size_t i = 0; i < v.size() && i < n; i++) dst[i] = static_cast<float>(v[i]);
        } else {
            std::vector<float> v = t->t.to_vector<float>();
            std::memcpy(dst, v.data(), std::min(v.size(), n) * sizeof(float));
        }
        if (written) *written = n;
        return TTM_OK;
    });
}

ttm_status ttm_tensor_get_info(const ttm_tensor* t, ttm_tensor_info* out) {
    return guarded("ttm_tensor_get_info", [&]() -> ttm_status {
        need(t, "tensor");
        if (out == nullptr) bad("out is NULL");
        if (out->struct_size < sizeof(ttm_tensor_info)) bad("ttm_tensor_info.struct_size is too small");
        uint32_t size = out->struct_size;
        std::memset(out, 0, sizeof *out);
        out->struct_size = size;
        const auto& logical = t->t.logical_shape();
        const auto& padded = t->t.padded_shape();
        size_t rank = logical.rank();
        if (rank > TTM_MAX_RANK) bad(fmt::format("tensor rank {} exceeds {}", rank, TTM_MAX_RANK));
        out->rank = static_cast<uint32_t>(rank);
        for (size_t i = 0; i < rank; i++) {
            out->logical[i] = logical[i];
            out->padded[i] = i < padded.rank() ? padded[i] : logical[i];
        }
        out->dtype = to_ttm_dtype(t->t.dtype());
        out->layout = t->t.layout() == ttnn::Layout::TILE ? TTM_TILE : TTM_ROW_MAJOR;
        bool on_device = t->t.storage_type() == tt::tt_metal::StorageType::DEVICE;
        out->on_device = on_device;
        out->allocated = on_device ? t->t.is_allocated() : 1;
        out->physical_volume = t->t.physical_volume();
        if (on_device) {
            const auto& mc = t->t.memory_config();
            out->sharded = mc.is_sharded();
            out->buffer = mc.buffer_type() == ttnn::BufferType::L1 ? TTM_L1 : TTM_DRAM;
            switch (mc.memory_layout()) {
                case ttnn::TensorMemoryLayout::INTERLEAVED: out->mem_layout = TTM_INTERLEAVED; break;
                case ttnn::TensorMemoryLayout::HEIGHT_SHARDED: out->mem_layout = TTM_HEIGHT_SHARDED; break;
                case ttnn::TensorMemoryLayout::WIDTH_SHARDED: out->mem_layout = TTM_WIDTH_SHARDED; break;
                case ttnn::TensorMemoryLayout::BLOCK_SHARDED: out->mem_layout = TTM_BLOCK_SHARDED; break;
                default: out->mem_layout = TTM_ND_SHARDED; break;
            }
        }
        return TTM_OK;
    });
}

ttm_status ttm_tensor_describe(const ttm_tensor* t, char* buf, size_t cap, size_t* needed) {
    return guarded("ttm_tensor_describe", [&]() -> ttm_status {
        need(t, "tensor");
        std::string mem = t->t.storage_type() == tt::tt_metal::StorageType::DEVICE
                              ? fmt::format("{}", t->t.memory_config())
                              : std::string("std::nullopt");
        std::string text = fmt::format("Tensor(logical_shape={}, padded_shape={}, dtype={}, layout={}, memory_config={})",
                                       t->t.logical_shape(), t->t.padded_shape(), t->t.dtype(), t->t.layout(), mem);
        return ttm__copy_out(text.c_str(), buf, cap, needed);
    });
}

ttm_status ttm_tensor_deallocate(ttm_tensor* t, int32_t force) {
    return guarded("ttm_tensor_deallocate", [&]() -> ttm_status {
        if (t == nullptr) bad("tensor is NULL");
        ttnn::deallocate(t->t, force != 0);
        return TTM_OK;
    });
}

void ttm_tensor_free(ttm_tensor* t) {
    if (t == nullptr) return;
    try {
        if (t->dev) t->dev->tensors.erase(t);
        delete t;  // the ttnn::Tensor destructor releases the device buffer
    } catch (...) {
        // A destructor that throws cannot be reported through a void function; the handle is
        // gone either way and the live counter below still balances.
    }
    ttm__count(1, -1);
}

// ---- layout / placement ---------------------------------------------------------------------------

ttm_status ttm_to_layout(const ttm_tensor* t, ttm_layout layout, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_to_layout", [&]() -> ttm_status {
        need(t, "tensor");
        if (out == nullptr) bad("out is NULL");
        if (layout != TTM_ROW_MAJOR && layout != TTM_TILE) bad("layout must be ROW_MAJOR or TILE");
        Opts op = opts_of(o);
        return emit(device_of(t), ttnn::to_layout(t->t, layout_of(layout), op.dtype, op.memcfg), out);
    });
}

ttm_status ttm_typecast(const ttm_tensor* t, ttm_dtype dtype, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_typecast", [&]() -> ttm_status {
        need(t, "tensor");
        if (out == nullptr) bad("out is NULL");
        auto dt = dtype_of(dtype);
        if (!dt) bad("typecast needs a dtype");
        Opts op = opts_of(o);
        return emit(device_of(t), ttnn::typecast(t->t, *dt, op.memcfg), out);
    });
}

ttm_status ttm_to_buffer(const ttm_tensor* t, ttm_buffer buffer, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_to_buffer", [&]() -> ttm_status {
        need(t, "tensor");
        if (out == nullptr) bad("out is NULL");
        auto mc = memcfg_of(buffer);
        if (!mc) bad("to_buffer needs DRAM or L1");
        return emit(device_of(t), ttnn::to_memory_config(t->t, *mc, std::nullopt), out);
    });
}

// ---- ops ------------------------------------------------------------------------------------------

ttm_status ttm_linear(const ttm_tensor* a, const ttm_tensor* w, const ttm_tensor* bias, int32_t transpose_a,
                      int32_t transpose_b, const char* activation, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_linear", [&]() -> ttm_status {
        need(a, "input_tensor_a");
        need(w, "input_tensor_b");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        std::optional<std::string> act;
        if (activation) act = std::string(activation);
        ttnn::Tensor r = ttnn::linear(a->t, w->t, maybe(bias), transpose_a != 0, transpose_b != 0, op.memcfg, op.dtype,
                                      std::nullopt, act, op.compute);
        return emit(device_of(a), std::move(r), out);
    });
}

ttm_status ttm_matmul(const ttm_tensor* a, const ttm_tensor* b, int32_t transpose_a, int32_t transpose_b,
                      const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_matmul", [&]() -> ttm_status {
        need(a, "input_tensor_a");
        need(b, "input_tensor_b");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::matmul(a->t, b->t, transpose_a != 0, transpose_b != 0, op.memcfg, op.dtype, std::nullopt,
                                      std::nullopt, op.compute);
        return emit(device_of(a), std::move(r), out);
    });
}

ttm_status ttm_binary(ttm_binary_op kind, const ttm_tensor* a, const ttm_tensor* b, const ttm_op_opts* o,
                      ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_binary", [&]() -> ttm_status {
        need(a, "input_tensor_a");
        need(b, "input_tensor_b");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        ttnn::Tensor r;
        switch (kind) {
            case TTM_ADD: r = ttnn::add(a->t, b->t, op.dtype, op.memcfg); break;
            case TTM_SUB: r = ttnn::subtract(a->t, b->t, op.dtype, op.memcfg); break;
            case TTM_MUL: r = ttnn::multiply(a->t, b->t, op.dtype, op.memcfg); break;
            default: bad(fmt::format("op {} is not a ttm_binary_op", kind));
        }
        return emit(device_of(a), std::move(r), out);
    });
}

ttm_status ttm_binary_scalar(ttm_binary_op kind, const ttm_tensor* a, float scalar, const ttm_op_opts* o,
                             ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_binary_scalar", [&]() -> ttm_status {
        need(a, "input_tensor_a");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        ttnn::Tensor r;
        switch (kind) {
            case TTM_ADD: r = ttnn::add(a->t, scalar, op.dtype, op.memcfg); break;
            case TTM_SUB: r = ttnn::subtract(a->t, scalar, op.dtype, op.memcfg); break;
            case TTM_MUL: r = ttnn::multiply(a->t, scalar, op.dtype, op.memcfg); break;
            default: bad(fmt::format("op {} is not a ttm_binary_op", kind));
        }
        return emit(device_of(a), std::move(r), out);
    });
}

ttm_status ttm_unary(ttm_unary_op kind, const ttm_tensor* a, int32_t fast_approx, const ttm_op_opts* o,
                     ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_unary", [&]() -> ttm_status {
        need(a, "input_tensor");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        bool fast = fast_approx != 0;
        ttnn::Tensor r;
        switch (kind) {
            case TTM_GELU: r = ttnn::gelu(a->t, fast, op.memcfg); break;
            case TTM_GELU_TANH:
#if TTM_HAVE_GELU_VARIANT
                r = ttnn::gelu(a->t, ttnn::operations::unary::GeluVariant::TANH, op.memcfg);
#else
                r = ttnn::gelu(a->t, true, op.memcfg);
#endif
                break;
            case TTM_SILU: r = ttnn::silu(a->t, op.memcfg); break;
            case TTM_EXP: r = ttnn::exp(a->t, fast, op.memcfg); break;
            case TTM_RSQRT: r = ttnn::rsqrt(a->t, fast, op.memcfg); break;
            case TTM_SQRT: r = ttnn::sqrt(a->t); break;
            case TTM_TANH: r = ttnn::tanh(a->t); break;
            case TTM_SIGMOID: r = ttnn::sigmoid(a->t); break;
            case TTM_NEG: r = ttnn::neg(a->t); break;
            case TTM_RECIP: r = ttnn::reciprocal(a->t); break;
            default: bad(fmt::format("op {} is not a ttm_unary_op", kind));
        }
        return emit(device_of(a), post(std::move(r), op), out);
    });
}

ttm_status ttm_softmax(const ttm_tensor* a, int32_t dim, int32_t numeric_stable, const ttm_op_opts* o,
                       ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_softmax", [&]() -> ttm_status {
        need(a, "input_tensor");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::softmax(a->t, dim, op.memcfg, op.compute, numeric_stable != 0);
        Opts dtype_only{op.dtype, std::nullopt, std::nullopt};
        return emit(device_of(a), post(std::move(r), dtype_only), out);
    });
}

ttm_status ttm_layer_norm(const ttm_tensor* a, float eps, const ttm_tensor* weight, const ttm_tensor* bias,
                          const ttm_tensor* residual, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_layer_norm", [&]() -> ttm_status {
        need(a, "input_tensor");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::layer_norm(a->t, eps, maybe(weight), maybe(bias), maybe(residual), op.memcfg,
                                          std::nullopt, op.compute);
        Opts dtype_only{op.dtype, std::nullopt, std::nullopt};
        return emit(device_of(a), post(std::move(r), dtype_only), out);
    });
}

ttm_status ttm_rms_norm(const ttm_tensor* a, float eps, const ttm_tensor* weight, const ttm_tensor* bias,
                        const ttm_tensor* residual, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_rms_norm", [&]() -> ttm_status {
        need(a, "input_tensor");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::rms_norm(a->t, eps, maybe(weight), maybe(bias), maybe(residual), op.memcfg,
                                        std::nullopt, op.compute);
        Opts dtype_only{op.dtype, std::nullopt, std::nullopt};
        return emit(device_of(a), post(std::move(r), dtype_only), out);
    });
}

ttm_status ttm_embedding(const ttm_tensor* indices, const ttm_tensor* weight, ttm_layout out_layout,
                         const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_embedding", [&]() -> ttm_status {
        need(indices, "input_tensor");
        need(weight, "weight");
        if (out == nullptr) bad("out is NULL");
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::embedding(indices->t, weight->t, std::nullopt, layout_of(out_layout));
        return emit(device_of(indices), post(std::move(r), op), out);
    });
}

ttm_status ttm_concat(const ttm_tensor* const* inputs, size_t n, int32_t dim, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_concat", [&]() -> ttm_status {
        if (inputs == nullptr || n == 0) bad("concat needs at least one input");
        if (out == nullptr) bad("out is NULL");
        std::vector<ttnn::Tensor> ts;
        ts.reserve(n);
        for (size_t i = 0; i < n; i++) ts.push_back(need(inputs[i], "input")->t);
        Opts op = opts_of(o);
        return emit(device_of(inputs[0]), ttnn::concat(ts, dim, op.memcfg), out);
    });
}

ttm_status ttm_slice(const ttm_tensor* a, const int32_t* begins, const int32_t* ends, const int32_t* steps, size_t rank,
                     const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_slice", [&]() -> ttm_status {
        need(a, "input_tensor");
        if (out == nullptr) bad("out is NULL");
        if (begins == nullptr || ends == nullptr) bad("begins/ends is NULL");
        if (rank > TTM_MAX_RANK) bad("rank exceeds TTM_MAX_RANK");
        std::vector<int32_t> b(begins, begins + rank), e(ends, ends + rank), s(rank, 1);
        if (steps) s.assign(steps, steps + rank);
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::slice(a->t, ttsl::Span<const int32_t>(b.data(), b.size()),
                                     ttsl::Span<const int32_t>(e.data(), e.size()),
                                     ttsl::Span<const int32_t>(s.data(), s.size()), op.memcfg);
        return emit(device_of(a), std::move(r), out);
    });
}

ttm_status ttm_reshape(const ttm_tensor* a, const int32_t* dims, size_t rank, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_reshape", [&]() -> ttm_status {
        need(a, "input_tensor");
        if (out == nullptr) bad("out is NULL");
        if (rank > TTM_MAX_RANK) bad("rank exceeds TTM_MAX_RANK");
        if (rank > 0 && dims == nullptr) bad("dims is NULL");
        std::vector<uint32_t> d(rank);
        int infer = -1;
        uint64_t known = 1;
        for (size_t i = 0; i < rank; i++) {
            if (dims[i] == -1) {
                if (infer >= 0) bad("only one reshape dim can be -1");
                infer = static_cast<int>(i);
            } else if (dims[i] < 0) {
                bad(fmt::format("invalid reshape dim {}", dims[i]));
            } else {
                d[i] = static_cast<uint32_t>(dims[i]);
                known *= d[i];
            }
        }
        if (infer >= 0) {
            uint64_t vol = a->t.logical_volume();
            if (known == 0 || vol % known) bad("cannot infer the -1 reshape dim");
            d[infer] = static_cast<uint32_t>(vol / known);
        }
        Opts op = opts_of(o);
        return emit(device_of(a), ttnn::reshape(a->t, ttnn::Shape(d), op.memcfg), out);
    });
}

ttm_status ttm_permute(const ttm_tensor* a, const int64_t* perm, size_t rank, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_permute", [&]() -> ttm_status {
        need(a, "input_tensor");
        if (out == nullptr) bad("out is NULL");
        if (rank > 0 && perm == nullptr) bad("perm is NULL");
        ttnn::SmallVector<int64_t> p(perm, perm + rank);
        Opts op = opts_of(o);
        return emit(device_of(a), ttnn::permute(a->t, p, op.memcfg), out);
    });
}

ttm_status ttm_rotary_embedding(const ttm_tensor* x, const ttm_tensor* cos, const ttm_tensor* sin,
                                int64_t token_index, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_rotary_embedding", [&]() -> ttm_status {
        need(x, "input_tensor");
        need(cos, "cos");
        need(sin, "sin");
        if (out == nullptr) bad("out is NULL");
        std::optional<uint32_t> tok;
        if (token_index >= 0) tok = static_cast<uint32_t>(token_index);
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::experimental::rotary_embedding(x->t, cos->t, sin->t, tok, op.memcfg, op.compute);
        Opts dtype_only{op.dtype, std::nullopt, std::nullopt};
        return emit(device_of(x), post(std::move(r), dtype_only), out);
    });
}

ttm_status ttm_sdpa(const ttm_tensor* q, const ttm_tensor* k, const ttm_tensor* v, const ttm_tensor* mask,
                    int32_t is_causal, float scale, const ttm_op_opts* o, ttm_tensor** out) {
    if (out) *out = nullptr;
    return guarded("ttm_sdpa", [&]() -> ttm_status {
        need(q, "q");
        need(k, "k");
        need(v, "v");
        if (out == nullptr) bad("out is NULL");
        std::optional<float> sc;
        if (!std::isnan(scale)) sc = scale;
        Opts op = opts_of(o);
        ttnn::Tensor r = ttnn::transformer::scaled_dot_product_attention(
            q->t, k->t, v->t, maybe(mask), is_causal != 0, sc, std::nullopt, op.memcfg, std::nullopt, op.compute);
        Opts dtype_only{op.dtype, std::nullopt, std::nullopt};
        return emit(device_of(q), post(std::move(r), dtype_only), out);
    });
}

}  // extern "C"
