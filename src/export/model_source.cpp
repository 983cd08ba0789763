#include "export/model_source.h"

#include <filesystem>
#include <stdexcept>

#include "io/validate.h"
#include "run/run_files.h"

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
  const RunPaths run{dir};
  if (!fs::is_directory(dir)) throw RunFileError(dir, "", "run directory does not exist");
  if (!fs::exists(run.last_checkpoint()))
    throw RunFileError(
        dir, "", "no checkpoint at " + run.last_checkpoint() + " (has the run finished an epoch?)");
  ModelSource s;
  s.run_dir = dir;
  s.config = read_run_config(dir);
  s.checkpoint = std::make_unique<Checkpoint>(Checkpoint::load(run.last_checkpoint()));
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
