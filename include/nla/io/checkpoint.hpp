#pragma once
// Training checkpoints: everything a run needs to resume bit for bit.
//
//   header    20 bytes, little-endian: magic "NLACKPT\0", u32 format version,
//             u64 payload length in bytes
//   payload   a cereal portable-binary archive, little-endian: the model config
//             (every TransformerConfig field), the scalar type names of the
//             parameters and of the optimiser state, the parameter table (name,
//             shape, offset, decay flag per tensor), the training step, the Rng
//             (seed, next_stream), the AdamW step count and options, the user's
//             metadata string, then three flat arrays: parameter values, first
//             and second moments (each prefixed by its element count)
//   checksum  u64 FNV-1a of the payload bytes
//
// Why this shape: the header is decoded by hand, so a foreign, newer or
// truncated file is rejected from its first 20 bytes and its size before
// anything is parsed; the checksum is verified before any value reaches the
// model; the small fields come before the arrays, so config and parameter
// table are checked against the model before its buffers are touched; and the
// arrays stream between file and model, so neither save nor load needs a second
// copy of the model in memory (a device model's arrays pass through the host
// one at a time). A save writes a temporary file in the same
// directory and renames it over the target, so a crash or a full disk leaves
// either the old checkpoint or the new one, never a torn one. POSIX only.

#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <istream>
#include <new>
#include <ostream>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>

#include "nla/core/error.hpp"
#include "nla/core/host.hpp"
#include "nla/core/random.hpp"
#include "nla/core/scalar.hpp"
#include "nla/io/file.hpp"
#include "nla/io/hash.hpp"
#include "nla/nn/config.hpp"
#include "nla/nn/parameters.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/optim/adamw.hpp"

namespace nla {

// What a checkpoint holds beyond the model and the optimiser.
struct TrainingState {
  std::int64_t step = 0;  // training steps taken
  Rng rng = Rng();        // the run's stream counter (data order, sampling)
  std::string metadata;   // free-form, e.g. JSON for the data loader
};

// Bumped whenever the payload layout changes; a reader rejects other versions.
constexpr std::uint32_t kCheckpointVersion = 1;

namespace checkpoint_detail {

constexpr char kMagic[8] = {'N', 'L', 'A', 'C', 'K', 'P', 'T', '\0'};
constexpr std::size_t kMagicBytes = sizeof(kMagic);
constexpr std::size_t kHeaderBytes = kMagicBytes + 4 + 8;  // magic, version, payload length
constexpr std::size_t kChecksumBytes = 8;
constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

// The checksum is FNV-1a 64 (io/hash.hpp): every single-byte change alters
// it, and it streams over the payload in chunks.
using nla::fnv1a64;

inline void encode_u32(unsigned char* out, std::uint32_t x) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(x >> (8 * i));
}
inline void encode_u64(unsigned char* out, std::uint64_t x) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(x >> (8 * i));
}
inline std::uint32_t decode_u32(const unsigned char* in) {
  std::uint32_t x = 0;
  for (int i = 0; i < 4; ++i) x |= static_cast<std::uint32_t>(in[i]) << (8 * i);
  return x;
}
inline std::uint64_t decode_u64(const unsigned char* in) {
  std::uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  return x;
}

// Every error names the file: "load_checkpoint: checkpoint 'x.ckpt': <what>".
constexpr char kNoun[] = "checkpoint";
template <class... Args>
[[noreturn]] void fail(const char* op, const std::string& path, fmt::format_string<Args...> format,
                       Args&&... args) {
  io::file_error(op, kNoun, path, format, std::forward<Args>(args)...);
}

using io::errno_text;
using io::FileDescriptor;
using io::read_at;

