// A native ExecuTorch runner for rebirth, built against the C++ runtime that
// the executorch wheel ships in executorch/lib and executorch/include.
//
// Command line (a superset of ExecuTorch's executor_runner; "--flag value" and
// "--flag=value" both work):
//   --model_path PATH      .pte to run (required)
//   --num_executions N     timed executions (default 1)
//   --warmup W             untimed executions before them (default 0); traced
//   --etdump_path PATH     where the ETDump goes (default model.etdump)
//   --no_etdump            run without the event tracer
//   --cpu_threads N        threadpool size; <= 0 keeps the runtime's default
//   --print_output MODE    none (default), summary (first 10 values) or all
//   --paired_model_path P  a second .pte run alternately with the first, for
//                          comparing two programs side by side in one process:
//                          both warm up, then segments of --paired_segment
//                          executions alternate A B B A ..., the first execution
//                          of each segment untimed ("Switch warm-up"); B's lines
//                          read "Paired warm-up|execution i/T in X ms."
//   --paired_segment K     timed executions per segment (default 1)
//
// Log, one line each, flushed: "Threads: N", "Baseline RSS: B bytes", then the
// load's phases "Program loaded in X ms." (Program::load) and "Method loaded in
// X ms." (load_method: Method::init and the delegates' set-up), then "Model
// loaded in X ms." (the whole load, as ExecuTorch's executor_runner says it),
// "Warm-up|Execution i/T in X ms." per execution, "Model executed successfully
// N time(s) in X ms." and "Peak RSS: B bytes".
//
// Exit codes: 0 ok, 1 ETDump not written, 2 bad command line, 3 the program or
// method failed to load, 4 an execution failed.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/data_loader/file_data_loader.h>
#include <executorch/extension/memory_allocator/malloc_memory_allocator.h>
#include <executorch/runtime/core/error.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/core/hierarchical_allocator.h>
#include <executorch/runtime/executor/memory_manager.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/method_meta.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/runtime.h>

// The wheel has libexecutorch_threadpool.so but not threadpool.h; these are
// the two members of its ThreadPool that the runner calls.
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace {

using executorch::aten::ScalarType;
using executorch::aten::TensorImpl;
using executorch::extension::FileDataLoader;
using executorch::extension::MallocMemoryAllocator;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::HierarchicalAllocator;
using executorch::runtime::MemoryManager;
using executorch::runtime::Method;
using executorch::runtime::MethodMeta;
using executorch::runtime::Program;
using executorch::runtime::Result;
using executorch::runtime::Span;
using executorch::runtime::Tag;
using executorch::runtime::TensorInfo;

constexpr int kExitEtdump = 1;
constexpr int kExitUsage = 2;
constexpr int kExitLoad = 3;
constexpr int kExitRun = 4;

struct Options {
  std::string model_path;
  long num_executions = 1;
  long warmup = 0;
  std::string etdump_path = "model.etdump";
  bool no_etdump = false;
  long cpu_threads = -1;
  std::string print_output = "none";
  std::string paired_model_path;
  long paired_segment = 1;
};

const char kUsage[] =
    "usage: executor_runner --model_path PATH [--num_executions N] "
    "[--warmup W]\n"
    "       [--etdump_path PATH | --no_etdump] [--cpu_threads N]\n"
    "       [--print_output none|summary|all]\n"
    "       [--paired_model_path PATH [--paired_segment K]]\n";

bool ParseLong(const std::string& text, long* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = value;
  return true;
}

bool ParseBool(const std::string& text, bool* out) {
  if (text == "true" || text == "1") {
    *out = true;
  } else if (text == "false" || text == "0") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

// Returns false (after printing why) when the command line is not usable.
bool ParseOptions(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg.rfind("-", 0) != 0) {
      std::fprintf(stderr, "Error: unexpected argument '%s'\n%s", arg.c_str(),
                   kUsage);
      return false;
    }
    arg.erase(0, arg.rfind("--", 0) == 0 ? 2 : 1);  // gflags takes - or --.
    std::string name = arg;
    std::string value;
    bool has_value = false;
    size_t equals = arg.find('=');
    if (equals != std::string::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
      has_value = true;
    }
    if (name == "no_etdump") {
      if (!has_value) {
        options->no_etdump = true;
      } else if (!ParseBool(value, &options->no_etdump)) {
        std::fprintf(stderr, "Error: --no_etdump takes true or false\n");
        return false;
      }
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "Error: --%s needs a value\n%s", name.c_str(),
                     kUsage);
        return false;
      }
      value = argv[++i];
    }
    bool ok = true;
    if (name == "model_path") {
      options->model_path = value;
    } else if (name == "etdump_path") {
      options->etdump_path = value;
    } else if (name == "num_executions") {
      ok = ParseLong(value, &options->num_executions) &&
           options->num_executions >= 0;
    } else if (name == "warmup") {
      ok = ParseLong(value, &options->warmup) && options->warmup >= 0;
    } else if (name == "cpu_threads") {
      ok = ParseLong(value, &options->cpu_threads);
    } else if (name == "paired_model_path") {
      options->paired_model_path = value;
    } else if (name == "paired_segment") {
      ok = ParseLong(value, &options->paired_segment) &&
           options->paired_segment > 0;
    } else if (name == "print_output") {
      options->print_output = value;
      ok = value == "none" || value == "summary" || value == "all";
    } else {
      std::fprintf(stderr, "Error: unknown flag --%s\n%s", name.c_str(),
                   kUsage);
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "Error: bad value '%s' for --%s\n", value.c_str(),
                   name.c_str());
      return false;
    }
  }
  if (options->model_path.empty()) {
    std::fprintf(stderr, "Error: --model_path is required\n%s", kUsage);
    return false;
  }
  return true;
}

