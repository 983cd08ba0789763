#include "config/override.h"

#include <algorithm>
#include <cctype>

#include "config/config_error.h"
#include "config/experiment.h"
#include "config/json_reader.h"

namespace st {

namespace {

// One step of a key path: an object key or an array index.
struct PathStep {
  bool is_index = false;
  std::string key;
  size_t index = 0;
};

// A config is a few levels deep; a longer key path is a mistake (and would build a document
// too deep for the parser's bound).
constexpr size_t kMaxPathSteps = 32;
constexpr size_t kMaxShownFlag = 100;

std::string shown_flag(const std::string& flag) {
  return flag.size() <= kMaxShownFlag ? flag : flag.substr(0, kMaxShownFlag - 3) + "...";
}

[[noreturn]] void override_fail(const std::string& flag, const std::string& message) {
  throw ConfigError("override \"" + shown_flag(flag) + "\"", "", message);
}

size_t parse_index(const std::string& text, const std::string& flag) {
  if (text.empty() || text.size() > 9 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(c) != 0; })) {
    override_fail(flag, "expected a non-negative integer index in [...], got \"" + text + "\"");
  }
  return std::stoul(text);
}

void check_length(const std::vector<PathStep>& steps, const std::string& key_path,
                  const std::string& flag) {
  if (steps.size() <= kMaxPathSteps) return;
  size_t parts = 0;  // every '.' and '[' starts one more
  for (char c : key_path) parts += c == '.' || c == '[' ? 1 : 0;
  override_fail(flag, "the key path has " + std::to_string(parts + 1) +
                          " parts; --set takes at most " + std::to_string(kMaxPathSteps));
}

// "model.layers[2].out" -> key model, key layers, index 2, key out.
std::vector<PathStep> parse_key_path(const std::string& key_path, const std::string& flag) {
  std::vector<PathStep> steps;
  size_t i = 0;
  while (i <= key_path.size()) {
    size_t end = key_path.find_first_of(".[", i);
    if (end == std::string::npos) end = key_path.size();
    std::string key = key_path.substr(i, end - i);
    if (key.empty()) override_fail(flag, "empty key name in \"" + key_path + "\"");
    steps.push_back({false, key, 0});
    check_length(steps, key_path, flag);
    i = end;
    while (i < key_path.size() && key_path[i] == '[') {
      size_t close = key_path.find(']', i);
      if (close == std::string::npos) override_fail(flag, "unclosed '[' in \"" + key_path + "\"");
      steps.push_back({true, "", parse_index(key_path.substr(i + 1, close - i - 1), flag)});
      check_length(steps, key_path, flag);
      i = close + 1;
    }
    if (i == key_path.size()) break;
    if (key_path[i] != '.') {
      override_fail(flag, "expected '.' or '[' after ']' in \"" + key_path + "\"");
    }
    ++i;
  }
  return steps;
}

std::string path_text(const std::vector<PathStep>& steps, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    out = steps[i].is_index ? json_path_index(out, steps[i].index)
                            : json_path_join(out, steps[i].key);
  }
  return out;
}

// Valid JSON is read as strictly as a config file (no duplicate keys, bounded depth).
nlohmann::json parse_value(const std::string& text, const std::string& flag) {
  if (!nlohmann::json::accept(text)) return text;
  return parse_json_text(text, "override \"" + shown_flag(flag) + "\"");
}

// The element an index step selects; `container` must be an array.
nlohmann::json& array_element(nlohmann::json& container, size_t index, const std::string& where,
                              const std::string& flag) {
  if (container.is_null()) override_fail(flag, where + " does not exist");
  if (!container.is_array()) {
    override_fail(flag, where + " is " + describe_json_value(container) + ", not an array");
  }
  if (index > container.size()) {
    override_fail(flag, "index " + std::to_string(index) + " is out of range for " + where +
                            " (size " + std::to_string(container.size()) + ")");
  }
  if (index == container.size()) container.push_back(nullptr);
  return container[index];
}

nlohmann::json& object_member(nlohmann::json& container, const std::string& key,
                              const std::string& where, const std::string& flag) {
  if (container.is_null()) container = nlohmann::json::object();
  if (!container.is_object()) {
    override_fail(flag, (where.empty() ? "the config" : where) + " is " +
                            describe_json_value(container) + ", not an object");
  }
  return container[key];
}

// Removes the key a path ends in, if everything up to it exists; creates nothing.
void remove_at(nlohmann::json& root, const std::vector<PathStep>& steps, const std::string& flag) {
  if (steps.back().is_index) override_fail(flag, "null can remove an object key, not an element");
  nlohmann::json* node = &root;
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    const PathStep& s = steps[i];
    if (s.is_index ? !(node->is_array() && s.index < node->size())
                   : !(node->is_object() && node->contains(s.key))) {
      return;
    }
    node = s.is_index ? &(*node)[s.index] : &(*node)[s.key];
  }
  if (node->is_object()) node->erase(steps.back().key);
}

}  // namespace

void apply_override(nlohmann::json& raw, const std::string& flag) {
  size_t eq = flag.find('=');
  if (eq == std::string::npos) override_fail(flag, "expected KEY=VALUE");
  std::string key_path = flag.substr(0, eq);
  while (!key_path.empty() && std::isspace(static_cast<unsigned char>(key_path.back()))) {
    key_path.pop_back();
  }
  if (key_path.empty()) override_fail(flag, "expected KEY=VALUE, the key is empty");
  std::vector<PathStep> steps = parse_key_path(key_path, flag);
  nlohmann::json value = parse_value(flag.substr(eq + 1), flag);

  if (value.is_null()) {
    remove_at(raw, steps, flag);
    return;
  }
  // The copy below recurses; a document from read_json_file is bounded already, one built
  // elsewhere is checked here.
  check_json_depth(raw, "override \"" + shown_flag(flag) + "\"");
  nlohmann::json edited = raw;  // edit a copy: a failed override leaves `raw` as it was
  nlohmann::json* node = &edited;
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    node = steps[i].is_index ? &array_element(*node, steps[i].index, path_text(steps, i), flag)
                             : &object_member(*node, steps[i].key, path_text(steps, i), flag);
  }
  const PathStep& last = steps.back();
  const std::string parent = path_text(steps, steps.size() - 1);
  if (last.is_index) {
    array_element(*node, last.index, parent, flag) = std::move(value);
  } else {
    object_member(*node, last.key, parent, flag) = std::move(value);
  }
  raw = std::move(edited);
}

void apply_overrides(nlohmann::json& raw, const std::vector<std::string>& flags) {
  for (const std::string& flag : flags) apply_override(raw, flag);
}

}  // namespace st
