// The config schema: one table of fields per section. Each field knows its key, when it applies,
// its default, how to read and write it, and whether it changes what training computes. The
// parser (experiment_parse.cpp), the writer and the resume comparison (experiment_json.cpp) and
// the docs test (tests/test_config.cpp against docs/config.md) all walk these tables, so adding a
// key is one entry in one table plus its line in docs/config.md.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "config/json_reader.h"
#include "config/names.h"

namespace st {

// What a field's functions may look at besides their own section.
struct SchemaContext {
  // The config being read or written. While parsing it holds the sections read so far (in root
  // table order), so a field may depend on an earlier section (regularization on optimizer.name).
  const ExperimentConfig* root = nullptr;
  std::string source;          // file name, for messages and the default output.name
  bool training_only = false;  // writing: only the fields that change what training computes
};

// One key as the docs list it: its section path ("data.synthetic"), name, default (on the
// section's default choices; nullopt when required) and whether it is a nested section.
struct SchemaKey {
  std::string path, key;
  std::optional<nlohmann::json> fallback;
  bool section = false;
};

template <class S>
struct Field {
  std::string key;
  // Whether the key applies, given the section's discriminators (the fields marked
  // `discriminator`, read before the key check). A key that does not apply is refused with
  // "does not apply to ..." and is not written. Empty: always.
  std::function<bool(const S&)> applies;
  // The default as JSON, for this section's choices; nullopt: the key is required.
  std::function<std::optional<nlohmann::json>(const S&, const SchemaContext&)> fallback;
  // Reads the value (given or defaulted) from the section's reader into the section.
  std::function<void(const JsonReader&, S&, const SchemaContext&)> read;
  std::function<nlohmann::json(const S&, const SchemaContext&)> write;
  // Whether the key changes what training computes (the fingerprint, the resume check).
  // Empty: always.
  std::function<bool(const ExperimentConfig&)> fingerprint;
  bool discriminator = false;
  // Left out of the written config when true (an empty description). Empty: never.
  std::function<bool(const S&)> omit_if;
  // For a nested section: its keys, listed under `path`.
  std::function<void(const std::string& path, std::vector<SchemaKey>&)> list_children;

  bool applies_to(const S& s) const { return !applies || applies(s); }
};

template <class S>
struct Schema {
  std::vector<Field<S>> fields;
  // "optimizer \"sgd\"": what "does not apply to ..." names. Empty: the keys never depend on a
  // choice.
  std::function<std::string(const S&)> context;
  // Checks across fields, after all were read (nesterov needs momentum, ...).
  std::function<void(const JsonReader&, S&, const SchemaContext&)> check;
  // Runs before anything is read (model: exactly one of preset and layers).
  std::function<void(const JsonReader&)> precheck;

  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const Field<S>& f : fields) out.push_back(f.key);
    return out;
  }
  const Field<S>& field(const std::string& key) const {
    for (const Field<S>& f : fields) {
      if (f.key == key) return f;
    }
    throw std::logic_error("config schema has no key \"" + key + "\"");
  }
};

// Reads one section: discriminators, then the key check, then the other applicable fields in
// table order, then the section's check.
template <class S>
void read_section(const Schema<S>& schema, const JsonReader& r, S& s, const SchemaContext& ctx) {
  if (schema.precheck) schema.precheck(r);
  for (const Field<S>& f : schema.fields) {
    if (f.discriminator) f.read(r, s, ctx);
  }
  std::vector<std::string> valid;
  for (const Field<S>& f : schema.fields) {
    if (f.applies_to(s)) valid.push_back(f.key);
  }
  if (schema.context) {
    r.allow_keys(valid, schema.keys(), schema.context(s));
  } else {
    r.allow_keys(valid);
  }
  for (const Field<S>& f : schema.fields) {
    if (!f.discriminator && f.applies_to(s)) f.read(r, s, ctx);
  }
  if (schema.check) schema.check(r, s, ctx);
}

// Writes the applicable fields (with ctx.training_only: those that change training).
template <class S>
nlohmann::json write_section(const Schema<S>& schema, const S& s, const SchemaContext& ctx) {
  nlohmann::json j = nlohmann::json::object();
  for (const Field<S>& f : schema.fields) {
    if (!f.applies_to(s)) continue;
    if (f.omit_if && f.omit_if(s)) continue;
    if (ctx.training_only && f.fingerprint && !f.fingerprint(*ctx.root)) continue;
    j[f.key] = f.write(s, ctx);
  }
  return j;
}

// Every key of a section and its nested sections, with defaults on `sample`'s choices.
template <class S>
void list_section(const Schema<S>& schema, const std::string& path, const S& sample,
                  std::vector<SchemaKey>& out) {
  const SchemaContext ctx;
  for (const Field<S>& f : schema.fields) {
    SchemaKey k{path, f.key, f.fallback ? f.fallback(sample, ctx) : std::nullopt,
                static_cast<bool>(f.list_children)};
    out.push_back(k);
    if (f.list_children) f.list_children(json_path_join(path, f.key), out);
  }
}

// The section tables.
const Schema<ExperimentConfig>& experiment_schema();
const Schema<DataConfig>& data_schema();
const Schema<ModelConfig>& model_schema();
const Schema<OptimizerConfig>& optimizer_schema();
const Schema<RegularizationConfig>& regularization_schema();
const Schema<ScheduleConfig>& schedule_schema();
const Schema<TrainingConfig>& training_schema();
const Schema<StatisticsConfig>& statistics_schema();
const Schema<OutputConfig>& output_schema();
const Schema<SparsityConfig>& sparsity_schema();

// All keys of the config, sections first-level by first-level ("" is the top level).
std::vector<SchemaKey> schema_keys();

}  // namespace st