// A Vm* field of /proc/self/status in bytes, or 0 where it cannot be read.
uint64_t ProcStatusBytes(const char* field) {
  FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) return 0;
  char line[256];
  size_t field_len = std::strlen(field);
  uint64_t kib = 0;
  while (std::fgets(line, sizeof(line), status) != nullptr) {
    if (std::strncmp(line, field, field_len) == 0 && line[field_len] == ':') {
      kib = std::strtoull(line + field_len + 1, nullptr, 10);
      break;
    }
  }
  std::fclose(status);
  return kib * 1024;
}

// printf to stdout, flushed, so a reader of a pipe sees each line at once.
__attribute__((format(printf, 1, 2))) void Say(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stdout, format, args);
  va_end(args);
  std::fflush(stdout);
}

std::string Lower(const char* text) {
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(c));
  return lower;
}

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

std::string Describe(Error error) {
  char code[16];
  std::snprintf(code, sizeof(code), "0x%" PRIx32,
                static_cast<uint32_t>(error));
  return std::string(code) + " (" + executorch::runtime::to_string(error) + ")";
}

// Writes one element of value 1 of `type` at `out`; false for types torch.ones
// has no plain 1 for (quantized, bit types).
bool WriteOne(ScalarType type, void* out) {
  switch (type) {
    case ScalarType::Byte:
    case ScalarType::Bool:
      *static_cast<uint8_t*>(out) = 1;
      return true;
    case ScalarType::Char:
      *static_cast<int8_t*>(out) = 1;
      return true;
    case ScalarType::Short:
      *static_cast<int16_t*>(out) = 1;
      return true;
    case ScalarType::Int:
      *static_cast<int32_t*>(out) = 1;
      return true;
    case ScalarType::Long:
      *static_cast<int64_t*>(out) = 1;
      return true;
    case ScalarType::Half:
      *static_cast<uint16_t*>(out) = 0x3C00;
      return true;
    case ScalarType::BFloat16:
      *static_cast<uint16_t*>(out) = 0x3F80;
      return true;
    case ScalarType::Float:
      *static_cast<float*>(out) = 1.0f;
      return true;
    case ScalarType::Double:
      *static_cast<double*>(out) = 1.0;
      return true;
    case ScalarType::ComplexFloat:
      static_cast<float*>(out)[0] = 1.0f;
      static_cast<float*>(out)[1] = 0.0f;
      return true;
    case ScalarType::ComplexDouble:
      static_cast<double*>(out)[0] = 1.0;
      static_cast<double*>(out)[1] = 0.0;
      return true;
    default:
      return false;
  }
}

