#include "run/run_files.h"

#include <cfloat>
#include <climits>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config/json_reader.h"
#include "nn/model.h"

namespace st {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kMaxCount = int64_t{1} << 50;
constexpr int64_t kMaxEpoch = INT_MAX;

std::optional<double> opt_number(const JsonReader& r, const std::string& key, NumberRange range) {
  if (!r.has(key)) return std::nullopt;
  return r.number(key, range, std::nullopt);
}

std::optional<int64_t> opt_integer(const JsonReader& r, const std::string& key, int64_t lo,
                                   int64_t hi) {
  if (!r.has(key)) return std::nullopt;
  return r.integer(key, lo, hi, std::nullopt);
}

std::optional<bool> opt_bool(const JsonReader& r, const std::string& key) {
  if (!r.has(key)) return std::nullopt;
  return r.boolean(key, std::nullopt);
}

const json& required_array(const JsonReader& r, const std::string& key) {
  const json& a = r.get(key);
  if (!a.is_array()) r.fail(key, "expected an array, got " + describe_json_value(a));
  return a;
}

// An object whose every value is a count (per-layer channel or dead-filter counts).
void check_counts(const JsonReader& r, const std::string& key) {
  const JsonReader c = r.child(key);
  for (const std::string& k : c.keys()) c.integer(k, 0, kMaxCount, std::nullopt);
}

SelectivitySummary read_selectivity_summary(const JsonReader& s) {
  SelectivitySummary out;
  out.live = s.integer("live", 0, kMaxCount, std::nullopt);
  out.mean = s.number("mean", NumberRange::any(), std::nullopt);
  out.p10 = s.number("p10", NumberRange::any(), 0.0);
  out.median = s.number("median", NumberRange::any(), 0.0);
  out.p90 = s.number("p90", NumberRange::any(), 0.0);
  return out;
}

json selectivity_json(const SelectivitySummary& s) {
  return {{"live", s.live}, {"mean", s.mean}, {"p10", s.p10}, {"median", s.median}, {"p90", s.p90}};
}

std::string line_source(const std::string& path, std::size_t line) {
  return path + ": line " + std::to_string(line);
}

}  // namespace

// ---- config.json -----------------------------------------------------------------------------

ExperimentConfig read_run_config(const std::string& run_dir) {
  RunPaths paths{run_dir};
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec))
    throw RunFileError(run_dir, "", "not a run directory (no such directory)");
  if (!fs::exists(paths.config(), ec))
    throw RunFileError(run_dir, "", "not a run directory (no config.json)");
  return parse_experiment(read_run_json(paths.config()), paths.config(), {.check_files = false});
}

// ---- metrics.jsonl ---------------------------------------------------------------------------

void check_metrics_record(const json& record, const std::string& source) {
  if (!record.is_object())
    throw RunFileError(source, "", "expected a JSON object, got " + describe_json_value(record));
  const JsonReader r(record, "", source);
  r.integer("epoch", 1, kMaxEpoch, std::nullopt);
  for (const char* k : {"train_loss", "test_loss", "val_loss", "lr"})
    opt_number(r, k, NumberRange::non_negative());
  for (const char* k : {"train_acc", "test_acc", "val_acc"})
    opt_number(r, k, NumberRange::unit_closed());
  opt_integer(r, "filters_total", 0, kMaxCount);
  if (r.has("channels")) check_counts(r, "channels");
  if (r.has("dead_total")) check_counts(r, "dead_total");
  if (r.has("dead")) {
    const JsonReader dead = r.child("dead");
    for (const std::string& src : dead.keys()) check_counts(dead, src);
  }
  if (r.has("selectivity")) {
    const JsonReader sel = r.child("selectivity");
    for (const std::string& src : sel.keys()) {
      const JsonReader layers = sel.child(src);
      for (const std::string& l : layers.keys()) read_selectivity_summary(layers.child(l));
    }
  }
}

