// sparsetrain export: compact a trained network and write it as safetensors and/or ONNX, with
// a report of what changed (docs/export.md).
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "export/export_run.h"

namespace st {

namespace {

struct ExportFlags {
  std::string run, checkpoint;
  std::string criterion = "activation";
  std::vector<std::string> thresholds;
  std::string fold_constant = "exact";
  bool fuse_bn = false;
  int64_t round_to = 1;
  std::string format = "safetensors";
  std::string out;
  std::string data_path;
  int64_t batch_size = 256;
  int64_t bench_batch = 64;
  bool bench = false;
  bool json = false;
};

double parse_number(const std::string& text, const std::string& flag) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    // inf would mark every filter dead and silently change the predictions: refused.
    if (used == text.size() && v >= 0 && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(flag + ": expected a finite non-negative number, got '" + text + "'");
}

// --threshold activation=X | gamma=X | X (the chosen single criterion's threshold).
void apply_thresholds(const ExportFlags& f, ExportRequest& r) {
  for (const std::string& t : f.thresholds) {
    const auto eq = t.find('=');
    if (eq == std::string::npos) {
      if (r.criterion == DeadCriterion::Both)
        throw UsageError("--threshold " + t +
                         ": with --criterion both, say which: activation=X or gamma=X");
      (r.criterion == DeadCriterion::Gamma ? r.gamma_threshold : r.activation_threshold) =
          parse_number(t, "--threshold");
      continue;
    }
    const std::string key = t.substr(0, eq), value = t.substr(eq + 1);
    if (key == "activation")
      r.activation_threshold = parse_number(value, "--threshold activation");
    else if (key == "gamma")
      r.gamma_threshold = parse_number(value, "--threshold gamma");
    else
      throw UsageError("--threshold " + t + ": unknown criterion '" + key +
                       "' (expected activation or gamma)");
  }
}

ExportRequest make_request(const ExportFlags& f) {
  if (f.run.empty() == f.checkpoint.empty())
    throw UsageError("export: give exactly one of --run DIR or --checkpoint FILE");
  if (f.round_to < 1) throw UsageError("export: --round-to must be at least 1");
  if (f.batch_size < 1 || f.bench_batch < 1)
    throw UsageError("export: --batch-size and --bench-batch must be positive");
  ExportRequest r;
  r.run_dir = f.run;
  r.checkpoint = f.checkpoint;
  r.criterion = dead_criterion_from_name(f.criterion);
  apply_thresholds(f, r);
  r.fold_constant =
      f.fold_constant == "approximate" ? ConstantFold::Approximate : ConstantFold::Exact;
  r.round_to = f.round_to;
  r.fuse_bn = f.fuse_bn;
  r.safetensors = f.format != "onnx";
  r.onnx = f.format != "safetensors";
  r.out = f.out;
  r.data_path = f.data_path;
  r.batch_size = f.batch_size;
  r.bench_batch = f.bench_batch;
  r.bench = f.bench;
  return r;
}

std::string fmt(double v, int precision = 3) {
  std::ostringstream s;
  s << std::setprecision(precision) << v;
  return s.str();
}

void print_summary(const nlohmann::json& r, bool bench) {
  std::cout << "layer                              out before -> after   in before -> after\n";
  for (const auto& l : r["layers"]) {
    char line[160];
    std::snprintf(line, sizeof line, "%-34s %10lld -> %-7lld %9lld -> %lld\n",
                  l["name"].get<std::string>().c_str(), l["out_before"].get<long long>(),
                  l["out_after"].get<long long>(), l["in_before"].get<long long>(),
                  l["in_after"].get<long long>());
    std::cout << line;
  }
  for (const auto& g : r["compaction"]["groups"])
    for (const auto& n : g["notes"]) std::cout << "note: " << n.get<std::string>() << "\n";
  const auto& p = r["parameters"];
  const auto& fl = r["flops_per_image"];
  std::cout << "parameters: " << p["before"] << " -> " << p["after"] << " ("
            << fmt(p["reduction"].get<double>()) << "x fewer)\n";
  std::cout << "FLOPs/image: " << fl["before"] << " -> " << fl["after"] << " ("
            << fmt(fl["reduction"].get<double>()) << "x fewer)\n";
  const auto& t = r["test"];
  if (t.contains("original")) {
    std::cout << "test accuracy (" << t["images"] << " images): original "
              << fmt(100 * t["original"]["accuracy"].get<double>(), 5) << " %, compacted "
              << fmt(100 * t["compacted"]["accuracy"].get<double>(), 5) << " %; max |logit diff| "
              << fmt(t["max_abs_logit_diff"].get<double>()) << ", predictions changed "
              << t["prediction_changes"] << "\n";
  } else {
    std::cout << "test: " << t["note"].get<std::string>() << "\n";
  }
  for (const char* dev : {"cpu", "cuda"}) {
    const auto& s = r["throughput"][dev];
    if (!s.contains("speedup")) {
      std::cout << dev << " throughput: " << s["note"].get<std::string>() << "\n";
      continue;
    }
    std::cout << dev << " throughput (batch " << s["batch"]
              << "): " << fmt(s["before_images_per_s"].get<double>(), 5) << " -> "
              << fmt(s["after_images_per_s"].get<double>(), 5) << " images/s (speed-up "
              << fmt(s["speedup"].get<double>()) << "x)\n";
  }
  if (bench) {
    const double speedup = r["throughput"]["cpu"]["speedup"].get<double>();
    const double flops = fl["reduction"].get<double>();
    std::cout << "bench: CPU speed-up " << fmt(speedup) << "x vs FLOP reduction " << fmt(flops)
              << "x: ratio " << fmt(speedup / flops) << " (target >= 0.8)\n";
  }
  for (const auto& [kind, path] : r["files"].items())
    std::cout << "wrote " << kind << ": " << path.get<std::string>() << "\n";
}

int run_export_command(const ExportFlags& f) {
  const ExportRequest req = make_request(f);
  const nlohmann::json report =
      run_export(req, [&](const std::string& msg) { std::cerr << "export: " << msg << "\n"; });
  if (f.json)
    std::cout << report.dump(2) << "\n";
  else
    print_summary(report, f.bench);
  return 0;
}

}  // namespace

void add_export_command(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<ExportFlags>();
  CLI::App* sub = app.add_subcommand(
      "export", "remove dead filters and export the compacted network (safetensors, ONNX)");
  sub->add_option("--run", flags->run, "run directory (checkpoints/last.safetensors, stats/)");
  sub->add_option("--checkpoint", flags->checkpoint,
                  "checkpoint file (activations are measured on its training set)");
  sub->add_option("--criterion", flags->criterion, "activation (default), gamma or both")
      ->check(CLI::IsMember({"activation", "gamma", "both"}));
  sub->add_option("--threshold", flags->thresholds,
                  "activation=X and/or gamma=X, or X for the chosen criterion (default: the "
                  "run's, else 1e-12 and 1e-3)");
  sub->add_option("--fold-constant", flags->fold_constant,
                  "exact (default): fold constant channels only where exact; approximate: "
                  "everywhere, reporting the error")
      ->check(CLI::IsMember({"exact", "approximate"}));
  sub->add_flag("--fuse-bn", flags->fuse_bn, "fold BatchNorm into the preceding convs");
  sub->add_option("--round-to", flags->round_to, "keep channel counts at multiples of N");
  sub->add_option("--format", flags->format, "safetensors (default), onnx or both")
      ->check(CLI::IsMember({"safetensors", "onnx", "both"}));
  sub->add_option("--out", flags->out,
                  "output path; .safetensors/.onnx are added per format, export_report.json "
                  "goes next to it")
      ->required();
  sub->add_option("--data-path", flags->data_path, "dataset directory, replacing data.path");
  sub->add_option("--batch-size", flags->batch_size, "batch size of the data passes (256)");
  sub->add_option("--bench-batch", flags->bench_batch, "batch size of the timing (64)");
  sub->add_flag("--bench", flags->bench,
                "time longer and print the CPU speed-up next to the FLOP reduction");
  sub->add_flag("--json", flags->json, "print the whole report as JSON");
  sub->callback([&run, flags] { run = [flags] { return run_export_command(*flags); }; });
}

}  // namespace st
