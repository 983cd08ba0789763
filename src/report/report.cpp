#include "report/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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
      "output.",          "statistics.",     "description",        "data.loader.",
      "training.threads", "training.device", "training.eval_every"};
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

// Whether a flattened value is a JSON string (a choice such as "adam" or "synthetic"):
// flatten() keeps strings as they are and writes everything else as JSON text.
bool is_choice(const std::string& value) {
  return json::parse(value, nullptr, false).is_discarded();
}

// A key that only some runs have is explained when an enclosing object holds a choice that
// every run has, whose value differs, and which decides the key's presence (runs with the
// same choice all have the key or all lack it): optimizer.name for optimizer.momentum,
// data.kind for data.synthetic.noise. The saved config holds only the keys that apply. A
// number (data.train_subset) never decides which keys apply, so it explains nothing.
bool absence_explained(const std::vector<FlatConfig>& settings, const std::string& key) {
  auto decides = [&](const std::string& choice) {
    std::map<std::string, bool> present;  // choice value -> key present
    for (const FlatConfig& s : settings) {
      auto c = s.find(choice);
      if (c == s.end() || !is_choice(c->second)) return false;
      const bool has = s.count(key) > 0;
      auto [it, inserted] = present.emplace(c->second, has);
      if (!inserted && it->second != has) return false;
    }
    return values_differ(settings, choice);
  };
  for (std::size_t dot = key.rfind('.'); dot != std::string::npos && dot > 0;
       dot = key.rfind('.', dot - 1)) {
    const std::string prefix = key.substr(0, dot + 1);
    for (auto it = settings[0].lower_bound(prefix);
         it != settings[0].end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      if (it->first != key && decides(it->first)) return true;
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

// Test accuracies of every epoch that evaluated the test set, in order (validated records).
std::vector<double> test_accuracies(const std::string& path) {
  std::vector<double> acc;
  for (const json& j : read_metrics(path).records)
    if (j.contains("test_acc") && j["test_acc"].is_number())
      acc.push_back(j["test_acc"].get<double>());
  return acc;
}

const std::string kDecayColumn = "decay/step";

// The weight decay one step applies: lambda x lr for decoupled decay; for L2, lambda itself
// (it enters the gradient, so what it does per step depends on the optimizer), labelled.
std::string per_step_decay(const FlatConfig& c) {
  auto get = [&](const std::string& k) {
    auto it = c.find(k);
    return it == c.end() ? std::string() : it->second;
  };
  const std::string kind = get("regularization.kind");
  if (kind == "none") return "0";
  const std::string lambda = get("regularization.lambda");
  if (lambda.empty()) return "-";
  if (kind == "l2") return lambda + " (L2 grad)";
  if (kind != "decoupled") return "-";
  const double lr = std::strtod(get("optimizer.lr").c_str(), nullptr);
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", std::strtod(lambda.c_str(), nullptr) * lr);
  return b;
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

ReportTable build_report(const std::vector<std::string>& input_dirs, bool skip_incomplete,
                         int last_k) {
  if (last_k < 1) throw std::invalid_argument("report: last k must be >= 1");
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
  keys.push_back(kDecayColumn);  // computed, not a config key
  t.setting_names.push_back(kDecayColumn);
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
      if (k == kDecayColumn)
        row.settings.push_back(per_step_decay(settings[r]));
      else if (k == "model.layers" && it != settings[r].end())
        row.settings.push_back("custom");
      else
        row.settings.push_back(it == settings[r].end() ? "-" : it->second);
    }
    const json& m = finals[r];
    row.epochs = m.value("epoch", 0);
    row.config = settings[r];
    if (m.contains("test_acc")) row.test_error_pct = 100.0 * (1.0 - m["test_acc"].get<double>());
    if (m.contains("val_acc")) row.val_error_pct = 100.0 * (1.0 - m["val_acc"].get<double>());
    const std::vector<double> acc = test_accuracies(RunPaths{run_dirs[r]}.metrics());
    if (!acc.empty()) {
      row.best_test_error_pct = 100.0 * (1.0 - *std::max_element(acc.begin(), acc.end()));
      const std::size_t k = std::min<std::size_t>(acc.size(), static_cast<std::size_t>(last_k));
      double sum = 0;
      for (std::size_t i = acc.size() - k; i < acc.size(); ++i) sum += acc[i];
      row.last_k_test_error_pct = 100.0 * (1.0 - sum / static_cast<double>(k));
      row.last_k_evaluations = static_cast<int>(k);
    }
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
  h.push_back("activation source");
  h.push_back("epochs");
  for (const std::string& l : t.layers) h.push_back(l + " %dead act");
  h.push_back("total %dead act");
  for (const std::string& l : t.layers) h.push_back(l + " %dead gamma");
  h.push_back("total %dead gamma");
  h.push_back("test error %");
  h.push_back("best test error %");
  h.push_back("test error % (mean of last k)");
  h.push_back("val error %");
  h.push_back("mean selectivity");
  h.push_back("params kept %");
  h.push_back("FLOPs kept %");
  h.push_back("run");
  return h;
}

std::vector<std::string> cells(const ReportRow& r) {
  std::vector<std::string> c = r.settings;
  c.push_back(r.activation_source.empty() ? "-" : r.activation_source);
  c.push_back(std::to_string(r.epochs));
  for (double v : r.dead_activation_pct) c.push_back(fmt(v));
  c.push_back(fmt(r.total_dead_activation_pct));
  for (double v : r.dead_gamma_pct) c.push_back(fmt(v));
  c.push_back(fmt(r.total_dead_gamma_pct));
  c.push_back(fmt(r.test_error_pct, 2));
  c.push_back(fmt(r.best_test_error_pct, 2));
  c.push_back(r.last_k_evaluations > 0 ? fmt(r.last_k_test_error_pct, 2) + " (" +
                                             std::to_string(r.last_k_evaluations) + ")"
                                       : "-");
  c.push_back(fmt(r.val_error_pct, 2));
  c.push_back(fmt(r.mean_selectivity, 3));
  c.push_back(fmt(r.params_kept_pct));
  c.push_back(fmt(r.flops_kept_pct));
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
                    {"best_test_error_pct", r.best_test_error_pct},
                    {"last_k_test_error_pct", r.last_k_test_error_pct},
                    {"last_k_evaluations", r.last_k_evaluations},
                    {"val_error_pct", r.val_error_pct},
                    {"mean_selectivity", r.mean_selectivity},
                    {"live_filters", r.live_filters},
                    {"params_kept_pct", r.params_kept_pct},
                    {"flops_kept_pct", r.flops_kept_pct}});
  }
  return {
      {"layers", t.layers}, {"settings", t.setting_names}, {"rows", rows}, {"skipped", t.skipped}};
}