MetricsFile read_metrics(const std::string& path) {
  MetricsFile out;
  std::error_code ec;
  if (!fs::exists(path, ec)) return out;
  if (!fs::is_regular_file(path, ec)) throw RunFileError(path, "", "not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RunFileError(path, "", "cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  std::size_t begin = 0, line = 0;
  int64_t previous = 0;
  while (begin < all.size()) {
    ++line;
    const std::size_t end = all.find('\n', begin);
    if (end == std::string::npos) {  // no newline after it: an append cut short by a kill
      out.torn_tail = true;
      break;
    }
    const std::string_view text_line(all.data() + begin, end - begin);
    begin = end + 1;
    const std::string where = line_source(path, line);
    json j = parse_run_json(text_line, where);
    as_run_file_error([&] { check_metrics_record(j, where); });
    const int64_t epoch = j.at("epoch").get<int64_t>();
    if (epoch <= previous)
      throw RunFileError(where, "epoch",
                         std::to_string(epoch) + " after epoch " + std::to_string(previous) +
                             " (epochs must increase; was the directory written by two runs?)");
    previous = epoch;
    out.records.push_back(std::move(j));
  }
  return out;
}

json last_metrics_record(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw RunFileError(path, "", "does not exist (is the run started?)");
  MetricsFile m = read_metrics(path);
  if (m.records.empty()) throw RunFileError(path, "", "no finished epoch yet");
  return m.records.back();
}

std::vector<json> truncate_metrics(const std::string& path, int max_epoch) {
  MetricsFile m = read_metrics(path);
  std::vector<json> kept;
  std::string text;
  for (json& r : m.records) {
    if (r.at("epoch").get<int64_t>() > max_epoch) break;
    text += r.dump() + "\n";
    kept.push_back(std::move(r));
  }
  std::error_code ec;
  if (kept.size() != m.records.size() || m.torn_tail || !fs::exists(path, ec))
    write_file_atomic(path, text);
  return kept;
}

// ---- summary.json ----------------------------------------------------------------------------

void check_summary(const json& summary, const std::string& source) {
  const JsonReader r(summary, "", source);
  r.choice("status", {"completed", "diverged"}, std::nullopt);
  r.integer("epochs", 1, kMaxEpoch, std::nullopt);
  r.string("config_fingerprint", std::nullopt);
  for (const char* k : {"params", "flops_per_image", "filters_total"})
    r.integer(k, 0, kMaxCount, std::nullopt);
  const json& final_record = r.get("final");
  if (!final_record.is_null()) check_metrics_record(final_record, source + ": final");
  opt_number(r, "best_test_acc_this_session", NumberRange::unit_closed());
  if (r.has("skip_dead")) {
    const JsonReader s = r.child("skip_dead");
    for (const char* k : {"skipped_total", "params", "flops_per_image"})
      s.integer(k, 0, kMaxCount, std::nullopt);
  }
}

void write_summary(const std::string& path, const json& summary) {
  as_run_file_error([&] { check_summary(summary, path); });
  write_json_atomic(path, summary);
}

json read_summary(const std::string& path) {
  json j = read_run_json(path);
  as_run_file_error([&] { check_summary(j, path); });
  return j;
}

// ---- stats/filters_final.json ----------------------------------------------------------------

json to_json(const FiltersFinal& f) {
  json layers = json::array();
  for (const FilterLayerRecord& l : f.layers) {
    json filters = json::array();
    for (const FilterRecord& r : l.filters) {
      json e = {{"index", r.index}, {"max_activation", r.max_activation}};
      if (r.gamma) e["gamma"] = *r.gamma;
      if (r.beta) e["beta"] = *r.beta;
      if (r.dead_activation) e["dead_activation"] = *r.dead_activation;
      if (r.dead_gamma) e["dead_gamma"] = *r.dead_gamma;
      if (r.selectivity) e["selectivity"] = *r.selectivity;
      if (r.skipped) e["skipped"] = *r.skipped;
      filters.push_back(std::move(e));
    }
    json layer = {{"name", l.name}, {"channels", l.channels}, {"filters", std::move(filters)}};
    if (!l.bn.empty()) layer["bn"] = l.bn;
    if (!l.relu.empty()) layer["relu"] = l.relu;
    if (l.dead_activation) layer["dead_activation"] = *l.dead_activation;
    if (l.dead_gamma) layer["dead_gamma"] = *l.dead_gamma;
    if (l.selectivity) layer["selectivity"] = selectivity_json(*l.selectivity);
    layers.push_back(std::move(layer));
  }
  json j = {{"layers", std::move(layers)}};
  if (!f.source.empty()) j["source"] = f.source;
  if (f.epoch) j["epoch"] = *f.epoch;
  json t = json::object();
  if (f.activation_threshold) t["activation"] = *f.activation_threshold;
  if (f.gamma_threshold) t["gamma"] = *f.gamma_threshold;
  if (f.selectivity_threshold) t["selectivity"] = *f.selectivity_threshold;
  if (!t.empty()) j["thresholds"] = std::move(t);
  return j;
}

FiltersFinal filters_final_from_json(const json& j, const std::string& source) {
  if (!j.is_object())
    throw RunFileError(source, "", "expected a JSON object, got " + describe_json_value(j));
  const JsonReader r(j, "", source);
  FiltersFinal f;
  if (r.has("source")) f.source = r.choice("source", {"exact_eval", "train_pass"}, std::nullopt);
  if (auto e = opt_integer(r, "epoch", 0, kMaxEpoch)) f.epoch = static_cast<int>(*e);
  if (r.has("thresholds")) {
    const JsonReader t = r.child("thresholds");
    f.activation_threshold = opt_number(t, "activation", NumberRange::non_negative());
    f.gamma_threshold = opt_number(t, "gamma", NumberRange::non_negative());
    f.selectivity_threshold = opt_number(t, "selectivity", NumberRange::non_negative());
  }
  const json& layers = required_array(r, "layers");
  std::set<std::string> names;
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const JsonReader l(layers[li], json_path_index("layers", li), source);
    FilterLayerRecord rec;
    rec.name = l.string("name", std::nullopt);
    if (!names.insert(rec.name).second) l.fail("name", "'" + rec.name + "' is listed twice");
    rec.bn = l.string("bn", "");
    rec.relu = l.string("relu", "");
    rec.channels = l.integer("channels", 1, kMaxCount, std::nullopt);
    rec.dead_activation = opt_integer(l, "dead_activation", 0, rec.channels);
    rec.dead_gamma = opt_integer(l, "dead_gamma", 0, rec.channels);
    if (l.has("selectivity")) rec.selectivity = read_selectivity_summary(l.child("selectivity"));
    const json& filters = required_array(l, "filters");
    if (static_cast<int64_t>(filters.size()) > rec.channels)
      l.fail("filters", std::to_string(filters.size()) + " entries for " +
                            std::to_string(rec.channels) + " channels");
    std::vector<bool> seen(static_cast<std::size_t>(rec.channels), false);
    for (std::size_t fi = 0; fi < filters.size(); ++fi) {
      const JsonReader e(filters[fi], json_path_index(l.path_of("filters"), fi), source);
      FilterRecord fr;
      fr.index = e.integer("index", 0, rec.channels - 1, std::nullopt);
      if (seen[static_cast<std::size_t>(fr.index)])
        e.fail("index", std::to_string(fr.index) + " is listed twice");
      seen[static_cast<std::size_t>(fr.index)] = true;
      fr.max_activation = static_cast<float>(
          e.number("max_activation", NumberRange{0.0, FLT_MAX, false, false}, std::nullopt));
      const NumberRange finite_float{-FLT_MAX, FLT_MAX, false, false};
      if (auto v = opt_number(e, "gamma", finite_float)) fr.gamma = static_cast<float>(*v);
      if (auto v = opt_number(e, "beta", finite_float)) fr.beta = static_cast<float>(*v);
      fr.dead_activation = opt_bool(e, "dead_activation");
      fr.dead_gamma = opt_bool(e, "dead_gamma");
      fr.selectivity = opt_number(e, "selectivity", NumberRange{-1.0, 1.0, false, false});
      fr.skipped = opt_bool(e, "skipped");
      rec.filters.push_back(fr);
    }
    f.layers.push_back(std::move(rec));
  }
  return f;
}