// The stream cereal writes the payload into: buffers, hashes and writes to
// the file, so the payload never exists in memory as a whole.
class HashingWriter : public std::streambuf {
 public:
  explicit HashingWriter(const io::TemporaryFile& file) : file_(file), buffer_(kBufferBytes) {
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  std::uint64_t checksum() const { return hash_; }
  std::uint64_t bytes() const { return bytes_; }

  void flush_buffer() {
    write_out(pbase(), static_cast<std::size_t>(pptr() - pbase()));
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }

 protected:
  int_type overflow(int_type ch) override {
    flush_buffer();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n > epptr() - pptr()) {
      flush_buffer();
      if (n >= static_cast<std::streamsize>(buffer_.size())) {
        write_out(s, static_cast<std::size_t>(n));
        return n;
      }
    }
    std::memcpy(pptr(), s, static_cast<std::size_t>(n));
    pbump(static_cast<int>(n));
    return n;
  }
  int sync() override {
    flush_buffer();
    return 0;
  }

 private:
  // cereal calls the streambuf directly (rdbuf()->sputn), so the error that
  // file_.write throws reaches save_checkpoint unchanged.
  void write_out(const char* p, std::size_t n) {
    if (n == 0) return;
    file_.write(p, n);
    hash_ = fnv1a64(p, n, hash_);
    bytes_ += n;
  }

  const io::TemporaryFile& file_;
  std::vector<char> buffer_;
  std::uint64_t hash_ = kFnvOffsetBasis, bytes_ = 0;
};

// The stream cereal reads the payload from: bytes [begin, begin + length) of
// the file and no further, so remaining() bounds every length field.
class PayloadReader : public std::streambuf {
 public:
  PayloadReader(int fd, std::uint64_t begin, std::uint64_t length, const char* op,
                const std::string& path)
      : fd_(fd),
        next_(begin),
        end_(begin + length),
        op_(op),
        path_(path),
        buffer_(static_cast<std::size_t>(std::min<std::uint64_t>(length, kBufferBytes)) + 1) {
    setg(buffer_.data(), buffer_.data(), buffer_.data());
  }
  // Payload bytes not yet consumed.
  std::uint64_t remaining() const {
    return (end_ - next_) + static_cast<std::uint64_t>(egptr() - gptr());
  }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(end_ - next_, buffer_.size()));
    const std::size_t got = read(buffer_.data(), want);
    setg(buffer_.data(), buffer_.data(), buffer_.data() + got);
    return got ? traits_type::to_int_type(*gptr()) : traits_type::eof();
  }
  std::streamsize xsgetn(char* s, std::streamsize n) override {
    std::streamsize done = 0;
    while (done < n) {
      if (gptr() == egptr()) {
        // Large reads (the arrays) go straight from the file to the model.
        if (n - done >= static_cast<std::streamsize>(buffer_.size())) {
          const std::size_t want = static_cast<std::size_t>(
              std::min<std::uint64_t>(static_cast<std::uint64_t>(n - done), end_ - next_));
          const std::size_t got = read(s + done, want);
          done += static_cast<std::streamsize>(got);
          if (got < want || want == 0) break;
          continue;
        }
        if (traits_type::eq_int_type(underflow(), traits_type::eof())) break;
      }
      const std::streamsize take = std::min<std::streamsize>(n - done, egptr() - gptr());
      std::memcpy(s + done, gptr(), static_cast<std::size_t>(take));
      gbump(static_cast<int>(take));
      done += take;
    }
    return done;
  }

 private:
  std::size_t read(char* out, std::size_t n) {
    if (n == 0) return 0;
    const ssize_t got = read_at(fd_, out, n, next_);
    if (got < 0) {
      const int err = errno;
      fail(op_, path_, "cannot read: {}", errno_text(err));
    }
    next_ += static_cast<std::uint64_t>(got);
    return static_cast<std::size_t>(got);
  }

  int fd_;
  std::uint64_t next_, end_;
  const char* op_;
  const std::string& path_;
  std::vector<char> buffer_;
};

template <class Archive>
void write_string(Archive& ar, const std::string& s) {
  ar(static_cast<std::uint64_t>(s.size()));
  ar(cereal::binary_data(static_cast<const char*>(s.data()), s.size()));
}

