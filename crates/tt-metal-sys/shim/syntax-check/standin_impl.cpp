// The library behind ttnn_stub_all.hpp: a fake device that opens and closes, and a
// TT_FATAL / TT_THROW-formatted exception from every op, so ttm.cpp's catch-and-parse path can run
// without tt-metal. Built by check-real-shim.sh into the stand-in tree's _ttnncpp.so and
// libtt_metal.so. Not used by any real build.
#include <string>

#include "ttnn_stub_all.hpp"

namespace {
[[noreturn]] void raise(const char* op) {
    throw std::runtime_error(std::string("TT_THROW @ ttnn/cpp/ttnn/operations/standin.cpp:7: tt::exception\ninfo:\n") +
                             "stand-in TT-NN has no " + op + "\n");
}
}  // namespace

namespace tt::tt_metal {
MemoryConfig::MemoryConfig() = default;
MemoryConfig::MemoryConfig(TensorMemoryLayout, BufferType) {}
TensorMemoryLayout MemoryConfig::memory_layout() const { return TensorMemoryLayout::INTERLEAVED; }
BufferType MemoryConfig::buffer_type() const { return BufferType::DRAM; }
bool MemoryConfig::is_sharded() const { return false; }
bool MemoryConfig::operator==(const MemoryConfig&) const { return true; }
Shape::Shape(const std::vector<std::uint32_t>&) {}
Shape::Shape(std::initializer_list<std::uint32_t>) {}
std::size_t Shape::rank() const { return 0; }
std::uint32_t Shape::operator[](std::int32_t) const { return 0; }
std::uint64_t Shape::volume() const { return 0; }
PageConfig::PageConfig(Layout) {}
TensorLayout::TensorLayout(DataType, PageConfig, const MemoryConfig&) {}
TensorSpec::TensorSpec(Shape, TensorLayout) {}
IDevice::~IDevice() = default;
tt::ARCH distributed::MeshDevice::arch() const { return tt::ARCH::WORMHOLE_B0; }
CoreCoord distributed::MeshDevice::compute_with_storage_grid_size() const { return {8, 8}; }
Tensor::Tensor() = default;
const Shape& Tensor::logical_shape() const { raise("Tensor::logical_shape"); }
const Shape& Tensor::padded_shape() const { raise("Tensor::padded_shape"); }
DataType Tensor::dtype() const { raise("Tensor::dtype"); }
Layout Tensor::layout() const { raise("Tensor::layout"); }
const MemoryConfig& Tensor::memory_config() const { raise("Tensor::memory_config"); }
StorageType Tensor::storage_type() const { raise("Tensor::storage_type"); }
bool Tensor::is_allocated() const { raise("Tensor::is_allocated"); }
std::uint64_t Tensor::logical_volume() const { raise("Tensor::logical_volume"); }
std::uint64_t Tensor::physical_volume() const { raise("Tensor::physical_volume"); }
std::size_t GetNumAvailableDevices() { return 1; }
void SetRootDir(const std::string& root) {
    if (root == "throw-int") throw 42;  // a non-std exception
    if (root.empty() || root[0] != '/') throw std::invalid_argument("stand-in: the runtime root must be absolute");
}
}  // namespace tt::tt_metal