FiltersFinal read_filters_final(const std::string& path) {
  const json j = read_run_json(path);
  return as_run_file_error([&] { return filters_final_from_json(j, path); });
}

void write_filters_final(const std::string& path, const FiltersFinal& f) {
  const json j = to_json(f);
  as_run_file_error([&] {
    return filters_final_from_json(j, path);
  });  // the writer never writes what the reader refuses
  write_json_atomic(path, j);
}

FiltersFinal make_filters_final(const std::vector<LayerStats>& stats, const Model& model,
                                const std::string& source, int epoch, const StatsThresholds& t,
                                const BlockChannels* computed) {
  FiltersFinal out;
  out.source = source;
  out.epoch = epoch;
  out.activation_threshold = t.activation;
  out.gamma_threshold = t.gamma;
  out.selectivity_threshold = t.selectivity;
  const auto& blocks = model.conv_bn_relu_blocks();
  if (stats.size() != blocks.size())
    throw std::invalid_argument("filter statistics: " + std::to_string(stats.size()) +
                                " layers for " + std::to_string(blocks.size()) + " blocks");
  for (std::size_t i = 0; i < stats.size(); ++i) {
    const LayerStats& l = stats[i];
    FilterLayerRecord layer;
    layer.name = l.name;
    layer.bn = model.specs()[blocks[i].bn].name;
    layer.relu = model.specs()[blocks[i].relu].name;
    layer.channels = l.channels;
    layer.dead_activation = l.dead_activation;
    layer.dead_gamma = l.dead_gamma;
    layer.selectivity = l.selectivity;
    std::vector<bool> skipped(l.filters.size(), computed != nullptr);
    if (computed)
      for (int64_t c : computed->at(i)) skipped[static_cast<std::size_t>(c)] = false;
    for (std::size_t f = 0; f < l.filters.size(); ++f) {
      const FilterStat& s = l.filters[f];
      FilterRecord r;
      r.index = static_cast<int64_t>(f);
      r.max_activation = s.max_activation;
      r.gamma = s.gamma;
      r.beta = s.beta;
      r.dead_activation = s.dead_activation;
      r.dead_gamma = s.dead_gamma;
      r.selectivity = s.selectivity;
      if (computed) r.skipped = static_cast<bool>(skipped[f]);
      layer.filters.push_back(r);
    }
    out.layers.push_back(std::move(layer));
  }
  return out;
}

json filters_json(const std::vector<LayerStats>& stats, const Model& model, const char* source,
                  int epoch, const StatsThresholds& t, const BlockChannels* computed) {
  return to_json(make_filters_final(stats, model, source, epoch, t, computed));
}

}  // namespace st
