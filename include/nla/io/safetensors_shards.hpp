#pragma once
// The weights of a Hugging Face model directory: one `model.safetensors`, or
// shards listed by `model.safetensors.index.json`:
//
//   {"metadata": {"total_size": <bytes>},
//    "weight_map": {"<tensor name>": "model-00001-of-00002.safetensors", ...}}
//
// Opening checks the index against the shards: every shard named is a plain
// file name inside the directory, every tensor of the map is in the shard it
// is mapped to, and every tensor of a shard is in the map (so no tensor is in
// two shards). Writing splits tensors in order into shards of at most
// `max_shard_bytes` and writes the index last, each file atomically: a reader
// that finds the index finds complete shards.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/io/safetensors.hpp"

namespace nla::io {

inline constexpr const char* kSafetensorsSingleFile = "model.safetensors";
inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";

class SafetensorsShards {
 public:
  static constexpr const char* kOp = "safetensors";

  // Opens the weights of `directory`; model.safetensors wins over an index
  // (as in transformers).
  explicit SafetensorsShards(const std::string& directory) {
    namespace fs = std::filesystem;
    const fs::path dir(directory);
    if (fs::exists(dir / kSafetensorsSingleFile)) {
      files_.push_back(std::make_unique<SafetensorsFile>((dir / kSafetensorsSingleFile).string()));
      for (const auto& t : files_[0]->tensors()) owner_[t.name] = 0;
      return;
    }
    const std::string index_path = (dir / kSafetensorsIndexFile).string();
    if (!fs::exists(index_path))
      NLA_FAIL(kOp, "directory '{}' has neither {} nor {}", directory, kSafetensorsSingleFile,
               kSafetensorsIndexFile);
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(read_file(kOp, "safetensors index", index_path));
    } catch (const nlohmann::json::exception& e) {
      file_error(kOp, "safetensors index", index_path, "not valid JSON: {}", e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      file_error(kOp, "safetensors index", index_path, "has no \"weight_map\" object");
    std::map<std::string, std::size_t> shard_of_file;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string())
        file_error(kOp, "safetensors index", index_path, "tensor '{}' maps to {}, not a file name",
                   name, file.dump());
      const std::string shard = file.get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        file_error(kOp, "safetensors index", index_path,
                   "tensor '{}' maps to '{}', which is not a file name in the directory", name,
                   shard);
      auto it = shard_of_file.find(shard);
      if (it == shard_of_file.end()) {
        it = shard_of_file.emplace(shard, files_.size()).first;
        files_.push_back(std::make_unique<SafetensorsFile>((dir / shard).string()));
      }
      if (!files_[it->second]->contains(name))
        file_error(kOp, "safetensors index", index_path,
                   "maps tensor '{}' to shard '{}', which does not contain it", name, shard);
      owner_[name] = it->second;
    }
    for (const auto& file : files_)
      for (const auto& t : file->tensors()) {
        auto it = owner_.find(t.name);
        if (it == owner_.end() || files_[it->second].get() != file.get())
          file_error(kOp, "safetensors index", index_path,
                     "shard '{}' holds tensor '{}', which the index maps elsewhere or not at all",
                     file->path(), t.name);
      }
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, file] : owner_) out.push_back(name);
    return out;
  }
  bool contains(const std::string& name) const { return owner_.count(name) != 0; }
  const SafetensorsFile& file_of(const std::string& name) const {
    auto it = owner_.find(name);
    NLA_CHECK(it != owner_.end(), kOp, "no shard of the checkpoint holds tensor '{}'", name);
    return *files_[it->second];
  }
  const SafetensorsTensor& tensor(const std::string& name) const {
    return file_of(name).tensor(name);
  }
  template <class T>
  void read(const std::string& name, T* out, std::uint64_t count) const {
    file_of(name).read(name, out, count);
  }
  std::size_t file_count() const { return files_.size(); }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::size_t> owner_;
};

// Writes `writer`'s tensors into `directory` as model.safetensors, or as
// shards of at most max_shard_bytes plus the index when they do not fit one.
inline void write_safetensors_directory(const std::string& directory,
                                        const SafetensorsWriter& writer,
                                        std::uint64_t max_shard_bytes = std::uint64_t{5} << 30) {
  namespace fs = std::filesystem;
  const fs::path dir(directory);
  fs::create_directories(dir);
  if (writer.data_bytes() <= max_shard_bytes) {
    writer.write((dir / kSafetensorsSingleFile).string());
    fs::remove(dir / kSafetensorsIndexFile);
    return;
  }
  const std::vector<SafetensorsWriter> shards = writer.split(max_shard_bytes);
  nlohmann::ordered_json index = {{"metadata", {{"total_size", writer.data_bytes()}}},
                                  {"weight_map", nlohmann::ordered_json::object()}};
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const std::string file =
        fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    shards[i].write((dir / file).string());
    for (const std::string& name : shards[i].names()) index["weight_map"][name] = file;
  }
  const std::string text = index.dump(2) + "\n";
  write_text_atomically("write_safetensors_directory", "safetensors index",
                        (dir / kSafetensorsIndexFile).string(), text);
  // A single file would shadow the index (it wins on loading).
  fs::remove(dir / kSafetensorsSingleFile);
}

}  // namespace nla::io