// Checks the length field against the bytes left before allocating, so a
// corrupt length cannot ask for an absurd allocation.
template <class Archive>
std::string read_string(Archive& ar, const PayloadReader& in, const char* what, const char* op,
                        const std::string& path) {
  std::uint64_t size = 0;
  ar(size);
  if (size > in.remaining())
    fail(op, path, "{} claims {} bytes, but only {} payload bytes remain", what, size,
         in.remaining());
  std::string s(static_cast<std::size_t>(size), '\0');
  ar(cereal::binary_data(static_cast<char*>(&s[0]), s.size()));
  return s;
}

template <class Archive>
void write_config(Archive& ar, const TransformerConfig& c) {
  write_string(ar, flavour_name(c.flavour));
  ar(std::int64_t{c.vocab_size}, std::int64_t{c.context_length}, std::int64_t{c.d_model},
     std::int64_t{c.n_layers}, std::int64_t{c.n_heads}, std::int64_t{c.n_kv_heads},
     std::int64_t{c.d_ff});
  ar(c.norm_eps, c.rope_theta);
  ar(static_cast<std::uint8_t>(c.tied_embeddings), static_cast<std::uint8_t>(c.attention_bias),
     static_cast<std::uint8_t>(c.projection_bias));
}

template <class Archive>
TransformerConfig read_config(Archive& ar, const PayloadReader& in, const char* op,
                              const std::string& path) {
  TransformerConfig c;
  const std::string flavour = read_string(ar, in, "flavour name", op, path);
  if (flavour == flavour_name(Flavour::Gpt2)) {
    c.flavour = Flavour::Gpt2;
  } else if (flavour == flavour_name(Flavour::Llama)) {
    c.flavour = Flavour::Llama;
  } else {
    fail(op, path, "unknown model flavour '{}'", flavour);
  }
  std::int64_t dims[7];
  for (std::int64_t& d : dims) ar(d);
  c.vocab_size = dims[0];
  c.context_length = dims[1];
  c.d_model = dims[2];
  c.n_layers = dims[3];
  c.n_heads = dims[4];
  c.n_kv_heads = dims[5];
  c.d_ff = dims[6];
  ar(c.norm_eps, c.rope_theta);
  std::uint8_t flags[3];
  for (std::uint8_t& f : flags) ar(f);
  c.tied_embeddings = flags[0] != 0;
  c.attention_bias = flags[1] != 0;
  c.projection_bias = flags[2] != 0;
  return c;
}

// "d_model 16 in the file, 32 in the model; ..." for every field that differs.
inline std::string config_differences(const TransformerConfig& file,
                                      const TransformerConfig& model) {
  std::string out;
  auto compare = [&out](const char* field, const auto& a, const auto& b) {
    if (a == b) return;
    out +=
        fmt::format("{}{} {} in the file, {} in the model", out.empty() ? "" : "; ", field, a, b);
  };
  compare("flavour", std::string(flavour_name(file.flavour)),
          std::string(flavour_name(model.flavour)));
  compare("vocab_size", file.vocab_size, model.vocab_size);
  compare("context_length", file.context_length, model.context_length);
  compare("d_model", file.d_model, model.d_model);
  compare("n_layers", file.n_layers, model.n_layers);
  compare("n_heads", file.n_heads, model.n_heads);
  compare("n_kv_heads", file.kv_heads(), model.kv_heads());
  compare("d_ff", file.ff_dim(), model.ff_dim());
  compare("norm_eps", file.norm_eps, model.norm_eps);
  compare("rope_theta", file.rope_theta, model.rope_theta);
  compare("tied_embeddings", file.tied_embeddings, model.tied_embeddings);
  compare("attention_bias", file.attention_bias, model.attention_bias);
  compare("projection_bias", file.projection_bias, model.projection_bias);
  return out;
}

template <class Archive, class E>
void write_array(Archive& ar, const E* data, index_t n) {
  ar(static_cast<std::uint64_t>(n));
  ar(cereal::binary_data(static_cast<const E*>(data), static_cast<std::size_t>(n) * sizeof(E)));
}

