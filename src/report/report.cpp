#include "report/report.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "run/run_files.h"

namespace st {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A run's config.json as written (its keys are the report's settings).
json read_config_json(const RunPaths& run) {
  json j = read_run_json(run.config());
  if (!j.is_object()) throw RunFileError(run.config(), "", "expected a JSON object");
  return j;
}

// The last finished epoch, with what the table needs of it.
json last_metrics(const RunPaths& run) {
  json last = last_metrics_record(run.metrics());
  const std::string where = run.metrics() + ": epoch " + std::to_string(last["epoch"].get<int>());
  if (!last.contains("filters_total")) throw RunFileError(where, "filters_total", "missing");
  for (const char* k : {"dead", "dead_total"})
    if (!last.contains(k) || !last[k].contains("gamma"))
      throw RunFileError(where, std::string(k) + ".gamma", "missing");
  return last;
}

// Leaf values of a JSON object by dotted path.
void flatten(const json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

// Settings always shown first, in the paper's order.
const std::vector<std::pair<std::string, std::string>> kLeadSettings = {
    {"optimizer.name", "optimizer"},
    {"regularization.kind", "regularization"},
    {"regularization.lambda", "lambda"}};

// Keys that never make a row different in a way worth a column.
bool ignored_setting(const std::string& key) {
  static const std::vector<std::string> prefixes = {
      "output.",      "statistics.",      "description",     "data.path",
      "data.loader.", "training.threads", "training.device", "training.eval_every"};
  for (const std::string& p : prefixes)
    if (key.rfind(p, 0) == 0) return true;
  return false;
}

double pct(double part, double whole) {
  return whole > 0 ? 100.0 * part / whole : 0.0;
}

std::string fmt(double v, int digits = 1) {
  if (v < 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

// Orders "conv2" before "conv10": runs of digits compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      const std::string na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
      if (na.size() != nb.size()) return na.size() < nb.size();  // no leading zeros in names
      if (na != nb) return na < nb;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

using FlatConfig = std::map<std::string, std::string>;

// Whether the runs that have `key` disagree on its value.
bool values_differ(const std::vector<FlatConfig>& settings, const std::string& key) {
  const std::string* first = nullptr;
  for (const FlatConfig& s : settings) {
    auto it = s.find(key);
    if (it == s.end()) continue;
    if (first && *first != it->second) return true;
    if (!first) first = &it->second;
  }
  return false;
}

bool missing_somewhere(const std::vector<FlatConfig>& settings, const std::string& key) {
  for (const FlatConfig& s : settings)
    if (!s.count(key)) return true;
  return false;
}

// A key that only some runs have is explained when an enclosing object holds a key that
// every run has and whose value differs (optimizer.name for optimizer.momentum, data.kind
// for data.synthetic.noise): the saved config holds only the keys that apply.
bool absence_explained(const std::vector<FlatConfig>& settings, const std::string& key) {
  for (std::size_t dot = key.rfind('.'); dot != std::string::npos && dot > 0;
       dot = key.rfind('.', dot - 1)) {
    const std::string prefix = key.substr(0, dot + 1);
    for (auto it = settings[0].lower_bound(prefix);
         it != settings[0].end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      if (!missing_somewhere(settings, it->first) && values_differ(settings, it->first))
        return true;
    if (dot == 0) break;
  }
  return false;
}

std::set<std::string> varying_settings(const std::vector<FlatConfig>& settings) {
  std::set<std::string> all, varying;
  for (const FlatConfig& s : settings)
    for (const auto& kv : s)
      if (!ignored_setting(kv.first)) all.insert(kv.first);
  for (const std::string& key : all) {
    if (values_differ(settings, key) ||
        (missing_somewhere(settings, key) && !absence_explained(settings, key)))
      varying.insert(key);
  }
  return varying;
}

// Live-filter-weighted mean of the per-layer selectivity means of one source.
void read_selectivity(const json& m, const std::string& source, ReportRow& row) {
  if (source.empty() || !m.contains("selectivity") || !m["selectivity"].contains(source)) return;
  double sum = 0;
  int64_t live = 0;
  for (const auto& layer : m["selectivity"][source]) {
    const int64_t n = layer.value("live", int64_t{0});
    sum += static_cast<double>(n) * layer.value("mean", 0.0);
    live += n;
  }
  row.live_filters = live;
  row.mean_selectivity = live > 0 ? sum / static_cast<double>(live) : -1;
}

}  // namespace

ReportTable build_report(const std::vector<std::string>& input_dirs, bool skip_incomplete) {
  if (input_dirs.empty()) throw std::runtime_error("report: no run directories given");
  std::vector<FlatConfig> settings;
  std::vector<json> finals;
  std::vector<std::string> run_dirs;
  ReportTable t;
  for (const std::string& dir : input_dirs) {
    try {
      const RunPaths run{dir};
      const json cfg = read_config_json(run);
      json final_metrics = last_metrics(run);
      FlatConfig flat;
      flatten(cfg, "", flat);
      settings.push_back(std::move(flat));
      finals.push_back(std::move(final_metrics));
      run_dirs.push_back(dir);
    } catch (const std::runtime_error& e) {
      if (!skip_incomplete) throw;
      t.skipped.push_back(e.what());
    }
  }
  if (run_dirs.empty())
    throw std::runtime_error("report: none of the " + std::to_string(input_dirs.size()) +
                             " directories holds a run with a finished epoch");
  // Layers from the first run with per-layer counts.
  for (auto it = finals[0]["dead"]["gamma"].begin(); it != finals[0]["dead"]["gamma"].end(); ++it)
    t.layers.push_back(it.key());
  std::sort(t.layers.begin(), t.layers.end(), natural_less);

  std::set<std::string> varying = varying_settings(settings);
  std::vector<std::string> keys;
  for (const auto& [key, name] : kLeadSettings) {
    keys.push_back(key);
    t.setting_names.push_back(name);
    varying.erase(key);
  }
  for (const std::string& k : varying) {
    keys.push_back(k);
    t.setting_names.push_back(k);
  }

  for (std::size_t r = 0; r < run_dirs.size(); ++r) {
    ReportRow row;
    row.run_dir = run_dirs[r];
    for (const std::string& k : keys) {
      auto it = settings[r].find(k);
      // A layer list is too long for a cell; its presence is what tells the rows apart.
      if (k == "model.layers" && it != settings[r].end())
        row.settings.push_back("custom");
      else
        row.settings.push_back(it == settings[r].end() ? "-" : it->second);
    }
    const json& m = finals[r];
    row.epochs = m.value("epoch", 0);
    if (m.contains("test_acc")) row.test_error_pct = 100.0 * (1.0 - m["test_acc"].get<double>());
    const double filters = m.value("filters_total", 0.0);
    row.activation_source = m["dead"].contains("exact_eval")   ? "exact_eval"
                            : m["dead"].contains("train_pass") ? "train_pass"
                                                               : "";
    read_selectivity(m, row.activation_source, row);
    // Per-layer channel counts, recorded in every metrics line.
    std::map<std::string, double> channels;
    if (m.contains("channels"))
      for (auto it = m["channels"].begin(); it != m["channels"].end(); ++it)
        channels[it.key()] = it.value().get<double>();
    auto layer_pct = [&](const json& per_layer, const std::string& layer) {
      if (!per_layer.contains(layer)) return -1.0;
      auto c = channels.find(layer);
      return c == channels.end() ? -1.0 : pct(per_layer[layer].get<double>(), c->second);
    };
    for (const std::string& layer : t.layers) {
      row.dead_gamma_pct.push_back(layer_pct(m["dead"]["gamma"], layer));
      row.dead_activation_pct.push_back(row.activation_source.empty()
                                            ? -1.0
                                            : layer_pct(m["dead"][row.activation_source], layer));
    }
    row.total_dead_gamma_pct = pct(m["dead_total"]["gamma"].get<double>(), filters);
    if (!row.activation_source.empty())
      row.total_dead_activation_pct =
          pct(m["dead_total"][row.activation_source].get<double>(), filters);
    const std::string export_report = RunPaths{run_dirs[r]}.export_report();
    if (fs::exists(export_report)) {
      json e = read_run_json(export_report);
      if (e.contains("params") && e.contains("flops")) {
        row.params_kept_pct =
            pct(e["params"]["after"].get<double>(), e["params"]["before"].get<double>());
        row.flops_kept_pct =
            pct(e["flops"]["after"].get<double>(), e["flops"]["before"].get<double>());
      }
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

namespace {

std::vector<std::string> header(const ReportTable& t) {
  std::vector<std::string> h = t.setting_names;
  h.push_back("epochs");
  for (const std::string& l : t.layers) h.push_back(l + " %dead act");
  h.push_back("total %dead act");
  for (const std::string& l : t.layers) h.push_back(l + " %dead gamma");
  h.push_back("total %dead gamma");
  h.push_back("test error %");
  h.push_back("mean selectivity");
  h.push_back("params kept %");
  h.push_back("FLOPs kept %");
  h.push_back("activation source");
  h.push_back("run");
  return h;
}

std::vector<std::string> cells(const ReportRow& r) {
  std::vector<std::string> c = r.settings;
  c.push_back(std::to_string(r.epochs));
  for (double v : r.dead_activation_pct) c.push_back(fmt(v));
  c.push_back(fmt(r.total_dead_activation_pct));
  for (double v : r.dead_gamma_pct) c.push_back(fmt(v));
  c.push_back(fmt(r.total_dead_gamma_pct));
  c.push_back(fmt(r.test_error_pct, 2));
  c.push_back(fmt(r.mean_selectivity, 3));
  c.push_back(fmt(r.params_kept_pct));
  c.push_back(fmt(r.flops_kept_pct));
  c.push_back(r.activation_source.empty() ? "-" : r.activation_source);
  c.push_back(r.run_dir);
  return c;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

}  // namespace

std::string report_markdown(const ReportTable& t) {
  std::ostringstream os;
  auto row = [&](const std::vector<std::string>& c) {
    os << "|";
    for (const std::string& s : c) os << " " << s << " |";
    os << "\n";
  };
  const auto h = header(t);
  row(h);
  os << "|";
  for (std::size_t i = 0; i < h.size(); ++i) os << "---|";
  os << "\n";
  for (const ReportRow& r : t.rows) row(cells(r));
  return os.str();
}

std::string report_csv(const ReportTable& t) {
  std::ostringstream os;
  auto row = [&](const std::vector<std::string>& c) {
    for (std::size_t i = 0; i < c.size(); ++i) os << (i ? "," : "") << csv_cell(c[i]);
    os << "\n";
  };
  row(header(t));
  for (const ReportRow& r : t.rows) row(cells(r));
  return os.str();
}

json report_json(const ReportTable& t) {
  json rows = json::array();
  for (const ReportRow& r : t.rows) {
    json settings = json::object();
    for (std::size_t i = 0; i < t.setting_names.size(); ++i)
      settings[t.setting_names[i]] = r.settings[i];
    json layers = json::object();
    for (std::size_t i = 0; i < t.layers.size(); ++i)
      layers[t.layers[i]] = {{"dead_activation_pct", r.dead_activation_pct[i]},
                             {"dead_gamma_pct", r.dead_gamma_pct[i]}};
    rows.push_back({{"run", r.run_dir},
                    {"settings", settings},
                    {"epochs", r.epochs},
                    {"activation_source", r.activation_source},
                    {"layers", layers},
                    {"total_dead_activation_pct", r.total_dead_activation_pct},
                    {"total_dead_gamma_pct", r.total_dead_gamma_pct},
                    {"test_error_pct", r.test_error_pct},
                    {"mean_selectivity", r.mean_selectivity},
                    {"live_filters", r.live_filters},
                    {"params_kept_pct", r.params_kept_pct},
                    {"flops_kept_pct", r.flops_kept_pct}});
  }
  return {
      {"layers", t.layers}, {"settings", t.setting_names}, {"rows", rows}, {"skipped", t.skipped}};
}

}  // namespace st
