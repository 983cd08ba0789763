// Validation of a checkpoint's metadata (__metadata__["sparsetrain"]), apart from the model
// code so that it can be fuzzed on its own.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace st {

constexpr int kCheckpointFormat = 1;
// Bound for every number in a stored architecture: any channel count, kernel, stride or image
// side above it is not a network sparsetrain made, and would only serve to allocate gigabytes.
constexpr int64_t kMaxArchitectureInt = 1 << 16;

// Checks the checkpoint metadata read back from `origin` before anything uses it: format, the
// architecture (types, every number bounded), epoch, optimizer steps, dropout counter, elapsed
// time, normalization. Throws InputError naming `origin` and the key.
void validate_checkpoint_meta(const nlohmann::json& meta, const std::string& origin);
// parse_json_checked (bounded depth, no duplicate keys) + validate_checkpoint_meta.
nlohmann::json parse_checkpoint_meta(std::string_view text, const std::string& origin);

}  // namespace st