template <class Archive, class E>
void read_array(Archive& ar, E* data, index_t n, const char* what, const char* op,
                const std::string& path) {
  std::uint64_t count = 0;
  ar(count);
  if (count != static_cast<std::uint64_t>(n))
    fail(op, path, "{} has {} entries, the model has {} parameters", what, count, n);
  ar(cereal::binary_data(static_cast<E*>(data), static_cast<std::size_t>(n) * sizeof(E)));
}

// Writes header | payload | checksum to `path` atomically (io::write_file_atomically:
// a temporary file, fsync, rename, fsync of the directory).
// write_payload(std::ostream&) streams the payload. On failure the temporary
// file is removed and whatever was at `path` is untouched.
template <class WritePayload>
void write_atomically(const char* op, const std::string& path, WritePayload&& write_payload) {
  io::write_file_atomically(op, kNoun, path, [&](const io::TemporaryFile& file) {
    try {
      // The payload length is unknown until it is written: write a placeholder
      // header, stream the payload, then fill the header in.
      unsigned char header[kHeaderBytes] = {};
      std::memcpy(header, kMagic, kMagicBytes);
      encode_u32(header + kMagicBytes, kCheckpointVersion);
      file.write(header, kHeaderBytes);
      HashingWriter writer(file);
      {
        std::ostream stream(&writer);
        write_payload(stream);
      }
      writer.flush_buffer();
      encode_u64(header + kMagicBytes + 4, writer.bytes());
      file.write(header, kHeaderBytes, 0);
      unsigned char checksum[kChecksumBytes];
      encode_u64(checksum, writer.checksum());
      file.write(checksum, kChecksumBytes);
    } catch (const Error&) {
      throw;
    } catch (const cereal::Exception& e) {
      fail(op, path, "cannot serialise: {}", e.what());
    } catch (const std::bad_alloc&) {
      fail(op, path, "out of memory while writing");
    }
  });
}

// An open checkpoint whose header, size and checksum have been verified.
struct VerifiedFile {
  FileDescriptor fd;
  std::uint64_t payload_bytes;
};

inline VerifiedFile open_verified(const char* op, const std::string& path) {
  auto [fd, file_bytes] = io::open_regular_file(op, kNoun, path);
  if (file_bytes == 0) fail(op, path, "empty file (0 bytes)");

  unsigned char header[kHeaderBytes] = {};
  const ssize_t got = read_at(fd.get(), header, kHeaderBytes, 0);
  if (got < 0) {
    const int err = errno;
    fail(op, path, "cannot read: {}", errno_text(err));
  }
  const std::size_t header_got = static_cast<std::size_t>(got);
  if (std::memcmp(header, kMagic, std::min(header_got, kMagicBytes)) != 0)
    fail(op, path, "not an nla checkpoint (bad magic; expected \"NLACKPT\\0\")");
  if (header_got < kHeaderBytes)
    fail(op, path, "truncated: file has {} bytes, shorter than the {}-byte header", header_got,
         kHeaderBytes);
  const std::uint32_t version = decode_u32(header + kMagicBytes);
  if (version != kCheckpointVersion)
    fail(op, path, "unsupported format version {} (this build reads version {})", version,
         kCheckpointVersion);
  const std::uint64_t payload_bytes = decode_u64(header + kMagicBytes + 4);
  const std::uint64_t after_header = file_bytes - kHeaderBytes;
  if (payload_bytes > after_header || after_header - payload_bytes < kChecksumBytes)
    fail(op, path,
         "truncated: header says {} payload bytes plus an {}-byte checksum, file has {} bytes "
         "after the header",
         payload_bytes, kChecksumBytes, after_header);
  if (after_header - payload_bytes > kChecksumBytes)
    fail(op, path,
         "{} unexpected bytes after the checksum (header says {} payload bytes, file has {} "
         "bytes)",
         after_header - payload_bytes - kChecksumBytes, payload_bytes, file_bytes);

  // Verify the checksum before parsing anything.
  std::vector<char> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(
      std::max<std::uint64_t>(payload_bytes, kChecksumBytes), kBufferBytes)));
  std::uint64_t hash = kFnvOffsetBasis;
  for (std::uint64_t done = 0; done < payload_bytes;) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(payload_bytes - done, chunk.size()));
    const ssize_t n = read_at(fd.get(), chunk.data(), want, kHeaderBytes + done);
    if (n != static_cast<ssize_t>(want)) {
      const int err = errno;
      fail(op, path, "cannot read payload: {}", n < 0 ? errno_text(err) : "file shrank");
    }
    hash = fnv1a64(chunk.data(), want, hash);
    done += want;
  }
  unsigned char stored[kChecksumBytes];
  if (read_at(fd.get(), stored, kChecksumBytes, kHeaderBytes + payload_bytes) !=
      static_cast<ssize_t>(kChecksumBytes)) {
    const int err = errno;
    fail(op, path, "cannot read checksum: {}", errno_text(err));
  }
  if (decode_u64(stored) != hash)
    fail(op, path, "checksum mismatch: file says {:016x}, payload hashes to {:016x} (corrupt file)",
         decode_u64(stored), hash);
  return {std::move(fd), payload_bytes};
}