// One input tensor filled with ones, in a buffer the runner owns. set_input
// copies it into the method's planned memory (or points the method at it).
struct InputTensor {
  size_t index;
  std::vector<TensorImpl::SizesType> sizes;
  std::vector<TensorImpl::DimOrderType> dim_order;
  std::vector<TensorImpl::StridesType> strides;
  std::unique_ptr<uint8_t[]> data;
  std::unique_ptr<TensorImpl> impl;
};

Error MakeInputs(const MethodMeta& meta, std::vector<InputTensor>* inputs) {
  for (size_t i = 0; i < meta.num_inputs(); ++i) {
    Result<Tag> tag = meta.input_tag(i);
    if (!tag.ok()) return tag.error();
    if (tag.get() != Tag::Tensor) {
      std::fprintf(stderr, "Error: input %zu is not a tensor\n", i);
      return Error::NotSupported;
    }
    Result<TensorInfo> info = meta.input_tensor_meta(i);
    if (!info.ok()) return info.error();
    InputTensor input;
    input.index = i;
    input.sizes.assign(info->sizes().begin(), info->sizes().end());
    input.dim_order.assign(info->dim_order().begin(), info->dim_order().end());
    size_t dim = input.sizes.size();
    if (input.dim_order.size() != dim) {
      input.dim_order.resize(dim);
      for (size_t d = 0; d < dim; ++d) input.dim_order[d] = d;
    }
    input.strides.assign(dim, 1);  // Contiguous in the given dim order.
    for (size_t k = dim; k-- > 1;) {
      size_t inner = input.dim_order[k], outer = input.dim_order[k - 1];
      input.strides[outer] = input.strides[inner] * input.sizes[inner];
    }
    size_t nbytes = info->nbytes();
    size_t numel = 1;
    for (auto size : input.sizes) numel *= size;
    size_t element = numel == 0 ? 0 : nbytes / numel;
    input.data.reset(new uint8_t[nbytes == 0 ? 1 : nbytes]);
    for (size_t e = 0; e < numel; ++e) {
      if (!WriteOne(info->scalar_type(), input.data.get() + e * element)) {
        std::fprintf(stderr, "Error: input %zu has scalar type %d\n", i,
                     static_cast<int>(info->scalar_type()));
        return Error::NotSupported;
      }
    }
    input.impl = std::make_unique<TensorImpl>(
        info->scalar_type(), dim, input.sizes.data(), input.data.get(),
        input.dim_order.data(), input.strides.data());
    inputs->push_back(std::move(input));
  }
  return Error::Ok;
}

Error SetInputs(Method& method, std::vector<InputTensor>& inputs) {
  for (InputTensor& input : inputs) {
    executorch::aten::Tensor tensor(input.impl.get());
    Error error = method.set_input(EValue(tensor), input.index);
    if (error != Error::Ok) return error;
  }
  return Error::Ok;
}

// Element `i` of a tensor of a plain numeric type as a double; false otherwise.
bool ElementAt(const executorch::aten::Tensor& tensor, size_t i, double* out) {
  const void* data = tensor.const_data_ptr();
  switch (tensor.scalar_type()) {
    case ScalarType::Float: *out = static_cast<const float*>(data)[i]; break;
    case ScalarType::Double: *out = static_cast<const double*>(data)[i]; break;
    case ScalarType::Int: *out = static_cast<const int32_t*>(data)[i]; break;
    case ScalarType::Long: *out = static_cast<const int64_t*>(data)[i]; break;
    case ScalarType::Short: *out = static_cast<const int16_t*>(data)[i]; break;
    case ScalarType::Char: *out = static_cast<const int8_t*>(data)[i]; break;
    case ScalarType::Byte:
    case ScalarType::Bool: *out = static_cast<const uint8_t*>(data)[i]; break;
    default: return false;
  }
  return true;
}

