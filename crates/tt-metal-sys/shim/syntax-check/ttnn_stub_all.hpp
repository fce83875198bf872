// Stand-ins for the TT-NN API surface ttm.cpp uses, transcribed from the signatures in
// TTNN_CPP_API.md §1 (pinned tree), with standin_impl.cpp as a library behind them that opens a
// fake device and raises TT_FATAL / TT_THROW-formatted errors for everything else.
//
// They exist so ttm.cpp can be compiled, linked and its error paths run without a tt-metal
// checkout (check-cpp-syntax.sh, check-real-shim.sh). Passing those checks means: ttm.cpp is valid
// C++20, consistent with *these* declarations, builds through build.rs's `tt` path, and turns
// exceptions into statuses and parsed error records. It does not prove the real headers match
// these declarations, and no TT-NN code runs — only a build against a real tree shows that.
#pragma once
#include <stdexcept>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace ttsl {
template <class T>
struct Span {
    Span(T* p, std::size_t n) : p_(p), n_(n) {}
    T* data() const { return p_; }
    std::size_t size() const { return n_; }

private:
    T* p_;
    std::size_t n_;
};
template <class T>
using SmallVector = std::vector<T>;
}  // namespace ttsl
namespace tt {
namespace stl = ::ttsl;
enum class ARCH { GRAYSKULL, WORMHOLE_B0, BLACKHOLE };
}  // namespace tt

enum class MathFidelity : std::uint8_t { LoFi = 0, HiFi2 = 2, HiFi3 = 3, HiFi4 = 4, Invalid = 0xff };

namespace tt::tt_metal {
enum class DataType { BFLOAT16 = 0, FLOAT32 = 1, UINT32 = 2, BFLOAT8_B = 3, BFLOAT4_B = 4, UINT8 = 5, UINT16 = 6, INT32 = 7, INVALID = 8 };
enum class Layout { ROW_MAJOR = 0, TILE = 1, INVALID = 2 };
enum class StorageType { HOST = 0, DEVICE = 1 };
enum class BufferType { DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE };
enum class TensorMemoryLayout { INTERLEAVED, HEIGHT_SHARDED, WIDTH_SHARDED, BLOCK_SHARDED };
class MemoryConfig {
public:
    MemoryConfig();
    MemoryConfig(TensorMemoryLayout, BufferType);
    TensorMemoryLayout memory_layout() const;
    BufferType buffer_type() const;
    bool is_sharded() const;
    bool operator==(const MemoryConfig&) const;
};
class Shape {
public:
    explicit Shape(const std::vector<std::uint32_t>&);
    Shape(std::initializer_list<std::uint32_t>);
    std::size_t rank() const;
    std::uint32_t operator[](std::int32_t) const;
    std::uint64_t volume() const;
};
class PageConfig {
public:
    explicit PageConfig(Layout);
};
class TensorLayout {
public:
    TensorLayout(DataType, PageConfig, const MemoryConfig&);
};
class TensorSpec {
public:
    TensorSpec(Shape, TensorLayout);
};
struct CoreCoord {
    std::size_t x, y;
};
class IDevice {
public:
    virtual ~IDevice();
};
namespace distributed {
class MeshDevice : public IDevice {
public:
    tt::ARCH arch() const;
    CoreCoord compute_with_storage_grid_size() const;
};
}  // namespace distributed
class Tensor {
public:
    Tensor();
    template <class T>
    static Tensor from_vector(std::vector<T>&& buffer, const TensorSpec& spec, distributed::MeshDevice* device = nullptr) {
        (void)buffer, (void)spec;
        // Device tensors are empty handles whose every accessor raises; host tensors are refused.
        if (device != nullptr) return Tensor{};
        throw std::runtime_error(
            "TT_FATAL @ ttnn/api/ttnn/tensor/tensor.cpp:123: device != nullptr\ninfo:\n"
            "stand-in TT-NN makes device tensors only\nbacktrace:\n --- tt::tt_metal::Tensor::from_vector\n");
    }
    template <class T>
    std::vector<T> to_vector() const {
        throw std::runtime_error("TT_THROW @ ttnn/api/ttnn/tensor/tensor.cpp:200: tt::exception\ninfo:\nstand-in\n");
    }
    const Shape& logical_shape() const;
    const Shape& padded_shape() const;
    DataType dtype() const;
    Layout layout() const;
    const MemoryConfig& memory_config() const;
    StorageType storage_type() const;
    bool is_allocated() const;
    std::uint64_t logical_volume() const;
    std::uint64_t physical_volume() const;
};
std::size_t GetNumAvailableDevices();
void SetRootDir(const std::string& root_dir);
}  // namespace tt::tt_metal