// --- aggregation over seeds ------------------------------------------------------------------

std::vector<std::string> auto_group_keys(const ReportTable& t) {
  std::vector<std::string> keys;
  for (const std::string& n : t.setting_names)
    if (n != "training.seed") keys.push_back(n);
  return keys;
}

namespace {

Spread spread_of(const std::vector<double>& v) {
  Spread s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

// The value of a group key for one row: a setting column by its name, else a config key.
std::string group_value(const ReportTable& t, const ReportRow& r, const std::string& key) {
  for (std::size_t i = 0; i < t.setting_names.size(); ++i)
    if (t.setting_names[i] == key) return r.settings[i];
  for (const auto& [config_key, name] : kLeadSettings)
    if (name == key) return group_value(t, r, config_key);
  auto it = r.config.find(key);
  return it == r.config.end() ? "-" : it->second;
}

bool key_known(const ReportTable& t, const std::string& key) {
  if (std::find(t.setting_names.begin(), t.setting_names.end(), key) != t.setting_names.end())
    return true;
  for (const ReportRow& r : t.rows)
    if (r.config.count(key)) return true;
  return false;
}

// Figures of one row in GroupedReport::figures order; -1 where the run did not record it.
std::vector<double> row_figures(const ReportRow& r) {
  std::vector<double> f = {r.total_dead_activation_pct, r.total_dead_gamma_pct,  r.test_error_pct,
                           r.best_test_error_pct,       r.last_k_test_error_pct, r.val_error_pct,
                           r.mean_selectivity};
  f.insert(f.end(), r.dead_activation_pct.begin(), r.dead_activation_pct.end());
  f.insert(f.end(), r.dead_gamma_pct.begin(), r.dead_gamma_pct.end());
  return f;
}

std::string fmt_spread(const Spread& s, int digits) {
  if (s.n == 0) return "-";
  std::string out = fmt(s.mean, digits) + " ± " + fmt(s.std, digits);
  if (s.n > 1) out += " (" + fmt(s.min, digits) + "–" + fmt(s.max, digits) + ")";
  return out;
}

int figure_digits(const std::string& figure) {
  if (figure == "mean_selectivity") return 3;
  if (figure.find("error") != std::string::npos) return 2;
  return 1;
}

}  // namespace

GroupedReport group_report(const ReportTable& t, const std::vector<std::string>& keys, int last_k) {
  GroupedReport g;
  g.group_by = keys;
  g.last_k = last_k;
  for (const std::string& k : keys)
    if (!key_known(t, k))
      throw std::invalid_argument("--group-by: no run has the setting '" + k + "'");
  g.figures = {"total_dead_activation_pct", "total_dead_gamma_pct",  "test_error_pct",
               "best_test_error_pct",       "last_k_test_error_pct", "val_error_pct",
               "mean_selectivity"};
  for (const std::string& l : t.layers) g.figures.push_back(l + "_dead_activation_pct");
  for (const std::string& l : t.layers) g.figures.push_back(l + "_dead_gamma_pct");

  // Runs whose dead counts come from different criteria are never pooled: the activation
  // source is always part of a group's key.
  g.group_by.push_back("activation source");
  std::vector<std::vector<std::vector<double>>> values;  // group -> figure -> run values
  std::map<std::vector<std::string>, std::size_t> index;
  for (const ReportRow& r : t.rows) {
    std::vector<std::string> key;
    for (const std::string& k : keys) key.push_back(group_value(t, r, k));
    key.push_back(r.activation_source.empty() ? "-" : r.activation_source);
    auto [it, inserted] = index.emplace(key, g.groups.size());
    if (inserted) {
      g.groups.push_back({key, {}, {}});
      values.emplace_back(g.figures.size());
    }
    g.groups[it->second].runs.push_back(r.run_dir);
    const std::vector<double> f = row_figures(r);
    for (std::size_t i = 0; i < f.size(); ++i)
      if (f[i] >= 0) values[it->second][i].push_back(f[i]);
  }
  for (std::size_t gi = 0; gi < g.groups.size(); ++gi)
    for (const std::vector<double>& v : values[gi]) g.groups[gi].figures.push_back(spread_of(v));
  return g;
}

namespace {

// Markdown shows the figures a reader compares; csv and json carry all of them.
const std::vector<std::pair<std::string, std::string>> kMarkdownFigures = {
    {"total_dead_activation_pct", "total %dead act"},
    {"total_dead_gamma_pct", "total %dead gamma"},
    {"test_error_pct", "test error %"},
    {"best_test_error_pct", "best test error %"},
    {"last_k_test_error_pct", "test error % (mean of last k)"},
    {"val_error_pct", "val error %"},
    {"mean_selectivity", "mean selectivity"}};

std::size_t figure_index(const GroupedReport& g, const std::string& name) {
  return static_cast<std::size_t>(std::find(g.figures.begin(), g.figures.end(), name) -
                                  g.figures.begin());
}

}  // namespace

std::string grouped_markdown(const GroupedReport& g) {
  std::vector<std::string> h = g.group_by;
  h.push_back("n");
  std::vector<std::size_t> shown;
  for (const auto& [fig, label] : kMarkdownFigures) {
    h.push_back(label == "test error % (mean of last k)"
                    ? "test error % (mean of last " + std::to_string(g.last_k) + ")"
                    : label);
    shown.push_back(figure_index(g, fig));
  }
  // Per-layer % dead by activation.
  for (std::size_t i = 0; i < g.figures.size(); ++i) {
    const std::string& f = g.figures[i];
    const std::string suffix = "_dead_activation_pct";
    if (f.size() > suffix.size() &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        f != "total_dead_activation_pct") {
      h.push_back(f.substr(0, f.size() - suffix.size()) + " %dead act");
      shown.push_back(i);
    }
  }
  std::ostringstream os;
  auto row = [&](const std::vector<std::string>& c) {
    os << "|";
    for (const std::string& s : c) os << " " << s << " |";
    os << "\n";
  };
  row(h);
  os << "|";
  for (std::size_t i = 0; i < h.size(); ++i) os << "---|";
  os << "\n";
  for (const ReportGroup& gr : g.groups) {
    std::vector<std::string> c = gr.values;
    c.push_back(std::to_string(gr.runs.size()));
    for (std::size_t i : shown) c.push_back(fmt_spread(gr.figures[i], figure_digits(g.figures[i])));
    row(c);
  }
  return os.str();
}

std::string grouped_csv(const GroupedReport& g) {
  std::ostringstream os;
  std::vector<std::string> h = g.group_by;
  h.push_back("n");
  for (const std::string& f : g.figures)
    for (const char* stat : {"_mean", "_std", "_min", "_max", "_n"}) h.push_back(f + stat);
  auto row = [&](const std::vector<std::string>& c) {
    for (std::size_t i = 0; i < c.size(); ++i) os << (i ? "," : "") << csv_cell(c[i]);
    os << "\n";
  };
  row(h);
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", v);
    return std::string(b);
  };
  for (const ReportGroup& gr : g.groups) {
    std::vector<std::string> c = gr.values;
    c.push_back(std::to_string(gr.runs.size()));
    for (const Spread& s : gr.figures) {
      if (s.n == 0) {
        c.insert(c.end(), {"", "", "", "", "0"});
        continue;
      }
      c.insert(c.end(), {num(s.mean), num(s.std), num(s.min), num(s.max), std::to_string(s.n)});
    }
    row(c);
  }
  return os.str();
}

json grouped_json(const GroupedReport& g) {
  json groups = json::array();
  for (const ReportGroup& gr : g.groups) {
    json settings = json::object();
    for (std::size_t i = 0; i < g.group_by.size(); ++i) settings[g.group_by[i]] = gr.values[i];
    json figures = json::object();
    for (std::size_t i = 0; i < g.figures.size(); ++i) {
      const Spread& s = gr.figures[i];
      figures[g.figures[i]] =
          s.n == 0
              ? json{{"n", 0}}
              : json{{"mean", s.mean}, {"std", s.std}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
    }
    groups.push_back(
        {{"settings", settings}, {"n", gr.runs.size()}, {"runs", gr.runs}, {"figures", figures}});
  }
  return {
      {"group_by", g.group_by}, {"last_k", g.last_k}, {"figures", g.figures}, {"groups", groups}};
}

}  // namespace st