// Runs parse(archive, reader) over a verified payload; parse errors from
// cereal or the allocator become nla::Error naming the file.
template <class Parse>
auto parse_payload(const char* op, const std::string& path, Parse&& parse) {
  VerifiedFile file = open_verified(op, path);
  PayloadReader reader(file.fd.get(), kHeaderBytes, file.payload_bytes, op, path);
  std::istream stream(&reader);
  try {
    cereal::PortableBinaryInputArchive archive(
        stream, cereal::PortableBinaryInputArchive::Options::LittleEndian());
    return parse(archive, reader);
  } catch (const Error&) {
    throw;
  } catch (const cereal::Exception& e) {
    fail(op, path, "malformed payload: {}", e.what());
  } catch (const std::bad_alloc&) {
    fail(op, path, "malformed payload: out of memory while parsing");
  }
}

}  // namespace checkpoint_detail

// Writes model parameters, optimiser state and training state to `path`
// atomically (see the top of this file). Gradients are not saved.
//
// The model-free form saves any ParameterSet (a reconstructor's head) under a
// config that load_parameters must be given back. On a device backend each
// array is downloaded whole before it is written (a host copy of one array at
// a time); host memory is written as it is.
template <class B, class T>
void save_parameters(B& backend, const std::string& path, const TransformerConfig& config,
                     const ParameterSet<T, B>& params, const AdamW<B, T>& optimizer,
                     const TrainingState& state) {
  namespace cd = checkpoint_detail;
  using State = typename AdamW<B, T>::State;
  const char* op = "save_checkpoint";
  if (optimizer.sharded())
    cd::fail(op, path,
             "optimizer holds the shard [{}, {}) of {} parameters; gather the whole state first "
             "(DataParallel::save)",
             optimizer.shard().first, optimizer.shard().last, params.size());
  if (optimizer.first_moment().size() != params.size() ||
      optimizer.second_moment().size() != params.size())
    cd::fail(op, path, "optimizer holds {} and {} moments, the model has {} parameters",
             optimizer.first_moment().size(), optimizer.second_moment().size(), params.size());

  cd::write_atomically(op, path, [&](std::ostream& stream) {
    cereal::PortableBinaryOutputArchive ar(
        stream, cereal::PortableBinaryOutputArchive::Options::LittleEndian());
    cd::write_config(ar, config);
    cd::write_string(ar, ScalarTraits<T>::kName);
    cd::write_string(ar, ScalarTraits<State>::kName);
    ar(static_cast<std::uint64_t>(params.count()));
    for (const ParameterInfo& info : params.infos()) {
      cd::write_string(ar, info.name);
      ar(static_cast<std::uint8_t>(info.shape.rank()));
      for (int i = 0; i < info.shape.rank(); ++i) ar(std::int64_t{info.shape[i]});
      ar(std::int64_t{info.offset}, static_cast<std::uint8_t>(info.decay));
    }
    ar(state.step, state.rng.seed(), state.rng.next_stream());
    const AdamWOptions& o = optimizer.options();
    ar(optimizer.step_count(), o.lr, o.beta1, o.beta2, o.eps, o.weight_decay);
    cd::write_string(ar, state.metadata);
    cd::write_array(ar, to_host(backend, params.values()).data(), params.size());
    for (const Tensor<State, B>* moment : {&optimizer.first_moment(), &optimizer.second_moment()})
      cd::write_array(ar, to_host(backend, moment->view()).data(), params.size());
  });
}