void PrintOutputs(const Method& method, bool all) {
  for (size_t i = 0; i < method.outputs_size(); ++i) {
    const EValue& value = method.get_output(i);
    if (!value.isTensor()) {
      Say("Output %zu: tag %d\n", i, static_cast<int>(value.tag));
      continue;
    }
    executorch::aten::Tensor tensor = value.toTensor();
    std::string line = "Output " + std::to_string(i) + ": dtype " +
                       std::to_string(static_cast<int>(tensor.scalar_type())) +
                       " sizes [";
    for (ssize_t d = 0; d < tensor.dim(); ++d) {
      line += (d ? "," : "") + std::to_string(tensor.size(d));
    }
    line += "]";
    size_t count = all ? tensor.numel() : std::min<size_t>(10, tensor.numel());
    double element = 0;
    char text[32];
    for (size_t e = 0; e < count && ElementAt(tensor, e, &element); ++e) {
      std::snprintf(text, sizeof(text), " %g", element);
      line += text;
    }
    Say("%s\n", line.c_str());
  }
}

// A program loaded for execution: everything its method needs stays alive
// here, and the inputs (ones) are set again before every execution.
struct LoadedModel {
  std::string path;
  std::unique_ptr<FileDataLoader> loader;
  std::unique_ptr<Program> program;
  std::vector<std::unique_ptr<uint8_t[]>> planned_buffers;
  std::vector<Span<uint8_t>> planned_spans;
  std::unique_ptr<HierarchicalAllocator> planned_memory;
  MallocMemoryAllocator method_allocator;
  MallocMemoryAllocator temp_allocator;
  std::unique_ptr<MemoryManager> memory_manager;
  std::unique_ptr<Method> method;
  std::vector<InputTensor> inputs;
};

// The phases of a load: Program::load (the data loader opening the file and
// the program's flatbuffer read and verified) and Program::load_method (the
// method's memory and Method::init, where each delegate sets up: XNNPACK
// builds its runtime and packs its weights).
struct LoadTimes {
  double program_ms = 0.0;
  double method_ms = 0.0;
};

