// JSON -> ExperimentConfig: strict JSON text reading, the schema walk (config/schema.cpp), and
// the checks that look outside the config: dataset files and the model's shapes.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "backend/backend.h"
#include "config/experiment.h"
#include "config/json_reader.h"
#include "config/names.h"
#include "config/override.h"
#include "config/schema.h"
#include "nn/layer_json.h"
#include "nn/model.h"

namespace st {

namespace {

namespace fs = std::filesystem;
using Keys = std::vector<std::string>;

// ---- dataset files ----------------------------------------------------------------------------
// These follow the loaders in src/data/ exactly (test "config: data layouts the loaders accept").

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// The names load_idx_dir tries for one IDX file, in its order.
Keys idx_names(const std::string& prefix, const std::string& kind) {
  Keys names;
  for (const char* sep : {"-", "."}) {
    for (const char* ext : {"", ".gz"}) names.push_back(prefix + sep + kind + "-ubyte" + ext);
  }
  return names;
}

// load_cifar10/load_cifar100 read from `dir`, or from its conventional subdirectory when `dir`
// does not hold the probe file itself.
std::optional<fs::path> cifar_root(const fs::path& dir, const std::string& probe,
                                   const std::string& subdir) {
  if (is_file(dir / probe)) return dir;
  if (is_file(dir / subdir / probe)) return dir / subdir;
  return std::nullopt;
}

std::string data_path_hint(DataKind kind) {
  switch (kind) {
    case DataKind::FashionMnist:
      return " (Debian's dataset-fashion-mnist package installs it)";
    case DataKind::Mnist:
      return " (set it to a directory with the four MNIST IDX files)";
    case DataKind::Cifar10:
      return " (set it to the directory unpacked from cifar-10-binary.tar.gz, or its parent)";
    case DataKind::Cifar100:
      return " (set it to the directory unpacked from cifar-100-binary.tar.gz, or its parent)";
    case DataKind::ImageFolder:
    case DataKind::Synthetic:
      return "";
  }
  return "";
}

void check_data_files(const DataConfig& d, const std::string& source) {
  if (d.kind == DataKind::Synthetic) return;
  std::error_code ec;
  const fs::path dir(d.path);
  auto fail = [&](const std::string& message) {
    throw ConfigError(source, "data.path", message + data_path_hint(d.kind));
  };
  if (!fs::exists(dir, ec)) fail("directory \"" + d.path + "\" does not exist");
  if (!fs::is_directory(dir, ec)) fail("\"" + d.path + "\" is not a directory");
  const std::string kind = data_kind_name(d.kind);
  switch (d.kind) {
    case DataKind::FashionMnist:
    case DataKind::Mnist:
      for (const auto& [prefix, what] :
           std::vector<std::pair<std::string, std::string>>{{"train-images", "idx3"},
                                                            {"train-labels", "idx1"},
                                                            {"t10k-images", "idx3"},
                                                            {"t10k-labels", "idx1"}}) {
        const Keys names = idx_names(prefix, what);
        if (std::none_of(names.begin(), names.end(),
                         [&](const std::string& n) { return is_file(dir / n); })) {
          fail("directory \"" + d.path + "\" has no file " + names[0] +
               " (or .gz, or with '.' before \"" + what + "\") needed for " + kind);
        }
      }
      return;
    case DataKind::Cifar10: {
      const std::string sub = "cifar-10-batches-bin";
      std::optional<fs::path> train = cifar_root(dir, "data_batch_1.bin", sub);
      if (!train) {
        fail("directory \"" + d.path + "\" has no file data_batch_1.bin (nor " + sub +
             "/data_batch_1.bin) needed for " + kind);
      }
      for (int b = 2; b <= 5; ++b) {
        const std::string name = "data_batch_" + std::to_string(b) + ".bin";
        if (!is_file(*train / name)) {
          fail("directory \"" + train->string() + "\" has no file " + name + " needed for " + kind);
        }
      }
      if (!cifar_root(dir, "test_batch.bin", sub)) {
        fail("directory \"" + d.path + "\" has no file test_batch.bin (nor " + sub +
             "/test_batch.bin) needed for " + kind);
      }
      return;
    }
    case DataKind::Cifar100: {
      const std::string sub = "cifar-100-binary";
      for (const std::string name : {"train.bin", "test.bin"}) {
        if (!cifar_root(dir, name, sub)) {
          fail("directory \"" + d.path + "\" has no file " + name + " (nor " + sub + "/" + name +
               ") needed for " + kind);
        }
      }
      return;
    }
    case DataKind::ImageFolder:
    case DataKind::Synthetic:
      return;
  }
}

// ---- the model --------------------------------------------------------------------------------

// "model.layers[0].kernal: unknown key ..." -> {"model.layers[0].kernal", "unknown key ..."}.
std::pair<std::string, std::string> split_path_message(const std::string& text,
                                                       const std::string& prefix) {
  const size_t colon = text.find(": ");
  if (text.rfind(prefix, 0) == 0 && colon != std::string::npos && text.find(' ') == colon + 1) {
    return {text.substr(0, colon), text.substr(colon + 2)};
  }
  return {prefix, text};
}

// Builds the network for the data's input shape, so a layer list that does not parse or does not
// fit the input is reported before any data loads.
void check_model(const ExperimentConfig& c, const std::string& source) {
  const std::string where = c.model.uses_preset() ? "model" : "model.layers";
  std::vector<LayerSpec> specs;
  try {
    specs = c.model.uses_preset() ? make_preset(c.model.preset, c.model.width)
                                  : layers_from_json(c.model.layers, "model.layers");
  } catch (const std::invalid_argument& e) {
    auto [path, message] = split_path_message(e.what(), where);
    throw ConfigError(source, path, message);
  }
  const InputShape input{c.data.channels(), c.data.height(), c.data.width()};
  // An image folder's class count is known only when it is read; any count gives the same shapes.
  const int64_t classes = std::max(c.data.known_classes(), 2);
  std::unique_ptr<Backend> cpu = make_backend("cpu");
  try {
    Model model(std::move(specs), input, classes, *cpu);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(source, where,
                      "does not fit the data's input " + std::to_string(input.channels) + "x" +
                          std::to_string(input.height) + "x" + std::to_string(input.width) + ": " +
                          e.what());
  } catch (const std::bad_alloc&) {
    throw ConfigError(source, where, "the network's parameters do not fit in memory");
  }
}

// ---- strict JSON text -------------------------------------------------------------------------

// The images' channels, height and width: fixed by the dataset kind, or set by its options.
struct ImageShape {
  int channels, height, width;
};

ImageShape image_shape(const DataConfig& d) {
  switch (d.kind) {
    case DataKind::FashionMnist:
    case DataKind::Mnist:
      return {1, 28, 28};
    case DataKind::Cifar10:
    case DataKind::Cifar100:
      return {3, 32, 32};
    case DataKind::ImageFolder:  // resized to it, or every image must have it
      return {d.image_folder.channels, d.image_folder.height, d.image_folder.width};
    case DataKind::Synthetic:
      return {d.synthetic.channels, d.synthetic.height, d.synthetic.width};
  }
  return {0, 0, 0};
}

}  // namespace

int DataConfig::channels() const {
  return image_shape(*this).channels;
}
int DataConfig::height() const {
  return image_shape(*this).height;
}
int DataConfig::width() const {
  return image_shape(*this).width;
}

int64_t DataConfig::validation_size(int64_t train_images) const {
  return static_cast<int64_t>(validation_split * static_cast<double>(train_images));
}

int DataConfig::known_classes() const {
  switch (kind) {
    case DataKind::FashionMnist:
    case DataKind::Mnist:
    case DataKind::Cifar10:
      return 10;
    case DataKind::Cifar100:
      return label == Cifar100Label::Fine ? 100 : 20;
    case DataKind::ImageFolder:
      return 0;
    case DataKind::Synthetic:
      return synthetic.classes;
  }
  return 0;
}

bool RegularizationConfig::applies_to(ParamGroup g) const {
  return std::find(groups.begin(), groups.end(), g) != groups.end();
}

double RegularizationConfig::lambda_for(ParamGroup g) const {
  return kind != RegKind::None && applies_to(g) ? lambda : 0.0;
}

ExperimentConfig parse_experiment(const nlohmann::json& raw, const std::string& source_name,
                                  const ParseOptions& options) {
  if (!raw.is_object()) {
    throw ConfigError(source_name, "",
                      "expected a JSON object at the top level, got " + describe_json_value(raw));
  }
  // A document built in memory (a checkpoint's stored config, overrides) gets the bound a file
  // gets from parse_json_text.
  check_json_depth(raw, source_name);
  ExperimentConfig c;
  SchemaContext ctx{&c, source_name, false};
  read_section(experiment_schema(), JsonReader(raw, "", source_name), c, ctx);
  if (options.check_model) check_model(c, source_name);
  if (options.check_files) check_data_files(c.data, source_name);
  return c;
}

void check_json_depth(const nlohmann::json& value, const std::string& source, int max_depth) {
  if (auto path = json_nested_deeper_than(value, max_depth)) {
    throw ConfigError(
        source, *path,
        "nested deeper than " + std::to_string(max_depth) + " levels; a config needs far fewer");
  }
}

nlohmann::json parse_json_text(const std::string& text, const std::string& source) {
  try {
    return parse_json_strict(text);
  } catch (const JsonTextError& e) {
    // A config is text a person wrote: the library's message (line and column) helps.
    if (e.kind == JsonTextError::Kind::Syntax)
      throw ConfigError(source, "", "not valid JSON: " + e.detail);
    throw ConfigError(source, e.path,
                      e.kind == JsonTextError::Kind::TooDeep
                          ? std::string(e.what()) + "; a config needs far fewer"
                          : std::string(e.what()));
  }
}

nlohmann::json read_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(path, "", "is a directory, not a config file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", "cannot open the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_json_text(text.str(), path);
}

ExperimentConfig load_experiment(const std::string& path, const std::vector<std::string>& overrides,
                                 const ParseOptions& options) {
  nlohmann::json raw = read_json_file(path);
  apply_overrides(raw, overrides);
  return parse_experiment(raw, path, options);
}

}  // namespace st
