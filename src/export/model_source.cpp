#include "export/model_source.h"

#include <filesystem>
#include <stdexcept>

#include "io/validate.h"

namespace st {

namespace fs = std::filesystem;

namespace {

std::optional<data::Normalization> stored_normalization(const Checkpoint& ckpt) {
  const nlohmann::json& meta = ckpt.meta();
  if (!meta.contains("normalization")) return std::nullopt;
  const nlohmann::json& n = meta.at("normalization");
  try {
    data::Normalization out;
    out.mean = n.at("mean").get<std::vector<float>>();
    out.std = n.at("std").get<std::vector<float>>();
    if (out.mean.size() != out.std.size())
      throw std::runtime_error("mean has " + std::to_string(out.mean.size()) + " entries, std " +
                               std::to_string(out.std.size()));
    return out;
  } catch (const std::exception& e) {
    throw std::runtime_error(ckpt.path() + ": metadata 'normalization': " + e.what());
  }
}

}  // namespace

ModelSource open_run(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw std::runtime_error(dir + ": run directory does not exist");
  const fs::path ckpt = root / "checkpoints" / "last.safetensors";
  if (!fs::exists(ckpt))
    throw std::runtime_error(dir + ": no checkpoint at " + ckpt.string() +
                             " (has the run finished an epoch?)");
  const fs::path config = root / "config.json";
  if (!fs::exists(config)) throw std::runtime_error(dir + ": no config.json in the run directory");
  ModelSource s;
  s.run_dir = dir;
  s.checkpoint = std::make_unique<Checkpoint>(Checkpoint::load(ckpt.string()));
  s.config = parse_experiment(read_json_file(config.string()), config.string(),
                              ParseOptions{.check_files = false});
  s.normalization = stored_normalization(*s.checkpoint);
  return s;
}

ModelSource open_model_file(const std::string& path) {
  if (!fs::exists(path)) throw std::runtime_error(path + ": file does not exist");
  ModelSource s;
  s.checkpoint = std::make_unique<Checkpoint>(Checkpoint::load(path));
  const nlohmann::json& meta = s.checkpoint->meta();
  if (!meta.contains("config"))
    throw std::runtime_error(path +
                             ": metadata has no 'config' (the experiment config is needed to "
                             "find the data)");
  s.config =
      parse_experiment(meta.at("config"), path + ": config", ParseOptions{.check_files = false});
  s.normalization = stored_normalization(*s.checkpoint);
  return s;
}

ExperimentData load_source_data(const ModelSource& source, const std::string& data_path) {
  DataConfig c = source.config.data;
  if (!data_path.empty()) c.path = data_path;
  try {
    return load_experiment_data(c);
  } catch (const InputError& e) {  // a bad data file stays the user's error (exit code 2)
    throw InputError(std::string("cannot load the data of ") + source.file() + ": " + e.what() +
                     (data_path.empty() ? " (use --data-path)" : ""));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot load the data of ") + source.file() + ": " +
                             e.what() + (data_path.empty() ? " (use --data-path)" : ""));
  }
}

data::Normalization source_normalization(const ModelSource& source, const ExperimentData& data) {
  return source.normalization ? *source.normalization : data.normalization;
}

nlohmann::json normalization_json(const data::Normalization& n) {
  return {{"mean", n.mean}, {"std", n.std}};
}

}  // namespace st