// Prints why and returns false when the program, its method or its inputs
// cannot be made ready.
bool Load(const std::string& path, executorch::etdump::ETDumpGen* etdump,
          LoadedModel* model, LoadTimes* times) {
  model->path = path;
  const char* where = path.c_str();
  auto program_start = std::chrono::steady_clock::now();
  Result<FileDataLoader> loader = FileDataLoader::from(where);
  if (!loader.ok()) {
    std::fprintf(stderr, "Error: opening %s failed: %s\n", where,
                 Describe(loader.error()).c_str());
    return false;
  }
  model->loader = std::make_unique<FileDataLoader>(std::move(loader.get()));
  // Full flatbuffer verification, as the pybindings do: with Minimal, a
  // corrupted .pte can crash the runner instead of failing to load.
  Result<Program> program = Program::load(
      model->loader.get(), Program::Verification::InternalConsistency);
  if (!program.ok()) {
    std::fprintf(stderr, "Error: loading program %s failed: %s\n", where,
                 Describe(program.error()).c_str());
    return false;
  }
  model->program = std::make_unique<Program>(std::move(program.get()));
  times->program_ms = MillisSince(program_start);
  Result<const char*> method_name = model->program->get_method_name(0);
  if (!method_name.ok()) {
    std::fprintf(stderr, "Error: %s has no method: %s\n", where,
                 Describe(method_name.error()).c_str());
    return false;
  }
  Result<MethodMeta> meta = model->program->method_meta(method_name.get());
  if (!meta.ok()) {
    std::fprintf(stderr, "Error: reading method %s failed: %s\n",
                 method_name.get(), Describe(meta.error()).c_str());
    return false;
  }
  // The planned buffers come from the program's memory plan; the method and
  // temp allocators grow on the heap.
  for (size_t i = 0; i < meta->num_memory_planned_buffers(); ++i) {
    Result<int64_t> planned_size = meta->memory_planned_buffer_size(i);
    if (!planned_size.ok()) {
      std::fprintf(stderr, "Error: reading the memory plan of %s failed: %s\n",
                   where, Describe(planned_size.error()).c_str());
      return false;
    }
    size_t size = static_cast<size_t>(planned_size.get());
    model->planned_buffers.emplace_back(new uint8_t[size == 0 ? 1 : size]);
    model->planned_spans.emplace_back(model->planned_buffers.back().get(),
                                      size);
  }
  model->planned_memory = std::make_unique<HierarchicalAllocator>(
      Span<Span<uint8_t>>(model->planned_spans.data(),
                          model->planned_spans.size()));
  model->memory_manager = std::make_unique<MemoryManager>(
      &model->method_allocator, model->planned_memory.get(),
      &model->temp_allocator);
  auto method_start = std::chrono::steady_clock::now();
  Result<Method> method = model->program->load_method(
      method_name.get(), model->memory_manager.get(), etdump);
  times->method_ms = MillisSince(method_start);
  if (!method.ok()) {
    std::fprintf(stderr, "Error: loading method %s of %s failed: %s\n",
                 method_name.get(), where, Describe(method.error()).c_str());
    return false;
  }
  model->method = std::make_unique<Method>(std::move(method.get()));
  Error input_error = MakeInputs(meta.get(), &model->inputs);
  if (input_error == Error::Ok) {
    input_error = SetInputs(*model->method, model->inputs);
  }
  if (input_error != Error::Ok) {
    std::fprintf(stderr, "Error: preparing the inputs of %s failed: %s\n",
                 where, Describe(input_error).c_str());
    return false;
  }
  return true;
}

// One execution, timed; the inputs are set again first (untimed): planned
// memory that held them may have been reused by intermediates.
Error Execute(LoadedModel& model, bool first, double* ms) {
  Error error = first ? Error::Ok : SetInputs(*model.method, model.inputs);
  auto start = std::chrono::steady_clock::now();
  if (error == Error::Ok) error = model.method->execute();
  *ms = MillisSince(start);
  return error;
}

// Writes the ETDump; returns why it could not, or nullptr.
const char* WriteEtdump(executorch::etdump::ETDumpGen& etdump,
                        const std::string& path) {
  executorch::etdump::ETDumpResult result = etdump.get_etdump_data();
  const char* why = result.buf == nullptr ? "no ETDump data" : nullptr;
  FILE* file = why ? nullptr : std::fopen(path.c_str(), "wb");
  if (!why && file == nullptr) why = std::strerror(errno);
  if (!why && std::fwrite(result.buf, 1, result.size, file) != result.size) {
    why = std::strerror(errno);
  }
  if (file != nullptr && std::fclose(file) != 0 && !why) {
    why = std::strerror(errno);
  }
  std::free(result.buf);
  return why;
}