// The host-memory form (Cpu): no backend object is needed to read the arrays.
template <class B, class T>
void save_parameters(const std::string& path, const TransformerConfig& config,
                     const ParameterSet<T, B>& params, const AdamW<B, T>& optimizer,
                     const TrainingState& state) {
  static_assert(B::kHostAccessible,
                "save_parameters: a device backend's arrays are downloaded through it; pass the "
                "backend first");
  B backend;
  save_parameters(backend, path, config, params, optimizer, state);
}

template <class B, class T>
void save_checkpoint(const std::string& path, const TransformerLM<B, T>& model,
                     const AdamW<B, T>& optimizer, const TrainingState& state) {
  save_parameters(model.backend(), path, model.config(), model.parameters(), optimizer, state);
}

// Reads a checkpoint's config without a model, so a program can construct
// the model before calling load_checkpoint. Verifies the whole file first.
inline TransformerConfig read_checkpoint_config(const std::string& path) {
  namespace cd = checkpoint_detail;
  const char* op = "read_checkpoint_config";
  const TransformerConfig config =
      cd::parse_payload(op, path, [&](auto& ar, const cd::PayloadReader& reader) {
        return cd::read_config(ar, reader, op, path);
      });
  try {
    return config.resolved();
  } catch (const Error& e) {
    cd::fail(op, path, "invalid config: {}", e.what());
  }
}