namespace ttnn {
const MemoryConfig DRAM_MEMORY_CONFIG{TensorMemoryLayout::INTERLEAVED, BufferType::DRAM};
const MemoryConfig L1_MEMORY_CONFIG{TensorMemoryLayout::INTERLEAVED, BufferType::L1};
std::shared_ptr<MeshDevice> open_mesh_device(int device_id, std::size_t, std::size_t, std::size_t) {
    if (device_id != 0)
        throw std::runtime_error("TT_FATAL @ tt_metal/distributed/mesh_device.cpp:42: device_id < num_devices\ninfo:\n"
                                 "stand-in has one device\n");
    return std::make_shared<MeshDevice>();
}
void close_device(tt::tt_metal::IDevice&) {}
void enable_program_cache(tt::tt_metal::IDevice&) {}
void disable_and_clear_program_cache(tt::tt_metal::IDevice&) {}
Tensor to_layout(const Tensor&, Layout, const std::optional<DataType>&, const std::optional<MemoryConfig>&) { raise("to_layout"); }
Tensor typecast(const Tensor&, const DataType&, const std::optional<MemoryConfig>&) { raise("typecast"); }
Tensor to_memory_config(const Tensor&, const MemoryConfig&, const std::optional<DataType>&) { raise("to_memory_config"); }
void deallocate(Tensor&, bool) { raise("deallocate"); }
Tensor linear(const Tensor&, const Tensor&, const std::optional<const Tensor>&, bool, bool,
              const std::optional<const MemoryConfig>&, std::optional<const DataType>,
              const std::optional<const MatmulProgramConfig>&, const std::optional<const Activation>&,
              std::optional<const DeviceComputeKernelConfig>, std::optional<const CoreGrid>) { raise("linear"); }
Tensor matmul(const Tensor&, const Tensor&, bool, bool, const std::optional<const MemoryConfig>&,
              std::optional<const DataType>, const std::optional<const MatmulProgramConfig>&,
              const std::optional<const Activation>&, std::optional<const DeviceComputeKernelConfig>,
              std::optional<const CoreGrid>) { raise("matmul"); }
#define STANDIN_BINARY(name)                                                                                   \
    Tensor name(const Tensor&, const Tensor&, const std::optional<const DataType>&, const std::optional<MemoryConfig>&) { \
        raise(#name);                                                                                          \
    }                                                                                                          \
    Tensor name(const Tensor&, ScalarVariant, const std::optional<const DataType>&, const std::optional<MemoryConfig>&) { \
        raise(#name);                                                                                          \
    }
STANDIN_BINARY(add)
STANDIN_BINARY(subtract)
STANDIN_BINARY(multiply)
Tensor gelu(const Tensor&, bool, const std::optional<MemoryConfig>&) { raise("gelu"); }
Tensor gelu(const Tensor&, operations::unary::GeluVariant, const std::optional<MemoryConfig>&) { raise("gelu"); }
Tensor silu(const Tensor&, const std::optional<MemoryConfig>&) { raise("silu"); }
Tensor exp(const Tensor&, bool, const std::optional<MemoryConfig>&) { raise("exp"); }
Tensor rsqrt(const Tensor&, bool, const std::optional<MemoryConfig>&) { raise("rsqrt"); }
Tensor sqrt(const Tensor&, const std::optional<MemoryConfig>&) { raise("sqrt"); }
Tensor tanh(const Tensor&, const std::optional<MemoryConfig>&) { raise("tanh"); }
Tensor sigmoid(const Tensor&, const std::optional<MemoryConfig>&) { raise("sigmoid"); }
Tensor neg(const Tensor&, const std::optional<MemoryConfig>&) { raise("neg"); }
Tensor reciprocal(const Tensor&, const std::optional<MemoryConfig>&) { raise("reciprocal"); }
Tensor softmax(const Tensor&, int, const std::optional<MemoryConfig>&, std::optional<const DeviceComputeKernelConfig>, bool) {
    raise("softmax");
}
Tensor layer_norm(const Tensor&, float, const std::optional<const Tensor>&, const std::optional<const Tensor>&,
                  const std::optional<const Tensor>&, const std::optional<MemoryConfig>&,
                  const std::optional<const LayerNormProgramConfig>&, std::optional<const DeviceComputeKernelConfig>) {
    raise("layer_norm");
}
Tensor rms_norm(const Tensor&, float, const std::optional<const Tensor>&, const std::optional<const Tensor>&,
                const std::optional<const Tensor>&, const std::optional<MemoryConfig>&,
                const std::optional<const LayerNormProgramConfig>&, std::optional<const DeviceComputeKernelConfig>) {
    raise("rms_norm");
}
Tensor embedding(const Tensor&, const Tensor&, const std::optional<int>&, const std::optional<Layout>&, EmbeddingsType,
                 std::optional<const DataType>, const std::optional<MemoryConfig>&) {
    raise("embedding");
}
Tensor concat(const std::vector<Tensor>&, int, const std::optional<MemoryConfig>&) { raise("concat"); }
Tensor reshape(const Tensor&, const Shape&, const std::optional<MemoryConfig>&) { raise("reshape"); }
Tensor permute(const Tensor&, const SmallVector<std::int64_t>&, const std::optional<MemoryConfig>&) { raise("permute"); }
namespace experimental {
Tensor rotary_embedding(const Tensor&, const Tensor&, const Tensor&, std::optional<std::uint32_t>,
                        const std::optional<MemoryConfig>&, std::optional<const DeviceComputeKernelConfig>) {
    raise("rotary_embedding");
}
}  // namespace experimental
namespace transformer {
Tensor scaled_dot_product_attention(const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&, bool,
                                    std::optional<float>, std::optional<std::uint32_t>, const std::optional<MemoryConfig>&,
                                    std::optional<operations::transformer::SDPAProgramConfig>,
                                    std::optional<DeviceComputeKernelConfig>) {
    raise("scaled_dot_product_attention");
}
}  // namespace transformer
}  // namespace ttnn