// The paired loop: both warm up, then segments alternate A B B A A B ...
// until each has run --num_executions timed executions. Returns the exit
// status (0 when every execution succeeded).
int RunPaired(const Options& options, LoadedModel& model, LoadedModel& other,
              double* timed_ms) {
  long total = options.warmup + options.num_executions;
  long done[2] = {0, 0};  // Executions so far (warm-ups included) per side.
  auto run = [&](int side, const char* label, bool timed) -> bool {
    LoadedModel& which = side == 0 ? model : other;
    double ms = 0.0;
    Error error = Execute(which, done[side] == 0, &ms);
    if (error != Error::Ok) {
      std::fprintf(stderr, "Error: execution of %s failed: %s\n",
                   which.path.c_str(), Describe(error).c_str());
      return false;
    }
    if (timed) {
      ++done[side];
      if (side == 0) *timed_ms += ms;
    } else if (std::strcmp(label, "Warm-up") == 0) {
      ++done[side];
    }
    Say("%s%s %ld/%ld in %f ms.\n", side == 1 && label[0] != 'S' ? "Paired " : "",
        side == 1 && label[0] != 'S' ? Lower(label).c_str() : label,
        done[side], total, ms);
    return true;
  };
  for (long i = 0; i < options.warmup; ++i) {
    if (!run(0, "Warm-up", false) || !run(1, "Warm-up", false)) return kExitRun;
  }
  for (long segment = 0; done[0] < total || done[1] < total; ++segment) {
    int side = static_cast<int>(((segment + 1) / 2) % 2);  // A B B A A B ...
    if (done[side] >= total) side = 1 - side;
    if (!run(side, "Switch warm-up", false)) return kExitRun;
    for (long k = 0; k < options.paired_segment && done[side] < total; ++k) {
      if (!run(side, "Execution", true)) return kExitRun;
    }
  }
  return 0;
}

}  // namespace
int main(int argc, char** argv) {
  Options options;
  if (!ParseOptions(argc, argv, &options)) return kExitUsage;

  executorch::runtime::runtime_init();
  namespace threadpool = executorch::extension::threadpool;
  if (options.cpu_threads > 0) {
    threadpool::get_threadpool()->_unsafe_reset_threadpool(
        static_cast<uint32_t>(options.cpu_threads));
  }
  Say("Threads: %zu\n", threadpool::get_threadpool()->get_thread_count());
  Say("Baseline RSS: %" PRIu64 " bytes\n", ProcStatusBytes("VmRSS"));

  auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<executorch::etdump::ETDumpGen> etdump;
  if (!options.no_etdump) {
    etdump = std::make_unique<executorch::etdump::ETDumpGen>();
  }
  LoadedModel model;
  LoadTimes times;
  if (!Load(options.model_path, etdump.get(), &model, &times)) return kExitLoad;
  bool paired = !options.paired_model_path.empty();
  LoadedModel other;  // Untraced: the ETDump holds the first program only.
  LoadTimes other_times;
  if (paired && !Load(options.paired_model_path, nullptr, &other, &other_times)) {
    return kExitLoad;
  }
  // The phases of the first program; "Model loaded in" (both phases, the
  // inputs, and the second program when paired) as executor_runner says it.
  Say("Program loaded in %f ms.\n", times.program_ms);
  Say("Method loaded in %f ms.\n", times.method_ms);
  Say("Model loaded in %f ms.\n", MillisSince(load_start));

  long total = options.warmup + options.num_executions;
  double timed_ms = 0.0;
  if (paired) {
    int status = RunPaired(options, model, other, &timed_ms);
    if (status != 0) return status;
  } else {
    for (long i = 1; i <= total; ++i) {
      double ms = 0.0;
      Error error = Execute(model, i == 1, &ms);
      if (error != Error::Ok) {
        std::fprintf(stderr, "Error: execution %ld failed: %s\n", i,
                     Describe(error).c_str());
        return kExitRun;
      }
      bool warmup = i <= options.warmup;
      if (!warmup) timed_ms += ms;
      Say("%s %ld/%ld in %f ms.\n", warmup ? "Warm-up" : "Execution", i, total,
          ms);
    }
  }
  Say("Model executed successfully %ld time(s) in %f ms.\n",
      options.num_executions, timed_ms);
  if (options.print_output != "none" && total > 0) {
    PrintOutputs(*model.method, options.print_output == "all");
  }

  int status = 0;
  if (etdump) {
    const char* why = WriteEtdump(*etdump, options.etdump_path);
    if (why) {
      std::fprintf(stderr, "Error: writing the ETDump to %s failed: %s\n",
                   options.etdump_path.c_str(), why);
      status = kExitEtdump;
    }
  }
  Say("Peak RSS: %" PRIu64 " bytes\n", ProcStatusBytes("VmHWM"));
  return status;
}
