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
};

int run_report(const ReportFlags& f) {
  ReportTable t = build_report(f.runs, f.skip_incomplete);
  for (const std::string& why : t.skipped) std::cerr << "report: skipped " << why << "\n";
  std::string text = f.format == "csv"    ? report_csv(t)
                     : f.format == "json" ? report_json(t).dump(2) + "\n"
                                          : report_markdown(t);
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
  sub->add_flag("--skip-incomplete", flags->skip_incomplete,
                "leave out directories without a finished epoch (a sweep in progress or with "
                "failed runs), naming them on stderr, instead of failing");
  sub->callback([&run, flags] { run = [flags] { return run_report(*flags); }; });
}

}  // namespace st
