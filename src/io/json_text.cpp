#include "io/json_text.h"

#include <set>
#include <utility>
#include <vector>

namespace st {

using json = nlohmann::json;

std::string json_path_join(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string json_path_index(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

namespace {

std::string too_deep(int max_depth) {
  return "nested deeper than " + std::to_string(max_depth) + " levels";
}

// Follows the parser's events: the JSON path of the value being parsed, the keys seen in each
// open object, and the depth.
class StrictEvents {
 public:
  explicit StrictEvents(int max_depth) : max_depth_(max_depth) {}

  bool on_event(int depth, json::parse_event_t event, const json& parsed) {
    using E = json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        // `depth` counts the containers already open; this one is one deeper.
        if (depth + 1 > max_depth_)
          throw JsonTextError(JsonTextError::Kind::TooDeep, here(), too_deep(max_depth_));
        frames_.push_back({event == E::array_start, "", 0, {}});
        break;
      case E::key: {
        Frame& f = frames_.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second)
          throw JsonTextError(
              JsonTextError::Kind::DuplicateKey, here(),
              "duplicate key \"" + f.key + "\" (a JSON object names each key once)");
        break;
      }
      case E::object_end:
      case E::array_end:
        frames_.pop_back();
        next_element();
        break;
      case E::value:
        next_element();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool is_array = false;
    std::string key;
    size_t index = 0;
    std::set<std::string> keys;
  };

  void next_element() {
    if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
  }
  std::string here() const {
    std::string path;
    for (const Frame& f : frames_)
      path = f.is_array ? json_path_index(path, f.index) : json_path_join(path, f.key);
    return path;
  }

  int max_depth_;
  std::vector<Frame> frames_;
};

// nlohmann's messages start with "[json.exception.parse_error.101] "; ours do not.
std::string without_library_tag(const std::string& what) {
  if (what.rfind("[json.exception.", 0) == 0) {
    const size_t end = what.find("] ");
    if (end != std::string::npos) return what.substr(end + 2);
  }
  return what;
}

}  // namespace

json parse_json_strict(std::string_view text, int max_depth) {
  StrictEvents events(max_depth);
  try {
    return json::parse(text.begin(), text.end(),
                       [&events](int depth, json::parse_event_t event, json& parsed) {
                         return events.on_event(depth, event, parsed);
                       });
  } catch (const json::parse_error& e) {
    throw JsonTextError(JsonTextError::Kind::Syntax, "",
                        "not valid JSON (error at byte " + std::to_string(e.byte) + ")", e.byte,
                        without_library_tag(e.what()));
  } catch (const json::exception& e) {
    // out_of_range: a number too large for a double (1e999).
    throw JsonTextError(JsonTextError::Kind::Syntax, "", "not valid JSON", 0,
                        without_library_tag(e.what()));
  }
}

std::optional<std::string> json_nested_deeper_than(const json& value, int max_depth) {
  struct Item {
    const json* value;
    int level;  // of this value: the top level is 1
    std::string path;
  };
  // Depth-first with an explicit stack: a hostile document must not exhaust the call stack.
  std::vector<Item> stack = {{&value, 1, ""}};
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (!item.value->is_structured()) continue;
    if (item.level > max_depth) return item.path;
    if (item.value->is_array()) {
      for (size_t i = 0; i < item.value->size(); ++i)
        stack.push_back({&(*item.value)[i], item.level + 1, json_path_index(item.path, i)});
    } else {
      for (auto it = item.value->begin(); it != item.value->end(); ++it)
        stack.push_back({&it.value(), item.level + 1, json_path_join(item.path, it.key())});
    }
  }
  return std::nullopt;
}

}  // namespace st