namespace ttnn {
using Tensor = tt::tt_metal::Tensor;
using TensorSpec = tt::tt_metal::TensorSpec;
using Shape = tt::tt_metal::Shape;
using DataType = tt::tt_metal::DataType;
using Layout = tt::tt_metal::Layout;
using MemoryConfig = tt::tt_metal::MemoryConfig;
using BufferType = tt::tt_metal::BufferType;
using TensorMemoryLayout = tt::tt_metal::TensorMemoryLayout;
using MeshDevice = tt::tt_metal::distributed::MeshDevice;
template <class T>
using SmallVector = ttsl::SmallVector<T>;
extern const MemoryConfig DRAM_MEMORY_CONFIG;
extern const MemoryConfig L1_MEMORY_CONFIG;
constexpr std::size_t DEFAULT_L1_SMALL_SIZE = 0;
constexpr std::size_t DEFAULT_TRACE_REGION_SIZE = 0;

struct ComputeKernelConfig {
    MathFidelity math_fidelity = MathFidelity::LoFi;
    bool math_approx_mode = true;
    bool fp32_dest_acc_en = false;
    bool packer_l1_acc = false;
    bool dst_full_sync_en = false;
};
using DeviceComputeKernelConfig = ComputeKernelConfig;
using WormholeComputeKernelConfig = ComputeKernelConfig;

std::shared_ptr<MeshDevice> open_mesh_device(int device_id, std::size_t l1_small_size = DEFAULT_L1_SMALL_SIZE,
                                             std::size_t trace_region_size = DEFAULT_TRACE_REGION_SIZE,
                                             std::size_t num_command_queues = 1);
void close_device(tt::tt_metal::IDevice& device);
void enable_program_cache(tt::tt_metal::IDevice& device);
void disable_and_clear_program_cache(tt::tt_metal::IDevice& device);

Tensor to_layout(const Tensor&, Layout, const std::optional<DataType>& dtype = std::nullopt,
                 const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor typecast(const Tensor&, const DataType&, const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor to_memory_config(const Tensor&, const MemoryConfig&, const std::optional<DataType>& dtype = std::nullopt);
void deallocate(Tensor& tensor, bool force = true);

namespace operations::unary {
struct UnaryWithParam {};
enum class GeluVariant { ACCURATE, TANH };
}  // namespace operations::unary
using Activation = std::variant<std::string, operations::unary::UnaryWithParam>;
struct MatmulProgramConfig {};
struct CoreGrid {};

Tensor linear(const Tensor& input_tensor_a, const Tensor& input_tensor_b,
              const std::optional<const Tensor>& bias = std::nullopt, bool transpose_a = false,
              bool transpose_b = false, const std::optional<const MemoryConfig>& memory_config = std::nullopt,
              std::optional<const DataType> dtype = std::nullopt,
              const std::optional<const MatmulProgramConfig>& program_config = std::nullopt,
              const std::optional<const Activation>& activation = std::nullopt,
              std::optional<const DeviceComputeKernelConfig> compute_kernel_config = std::nullopt,
              std::optional<const CoreGrid> core_grid = std::nullopt);
Tensor matmul(const Tensor& input_tensor_a, const Tensor& input_tensor_b, bool transpose_a = false,
              bool transpose_b = false, const std::optional<const MemoryConfig>& memory_config = std::nullopt,
              std::optional<const DataType> dtype = std::nullopt,
              const std::optional<const MatmulProgramConfig>& program_config = std::nullopt,
              const std::optional<const Activation>& activation = std::nullopt,
              std::optional<const DeviceComputeKernelConfig> compute_kernel_config = std::nullopt,
              std::optional<const CoreGrid> core_grid = std::nullopt);

using ScalarVariant = std::variant<std::uint32_t, std::int32_t, float>;
#define TTM_STUB_BINARY(name)                                                                       \
    Tensor name(const Tensor& a, const Tensor& b, const std::optional<const DataType>& dtype = std::nullopt, \
                const std::optional<MemoryConfig>& memory_config = std::nullopt);                    \
    Tensor name(const Tensor& a, ScalarVariant b, const std::optional<const DataType>& dtype = std::nullopt, \
                const std::optional<MemoryConfig>& memory_config = std::nullopt);
TTM_STUB_BINARY(add)
TTM_STUB_BINARY(subtract)
TTM_STUB_BINARY(multiply)
#undef TTM_STUB_BINARY

Tensor gelu(const Tensor&, bool fast_and_approximate_mode = false,
            const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor gelu(const Tensor&, operations::unary::GeluVariant variant,
            const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor silu(const Tensor&, const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor exp(const Tensor&, bool fast_and_approximate_mode = false,
           const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor rsqrt(const Tensor&, bool fast_and_approximate_mode = false,
             const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor sqrt(const Tensor&, const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor tanh(const Tensor&, const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor sigmoid(const Tensor&, const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor neg(const Tensor&, const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor reciprocal(const Tensor&, const std::optional<MemoryConfig>& memory_config = std::nullopt);

Tensor softmax(const Tensor&, int dim, const std::optional<MemoryConfig>& memory_config = std::nullopt,
               std::optional<const DeviceComputeKernelConfig> compute_kernel_config = std::nullopt,
               bool numeric_stable = false);
struct LayerNormProgramConfig {};
Tensor layer_norm(const Tensor&, float epsilon, const std::optional<const Tensor>& weight = std::nullopt,
                  const std::optional<const Tensor>& bias = std::nullopt,
                  const std::optional<const Tensor>& residual_input_tensor = std::nullopt,
                  const std::optional<MemoryConfig>& memory_config = std::nullopt,
                  const std::optional<const LayerNormProgramConfig>& program_config = std::nullopt,
                  std::optional<const DeviceComputeKernelConfig> compute_kernel_config = std::nullopt);
Tensor rms_norm(const Tensor&, float epsilon, const std::optional<const Tensor>& weight = std::nullopt,
                const std::optional<const Tensor>& bias = std::nullopt,
                const std::optional<const Tensor>& residual_input_tensor = std::nullopt,
                const std::optional<MemoryConfig>& memory_config = std::nullopt,
                const std::optional<const LayerNormProgramConfig>& program_config = std::nullopt,
                std::optional<const DeviceComputeKernelConfig> compute_kernel_config = std::nullopt);

enum class EmbeddingsType { GENERIC, PADDED, BINARY };
Tensor embedding(const Tensor& input_tensor, const Tensor& weight, const std::optional<int>& pad_token = std::nullopt,
                 const std::optional<Layout>& layout = std::nullopt, EmbeddingsType embeddings_type = EmbeddingsType::GENERIC,
                 std::optional<const DataType> dtype = std::nullopt,
                 const std::optional<MemoryConfig>& memory_config = std::nullopt);

Tensor concat(const std::vector<Tensor>& input_tensors, int dim = 0,
              const std::optional<MemoryConfig>& memory_config = std::nullopt);
template <class T>
Tensor slice(const Tensor& input_tensor, ttsl::Span<const T> begins, ttsl::Span<const T> ends,
             ttsl::Span<const T> step, const std::optional<MemoryConfig>& memory_config = std::nullopt) {
    (void)input_tensor, (void)begins, (void)ends, (void)step, (void)memory_config;
    throw std::runtime_error("TT_THROW @ ttnn/cpp/ttnn/operations/data_movement/slice/slice.cpp:1: tt::exception\ninfo:\nstand-in\n");
}
Tensor reshape(const Tensor& tensor, const Shape& logical_shape,
               const std::optional<MemoryConfig>& memory_config = std::nullopt);
Tensor permute(const Tensor& input_tensor, const SmallVector<std::int64_t>& dims,
               const std::optional<MemoryConfig>& memory_config = std::nullopt);

namespace experimental {
Tensor rotary_embedding(const Tensor& input_tensor, const Tensor& cos_cache, const Tensor& sin_cache,
                        std::optional<std::uint32_t> token_index = std::nullopt,
                        const std::optional<MemoryConfig>& memory_config = std::nullopt,
                        std::optional<const DeviceComputeKernelConfig> compute_kernel_config = std::nullopt);
}  // namespace experimental

namespace operations::transformer {
struct SDPAProgramConfig {};
}  // namespace operations::transformer
namespace transformer {
Tensor scaled_dot_product_attention(const Tensor& input_tensor_q, const Tensor& input_tensor_k,
                                    const Tensor& input_tensor_v,
                                    const std::optional<Tensor>& attn_mask = std::nullopt, bool is_causal = true,
                                    std::optional<float> scale = std::nullopt,
                                    std::optional<std::uint32_t> sliding_window_size = std::nullopt,
                                    const std::optional<MemoryConfig>& memory_config = std::nullopt,
                                    std::optional<operations::transformer::SDPAProgramConfig> program_config = std::nullopt,
                                    std::optional<DeviceComputeKernelConfig> compute_kernel_config = std::nullopt);
}  // namespace transformer
}  // namespace ttnn

namespace fmt {
// The format string itself (no substitution): enough for messages to be non-empty.
template <class... A>
std::string format(const char* f, A&&...) {
    return f;
}
}  // namespace fmt
