#pragma once
// safetensors files (the Hugging Face weight format): a validating,
// memory-mapped reader and an atomic writer.
//
// Format:
//   u64 little-endian   N, the byte length of the header
//   N bytes             a UTF-8 JSON object, padded with spaces:
//                         {"__metadata__": {"format": "pt", ...},   (optional)
//                          "<name>": {"dtype": "F32", "shape": [r, c],
//                                     "data_offsets": [begin, end]}, ...}
//   data section        the tensors' bytes, little-endian, row-major;
//                       offsets are relative to the start of this section
//
// The reader trusts nothing it has not checked: the header length fits the
// file, the header is a JSON object with no repeated name, every entry has
// exactly the three keys with a known dtype, shape x dtype size equals the
// byte range, and the ranges, sorted by offset, tile the data section (no
// overlap, no gap, nothing past the end). Every violation is an nla::Error
// naming the file and the tensor. Tensors are read straight from the mapping
// and converted (F32 / F16 / BF16 / F64 -> the model's scalar type); a NaN or
// infinity in a tensor is an error naming the index.

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "nla/core/bf16.hpp"
#include "nla/core/half.hpp"
#include "nla/io/file.hpp"

namespace nla::io {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this reader assumes a little-endian host");

enum class SafetensorsDtype {
  Bool,
  U8,
  I8,
  F8E5M2,
  F8E4M3,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64
};

struct SafetensorsDtypeInfo {
  SafetensorsDtype dtype;
  const char* name;
  std::uint64_t bytes;
};

inline constexpr SafetensorsDtypeInfo kSafetensorsDtypes[] = {
    {SafetensorsDtype::Bool, "BOOL", 1},      {SafetensorsDtype::U8, "U8", 1},
    {SafetensorsDtype::I8, "I8", 1},          {SafetensorsDtype::F8E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::F8E4M3, "F8_E4M3", 1}, {SafetensorsDtype::I16, "I16", 2},
    {SafetensorsDtype::U16, "U16", 2},        {SafetensorsDtype::F16, "F16", 2},
    {SafetensorsDtype::BF16, "BF16", 2},      {SafetensorsDtype::I32, "I32", 4},
    {SafetensorsDtype::U32, "U32", 4},        {SafetensorsDtype::F32, "F32", 4},
    {SafetensorsDtype::F64, "F64", 8},        {SafetensorsDtype::I64, "I64", 8},
    {SafetensorsDtype::U64, "U64", 8}};

inline const SafetensorsDtypeInfo& dtype_info(SafetensorsDtype d) {
  for (const auto& info : kSafetensorsDtypes)
    if (info.dtype == d) return info;
  NLA_FAIL("safetensors", "unknown dtype enumerator {}", static_cast<int>(d));
}

// The dtype a scalar type is stored as.
template <class T>
constexpr SafetensorsDtype safetensors_dtype_of() {
  if constexpr (std::is_same<T, float>::value)
    return SafetensorsDtype::F32;
  else if constexpr (std::is_same<T, double>::value)
    return SafetensorsDtype::F64;
  else if constexpr (std::is_same<T, bf16>::value)
    return SafetensorsDtype::BF16;
  else if constexpr (std::is_same<T, std::int64_t>::value)
    return SafetensorsDtype::I64;
  else if constexpr (std::is_same<T, std::int32_t>::value)
    return SafetensorsDtype::I32;
  else
    static_assert(sizeof(T) == 0, "no safetensors dtype for this type");
}

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range within the data section

  std::uint64_t elements() const {
    std::uint64_t n = 1;
    for (std::uint64_t s : shape) n *= s;
    return n;
  }
  std::string shape_text() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }
};

