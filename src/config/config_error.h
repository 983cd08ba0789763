// The one exception type for bad experiment configs and overrides; the CLI maps it to exit code 2.
#pragma once

#include <stdexcept>
#include <string>

namespace st {

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& message) : std::runtime_error(message) {}
  // what() reads "<source>: <json_path>: <message>" (the path part is left out when empty).
  ConfigError(const std::string& source, const std::string& json_path, const std::string& message)
      : std::runtime_error(format(source, json_path, message)), json_path_(json_path) {}

  // Dotted path of the offending key ("optimizer.betas[1]"); empty for whole-file errors.
  const std::string& json_path() const { return json_path_; }

 private:
  static std::string format(const std::string& source, const std::string& json_path,
                            const std::string& message) {
    std::string out = source;
    if (!json_path.empty()) out += (out.empty() ? "" : ": ") + json_path;
    return out + (out.empty() ? "" : ": ") + message;
  }
  std::string json_path_;
};

}  // namespace st
