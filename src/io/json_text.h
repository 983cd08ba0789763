// Strict JSON text: the one parser for every JSON document sparsetrain reads (configs and
// --set values, checkpoint metadata, safetensors headers, run files). Beyond the grammar it
// refuses nesting deeper than a bound (checked while parsing, so a hostile document never
// builds a deep value) and a key repeated within one object (the JSON library would keep the
// last one silently, so the reader would act on a value its writer did not mean). Callers turn
// JsonTextError into their own error type (ConfigError, InputError, RunFileError).
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace st {

// Nesting bound: far above anything sparsetrain writes (a checkpoint's metadata nests about 8
// deep, a config about 5), far below what exhausts the stack.
constexpr int kMaxJsonDepth = 64;

// "optimizer" + "lr" -> "optimizer.lr"; "" + "data" -> "data".
std::string json_path_join(const std::string& parent, const std::string& key);
// "optimizer.betas" + 1 -> "optimizer.betas[1]".
std::string json_path_index(const std::string& parent, size_t index);

class JsonTextError : public std::runtime_error {
 public:
  enum class Kind { Syntax, TooDeep, DuplicateKey };
  // what(): the problem without the document's name: "duplicate key \"k\" (...)",
  // "nested deeper than 64 levels", or for Syntax "not valid JSON (error at byte 12)".
  JsonTextError(Kind k, std::string at, const std::string& why, std::size_t at_byte = 0,
                std::string library_message = "")
      : std::runtime_error(why),
        kind(k),
        path(std::move(at)),
        byte(at_byte),
        detail(std::move(library_message)) {}
  Kind kind;
  std::string path;    // JSON path of the offending value ("" at the top level or for Syntax)
  std::size_t byte;    // Syntax: where the parser stopped
  std::string detail;  // Syntax: the library's message without its tag, which quotes the
                       // text it read: fine for a config a person wrote, not for a hostile file
};

// Parses `text`; throws JsonTextError as above.
nlohmann::json parse_json_strict(std::string_view text, int max_depth = kMaxJsonDepth);

// The JSON path of a container nested deeper than `max_depth` levels in a value built in
// memory (a top-level object or array is level 1), or nullopt. Walks without recursion.
std::optional<std::string> json_nested_deeper_than(const nlohmann::json& value,
                                                   int max_depth = kMaxJsonDepth);

}  // namespace st