// A read-only memory mapping of a whole regular file.
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const char* op, std::string_view noun, const std::string& path) {
    const RegularFile file = open_regular_file(op, noun, path);
    size_ = file.bytes;
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd.get(), 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      file_error(op, noun, path, "cannot map: {}", errno_text(err));
    }
    data_ = static_cast<const unsigned char*>(p);
  }
  MappedFile(MappedFile&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  const unsigned char* data() const { return data_; }
  std::uint64_t size() const { return size_; }

 private:
  void unmap() {
    if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
    data_ = nullptr;
  }
  const unsigned char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

namespace safetensors_detail {

inline constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;

// a * b, or false on overflow of u64.
inline bool checked_multiply(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_mul_overflow(a, b, &out);
}

// Converts n stored values of `dtype` at `src` to T, checking finiteness.
template <class T>
void convert(const unsigned char* src, SafetensorsDtype dtype, T* out, std::uint64_t n,
             const char* op, const std::string& where) {
  // Checked after the conversion, which may overflow (F64 1e300 -> float).
  auto store = [&](std::uint64_t i, double x) {
    out[i] = T(x);
    NLA_CHECK(std::isfinite(double(out[i])), op, "{}: value {} at flat index {} is not finite{}",
              where, x, i, std::isfinite(x) ? " in the model's scalar type" : "");
  };
  switch (dtype) {
    case SafetensorsDtype::F32:
      for (std::uint64_t i = 0; i < n; ++i) {
        float x;
        std::memcpy(&x, src + 4 * i, 4);
        store(i, x);
      }
      return;
    case SafetensorsDtype::F64:
      for (std::uint64_t i = 0; i < n; ++i) {
        double x;
        std::memcpy(&x, src + 8 * i, 8);
        store(i, x);
      }
      return;
    case SafetensorsDtype::F16:
    case SafetensorsDtype::BF16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        store(i,
              dtype == SafetensorsDtype::F16 ? half_bits_to_float(b) : float(bf16::from_bits(b)));
      }
      return;
    default:
      NLA_FAIL(op, "{}: dtype {} is not a floating-point type", where, dtype_info(dtype).name);
  }
}

}  // namespace safetensors_detail

class SafetensorsFile {
 public:
  static constexpr const char* kOp = "safetensors";

  explicit SafetensorsFile(std::string path)
      : path_(std::move(path)), map_(kOp, "safetensors file", path_) {
    parse();
  }

  const std::string& path() const { return path_; }
  // Tensors in data order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }

