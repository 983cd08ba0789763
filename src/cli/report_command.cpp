#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "io/file_write.h"
#include "report/report.h"

namespace st {

namespace {

struct ReportFlags {
  std::vector<std::string> runs;
  std::string format = "markdown";
  std::string out;
  bool skip_incomplete = false;
  std::string group_by;
  int last_k = 3;
};

// "auto" or a comma-separated list of setting names / config keys.
std::vector<std::string> group_keys(const ReportTable& t, const std::string& spec) {
  if (spec == "auto") return auto_group_keys(t);
  std::vector<std::string> keys;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string k = spec.substr(start, comma - start);
    if (k.empty()) throw UsageError("--group-by: empty key in '" + spec + "'");
    keys.push_back(k);
    start = comma + 1;
  }
  return keys;
}

int run_report(const ReportFlags& f) {
  ReportTable t = build_report(f.runs, f.skip_incomplete, f.last_k);
  for (const std::string& why : t.skipped) std::cerr << "report: skipped " << why << "\n";
  std::string text;
  if (!f.group_by.empty()) {
    GroupedReport g;
    try {
      g = group_report(t, group_keys(t, f.group_by), f.last_k);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());  // the flag's value: exit 2
    }
    text = f.format == "csv"    ? grouped_csv(g)
           : f.format == "json" ? grouped_json(g).dump(2) + "\n"
                                : grouped_markdown(g);
  } else {
    text = f.format == "csv"    ? report_csv(t)
           : f.format == "json" ? report_json(t).dump(2) + "\n"
                                : report_markdown(t);
  }
  if (f.out.empty()) {
    std::cout << text;
  } else {
    // Checked and atomic: a full disk or a missing folder is an error, never a partial file.
    write_file_atomic(f.out, text);
  }
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, CommandRun& run) {
  auto flags = std::make_shared<ReportFlags>();
  CLI::App* sub = app.add_subcommand(
      "report", "tabulate runs in the paper's Table 1 shape (per-layer % dead, test error)");
  sub->add_option("runs", flags->runs, "run directories")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--format,-f", flags->format, "markdown, csv or json")
      ->check(CLI::IsMember({"markdown", "csv", "json"}));
  sub->add_option("--out,-o", flags->out, "write to this file instead of stdout");
  sub->add_option("--group-by", flags->group_by,
                  "aggregate the runs that agree on these settings (comma-separated setting "
                  "names or config keys, or 'auto': every varying setting except "
                  "training.seed): mean, std, min-max and n of each figure");
  sub->add_option("--last-k", flags->last_k,
                  "test error is also given as the mean of the last K test evaluations")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--skip-incomplete", flags->skip_incomplete,
                "leave out directories without a finished epoch (a sweep in progress or with "
                "failed runs), naming them on stderr, instead of failing");
  sub->callback([&run, flags] { run = [flags] { return run_report(*flags); }; });
}

}  // namespace st