// Restores parameters, optimiser state (moments, step count, options) and
// returns the training state. Every check (header, checksum, config, scalar
// types, parameter table, array lengths) runs before the model or the
// optimiser is written; only a read error from the disk after that point can
// leave them partly loaded. The optimiser may be default-constructed.
//
// On a device backend each array is read into host memory and uploaded (one
// array's host copy at a time).
template <class B, class T>
TrainingState load_parameters(B& backend, const std::string& path,
                              const TransformerConfig& model_config, ParameterSet<T, B>& params,
                              AdamW<B, T>& optimizer) {
  namespace cd = checkpoint_detail;
  using State = typename AdamW<B, T>::State;
  const char* op = "load_checkpoint";

  return cd::parse_payload(op, path, [&](auto& ar, const cd::PayloadReader& reader) {
    const TransformerConfig config = cd::read_config(ar, reader, op, path);
    const std::string differences = cd::config_differences(config, model_config);
    if (!differences.empty()) cd::fail(op, path, "config mismatch: {}", differences);

    const std::string scalar = cd::read_string(ar, reader, "scalar type name", op, path);
    const std::string state_scalar = cd::read_string(ar, reader, "state type name", op, path);
    if (scalar != ScalarTraits<T>::kName || state_scalar != ScalarTraits<State>::kName)
      cd::fail(op, path,
               "scalar type mismatch: file has parameters {} and state {}, model has {} and {}",
               scalar, state_scalar, ScalarTraits<T>::kName, ScalarTraits<State>::kName);

    std::uint64_t count = 0;
    ar(count);
    if (count != static_cast<std::uint64_t>(params.count()))
      cd::fail(op, path, "parameter table mismatch: file has {} tensors, model has {}", count,
               params.count());
    for (const ParameterInfo& info : params.infos()) {
      const std::string name = cd::read_string(ar, reader, "parameter name", op, path);
      if (name != info.name)
        cd::fail(op, path, "parameter table mismatch: file has '{}' where the model has '{}'", name,
                 info.name);
      std::uint8_t rank = 0;
      ar(rank);
      if (rank < 1 || rank > Shape::kMaxRank)
        cd::fail(op, path, "parameter '{}' has rank {} in the file", name, int{rank});
      std::string file_shape = "[";
      bool same_shape = rank == info.shape.rank();
      for (int i = 0; i < rank; ++i) {
        std::int64_t d = 0;
        ar(d);
        file_shape += (i ? ", " : "") + std::to_string(d);
        same_shape = same_shape && d == info.shape[i];
      }
      file_shape += "]";
      if (!same_shape)
        cd::fail(op, path,
                 "parameter table mismatch: '{}' has shape {} in the file, {} in the model", name,
                 file_shape, info.shape);
      std::int64_t offset = 0;
      std::uint8_t decay = 0;
      ar(offset, decay);
      if (offset != info.offset || (decay != 0) != info.decay)
        cd::fail(op, path,
                 "parameter table mismatch: '{}' has offset {} and decay {} in the file, {} and {} "
                 "in the model",
                 name, offset, decay != 0, info.offset, info.decay);
    }

    TrainingState state;
    std::uint64_t seed = 0, next_stream = 0;
    ar(state.step, seed, next_stream);
    state.rng = Rng(seed, next_stream);
    std::int64_t optimizer_steps = 0;
    AdamWOptions options;
    ar(optimizer_steps, options.lr, options.beta1, options.beta2, options.eps,
       options.weight_decay);
    if (optimizer_steps < 0 || !(options.beta1 >= 0 && options.beta1 < 1) ||
        !(options.beta2 >= 0 && options.beta2 < 1) || !(options.eps > 0) ||
        !(options.weight_decay >= 0))
      cd::fail(op, path,
               "invalid optimizer state: step {}, betas ({}, {}), eps {}, weight_decay {}",
               optimizer_steps, options.beta1, options.beta2, options.eps, options.weight_decay);
    state.metadata = cd::read_string(ar, reader, "metadata", op, path);

    // The three arrays, each a u64 count and its elements, must fill the rest
    // of the payload exactly.
    const std::uint64_t n = static_cast<std::uint64_t>(params.size());
    const std::uint64_t expected =
        3 * sizeof(std::uint64_t) + n * sizeof(T) + 2 * n * sizeof(State);
    if (reader.remaining() != expected)
      cd::fail(op, path,
               "payload has {} bytes left for the arrays, {} parameters need {} (corrupt or from "
               "a different model)",
               reader.remaining(), n, expected);

    // Every check has passed: from here on the model and optimiser are written.
    const auto read = [&](auto view, const char* what) {
      using E = typename decltype(view)::value_type;
      if constexpr (B::kHostAccessible) {
        cd::read_array(ar, view.data(), view.size(), what, op, path);
      } else {
        std::vector<E> host(static_cast<std::size_t>(view.size()));
        cd::read_array(ar, host.data(), view.size(), what, op, path);
        from_host(backend, view, host.data());
      }
    };
    read(params.values(), "parameter values");
    optimizer.set_full_state(params.size());
    optimizer.first_moment().resize(Shape{params.size()});
    optimizer.second_moment().resize(Shape{params.size()});
    read(optimizer.first_moment().view(), "first moment");
    read(optimizer.second_moment().view(), "second moment");
    optimizer.options() = options;
    optimizer.set_step_count(optimizer_steps);
    return state;
  });
}

// The host-memory form (Cpu).
template <class B, class T>
TrainingState load_parameters(const std::string& path, const TransformerConfig& model_config,
                              ParameterSet<T, B>& params, AdamW<B, T>& optimizer) {
  static_assert(B::kHostAccessible,
                "load_parameters: a device backend's arrays are uploaded through it; pass the "
                "backend first");
  B backend;
  return load_parameters(backend, path, model_config, params, optimizer);
}

template <class B, class T>
TrainingState load_checkpoint(const std::string& path, TransformerLM<B, T>& model,
                              AdamW<B, T>& optimizer) {
  return load_parameters(model.backend(), path, model.config(), model.parameters(), optimizer);
}

}  // namespace nla