  const SafetensorsTensor& tensor(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) fail("has no tensor '{}'", name);
    return tensors_[it->second];
  }

  // Raw little-endian bytes of a tensor, straight from the mapping.
  const unsigned char* bytes(const SafetensorsTensor& t) const { return data_ + t.begin; }

  // Tensor `name` converted to T into out[0, count); count must equal its
  // element count (the caller states the size it expects).
  template <class T>
  void read(const std::string& name, T* out, std::uint64_t count) const {
    const SafetensorsTensor& t = tensor(name);
    if (t.elements() != count)
      fail("tensor '{}' has shape {} ({} values), expected {} values", name, t.shape_text(),
           t.elements(), count);
    safetensors_detail::convert(bytes(t), t.dtype, out, count, kOp,
                                fmt::format("safetensors file '{}', tensor '{}'", path_, name));
  }
  template <class T>
  std::vector<T> read(const std::string& name) const {
    std::vector<T> out(static_cast<std::size_t>(tensor(name).elements()));
    read(name, out.data(), out.size());
    return out;
  }

 private:
  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    file_error(kOp, "safetensors file", path_, format, std::forward<Args>(args)...);
  }

  void parse() {
    const std::uint64_t size = map_.size();
    if (size < 8) fail("truncated: {} bytes, shorter than the 8-byte header length", size);
    std::uint64_t header_bytes;
    std::memcpy(&header_bytes, map_.data(), 8);
    if (header_bytes > safetensors_detail::kMaxHeaderBytes)
      fail("header length {} exceeds the limit of {} bytes (corrupt or not safetensors)",
           header_bytes, safetensors_detail::kMaxHeaderBytes);
    if (header_bytes > size - 8)
      fail("truncated: the header needs {} bytes but the file has {} after the length",
           header_bytes, size - 8);
    data_ = map_.data() + 8 + header_bytes;
    const std::uint64_t data_bytes = size - 8 - header_bytes;
    const char* text = reinterpret_cast<const char*>(map_.data() + 8);

    // Repeated names are an error (a JSON parser would keep one silently).
    std::unordered_set<std::string> seen;
    const nlohmann::json::parser_callback_t on_event =
        [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          if (depth == 1 && event == nlohmann::json::parse_event_t::key &&
              !seen.insert(parsed.get<std::string>()).second)
            fail("header names '{}' twice", parsed.get<std::string>());
          return true;
        };
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text, text + header_bytes, on_event);
    } catch (const nlohmann::json::exception& e) {
      fail("header is not valid JSON: {}", e.what());
    }
    if (!header.is_object()) fail("header is not a JSON object");

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) fail("__metadata__ is not an object");
        for (const auto& [key, value] : entry.items()) {
          if (!value.is_string()) fail("__metadata__ value of '{}' is not a string", key);
          metadata_[key] = value.get<std::string>();
        }
        continue;
      }
      tensors_.push_back(parse_entry(name, entry));
    }

    // Sorted by offset, the ranges must tile [0, data_bytes).
    std::stable_sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t covered = 0;
    const SafetensorsTensor* previous = nullptr;
    for (const SafetensorsTensor& t : tensors_) {
      if (t.begin < covered)
        fail("tensor '{}' (bytes {}..{}) overlaps tensor '{}' (ending at {})", t.name, t.begin,
             t.end, previous->name, covered);
      if (t.begin > covered)
        fail("gap of {} bytes before tensor '{}' (bytes {}..{})", t.begin - covered, t.name,
             t.begin, t.end);
      if (t.end > data_bytes)
        fail("tensor '{}' ends at byte {} but the data section has {} bytes (truncated?)", t.name,
             t.end, data_bytes);
      covered = t.end;
      previous = &t;
    }
    if (covered != data_bytes)
      fail("the data section has {} bytes but the tensors cover {}", data_bytes, covered);
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
  }

  SafetensorsTensor parse_entry(const std::string& name, const nlohmann::json& entry) const {
    using safetensors_detail::checked_multiply;
    if (!entry.is_object()) fail("tensor '{}': entry is not an object", name);
    for (const auto& [key, value] : entry.items()) {
      (void)value;
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        fail("tensor '{}': unexpected key '{}'", name, key);
    }
    if (!entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      fail("tensor '{}': needs dtype, shape and data_offsets", name);
    SafetensorsTensor t;
    t.name = name;
    const auto& dtype = entry["dtype"];
    if (!dtype.is_string()) fail("tensor '{}': dtype is not a string", name);
    const auto* info = std::find_if(std::begin(kSafetensorsDtypes), std::end(kSafetensorsDtypes),
                                    [&](const auto& d) { return dtype == d.name; });
    if (info == std::end(kSafetensorsDtypes))
      fail("tensor '{}': unknown dtype {}", name, dtype.dump());
    t.dtype = info->dtype;
    const auto& shape = entry["shape"];
    if (!shape.is_array()) fail("tensor '{}': shape is not an array", name);
    std::uint64_t bytes = info->bytes;
    for (const auto& s : shape) {
      if (!s.is_number_unsigned())
        fail("tensor '{}': shape entry {} is not a non-negative integer", name, s.dump());
      t.shape.push_back(s.get<std::uint64_t>());
      if (!checked_multiply(bytes, t.shape.back(), bytes))
        fail("tensor '{}': shape {} overflows", name, shape.dump());
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail("tensor '{}': data_offsets {} is not two non-negative integers", name, offsets.dump());
    t.begin = offsets[0].get<std::uint64_t>();
    t.end = offsets[1].get<std::uint64_t>();
    if (t.end < t.begin)
      fail("tensor '{}': data_offsets [{}, {}] end before they begin", name, t.begin, t.end);
    if (t.end - t.begin != bytes)
      fail("tensor '{}': shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}", name,
           t.shape_text(), info->name, bytes, t.begin, t.end, t.end - t.begin);
    return t;
  }

  std::string path_;
  MappedFile map_;
  const unsigned char* data_ = nullptr;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects named tensors and writes them as one safetensors file, atomically
// (io::write_file_atomically). The header keeps insertion order and is padded
// with spaces so the data section starts 8-byte aligned.
class SafetensorsWriter {
 public:
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  template <class T>
  void add(const std::string& name, const std::vector<std::uint64_t>& shape, const T* values) {
    std::uint64_t n = 1;
    for (std::uint64_t s : shape) n *= s;
    // An empty tensor may come with values == nullptr, which std::string's
    // (pointer, length) constructor must not see.
    std::string bytes(n * sizeof(T), '\0');
    if (!bytes.empty()) std::memcpy(bytes.data(), values, bytes.size());
    add_bytes(name, safetensors_dtype_of<T>(), shape, std::move(bytes));
  }

  void add_bytes(const std::string& name, SafetensorsDtype dtype,
                 const std::vector<std::uint64_t>& shape, std::string bytes) {
    NLA_CHECK(name != "__metadata__" && !name.empty(), "SafetensorsWriter::add",
              "invalid tensor name '{}'", name);
    NLA_CHECK(names_.insert(name).second, "SafetensorsWriter::add", "tensor '{}' added twice",
              name);
    std::uint64_t n = dtype_info(dtype).bytes;
    for (std::uint64_t s : shape) n *= s;
    NLA_CHECK(n == bytes.size(), "SafetensorsWriter::add",
              "tensor '{}': shape needs {} bytes, got {}", name, n, bytes.size());
    entries_.push_back({name, dtype, shape, std::move(bytes)});
  }

  std::uint64_t data_bytes() const {
    std::uint64_t n = 0;
    for (const auto& e : entries_) n += e.bytes.size();
    return n;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
  }

  // The tensors in order, cut into writers of at most max_bytes of data each
  // (a larger tensor gets a writer of its own); each keeps the metadata.
  std::vector<SafetensorsWriter> split(std::uint64_t max_bytes) const {
    std::vector<SafetensorsWriter> out;
    std::uint64_t filled = 0;
    for (const auto& e : entries_) {
      if (out.empty() || (filled > 0 && filled + e.bytes.size() > max_bytes)) {
        out.emplace_back();
        out.back().metadata_ = metadata_;
        filled = 0;
      }
      out.back().add_bytes(e.name, e.dtype, e.shape, e.bytes);
      filled += e.bytes.size();
    }
    return out;
  }

  void write(const std::string& path) const {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const auto& e : entries_) {
      header[e.name] = {{"dtype", dtype_info(e.dtype).name},
                        {"shape", e.shape},
                        {"data_offsets", {offset, offset + e.bytes.size()}}};
      offset += e.bytes.size();
    }
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');
    const std::uint64_t length = text.size();
    write_file_atomically("SafetensorsWriter::write", "safetensors file", path,
                          [&](const TemporaryFile& f) {
                            f.write(&length, 8);
                            f.write(text.data(), text.size());
                            for (const auto& e : entries_) f.write(e.bytes.data(), e.bytes.size());
                          });
  }

 private:
  struct Entry {
    std::string name;
    SafetensorsDtype dtype;
    std::vector<std::uint64_t> shape;
    std::string bytes;
  };
  std::map<std::string, std::string> metadata_;
  std::unordered_set<std::string> names_;
  std::vector<Entry> entries_;
};

}  // namespace nla::io
