// Sparsity-aware training (sparsity.skip_dead): the element map against apply_compaction's own
// copies; the skipper's bookkeeping (streaks, compaction, sync, revival, restore) on a small
// network; and whole training runs with filters forced dead, compared with the same runs
// computing every filter (metrics, surviving parameters, exports, resume).
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <set>

#include "backend/backend.h"
#include "export/export_run.h"
#include "export_test_nets.h"
#include "io/checkpoint.h"
#include "nn/layer_spec.h"
#include "optim/optimizer.h"
#include "run_helpers.h"
#include "sparsity/compaction.h"
#include "train/filter_skipping.h"
#include "train/trainer.h"

using namespace st;
using namespace st::testnets;
namespace fs = std::filesystem;

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = make_backend("cpu");
  return *be;
}

// conv blocks c1 (8) -> pool -> c2 (6) -> c3 (5) -> flatten -> linear: the linear layer reads
// 5 channels x 4 x 4 positions, so its columns move in blocks.
std::unique_ptr<Model> chain_with_flatten() {
  std::vector<LayerSpec> l;
  block(l, "c1", 8);
  l.push_back(pool(LayerKind::MaxPool, "pool1", 2, 2));
  block(l, "c2", 6);
  block(l, "c3", 5);
  l.push_back(layer(LayerKind::Flatten, "flat"));
  l.push_back(linear("fc"));
  auto m = std::make_unique<Model>(l, InputShape{3, 8, 8}, 5, cpu());
  randomize(*m, 21);
  return m;
}

ReluMaxima maxima_with_dead(const Model& m, const std::map<std::string, std::set<int64_t>>& dead) {
  ReluMaxima out;
  for (const ConvBNReLU& b : m.conv_bn_relu_blocks()) {
    std::vector<float> v(b.channels, 1.0f);
    auto it = dead.find(b.name);
    if (it != dead.end())
      for (int64_t c : it->second) v[c] = 0.0f;
    out[m.specs()[b.relu].name] = v;
  }
  return out;
}

CompactionOptions activation_exact() {
  CompactionOptions o;
  o.criterion = DeadCriterion::Activation;
  o.fold_constant = ConstantFold::Exact;
  return o;
}

void check_map_against_copies(const Model& src, const CompactionPlan& plan) {
  auto dst = apply_compaction(src, plan, cpu());
  const ElementMap map = compaction_element_map(src, plan, *dst);
  const std::vector<double> sp = src.params().to_vector_f64(), dp = dst->params().to_vector_f64();
  const std::vector<double> sb = src.buffers().to_vector_f64(), db = dst->buffers().to_vector_f64();
  REQUIRE(map.params.size() == dp.size());
  REQUIRE(map.buffers.size() == db.size());
  std::set<int64_t> seen;
  for (std::size_t i = 0; i < dp.size(); ++i) {
    REQUIRE(dp[i] == sp.at(map.params[i]));
    seen.insert(map.params[i]);
  }
  CHECK(seen.size() == dp.size());  // no element used twice
  for (std::size_t i = 0; i < db.size(); ++i) REQUIRE(db[i] == sb.at(map.buffers[i]));
}

}  // namespace

TEST_CASE("skip: the element map picks what apply_compaction copies", "[skip]") {
  SECTION("a chain read by a flattening linear layer") {
    auto m = chain_with_flatten();
    const auto plan = plan_compaction(
        *m, activation_exact(),
        maxima_with_dead(*m, {{"c1conv", {1, 4, 7}}, {"c2conv", {0}}, {"c3conv", {2, 3}}}));
    check_map_against_copies(*m, plan);
  }
  SECTION("resnet18 at width 1/16, residual streams included") {
    Model m(make_preset("resnet18", 0.0625), InputShape{3, 8, 8}, 10, cpu());
    randomize(m, 5);
    std::map<std::string, std::set<int64_t>> dead;
    for (const ConvBNReLU& b : m.conv_bn_relu_blocks()) dead[b.name] = {0, 2};
    check_map_against_copies(m, plan_compaction(m, activation_exact(), maxima_with_dead(m, dead)));
  }
  SECTION("a plan that folds a constant into a reader is refused") {
    auto m = chain_with_flatten();
    set_gamma_beta(*m, "c3bn", 1, 0.0, 0.5);  // constant 0.5, folded into fc
    CompactionOptions o = activation_exact();
    o.criterion = DeadCriterion::Gamma;
    const auto plan = plan_compaction(*m, o, {});
    auto dst = apply_compaction(*m, plan, cpu());
    CHECK_THROWS_WITH(compaction_element_map(*m, plan, *dst), Catch::Contains("folds"));
  }
}

namespace {

// Per block of `m`: every filter alive except the listed ones.
std::vector<LayerStats> stats_with_dead(const Model& m,
                                        const std::map<std::string, std::set<int64_t>>& dead) {
  std::vector<LayerStats> out;
  for (const ConvBNReLU& b : m.conv_bn_relu_blocks()) {
    LayerStats l;
    l.name = b.name;
    l.channels = b.channels;
    l.filters.resize(b.channels);
    auto it = dead.find(b.name);
    for (int64_t c = 0; c < b.channels; ++c)
      l.filters[c].dead_activation = it != dead.end() && it->second.count(c);
    out.push_back(l);
  }
  return out;
}

std::unique_ptr<Optimizer> adam_for(const Model& m) {
  OptimHyper h;
  h.rule = UpdateRule::Adam;
  return std::make_unique<Optimizer>(h, RegKind::L2, 1e-2, m);
}

// Row f of a conv weight [O, I, kh, kw] restricted to input channels `in` (all when empty).
std::vector<double> conv_row(const Model& m, const std::string& conv, int64_t f,
                             const std::vector<int64_t>& in = {}) {
  const Tensor t = m.tensor(conv + ".weight");
  const std::vector<double> w = t.to_vector_f64();
  const int64_t channels = t.dim(1), kk = t.dim(2) * t.dim(3);
  std::vector<int64_t> cs = in;
  if (cs.empty())
    for (int64_t c = 0; c < channels; ++c) cs.push_back(c);
  std::vector<double> row;
  for (int64_t c : cs)
    for (int64_t k = 0; k < kk; ++k) row.push_back(w[(f * channels + c) * kk + k]);
  return row;
}

}  // namespace

TEST_CASE("skip: the skipper compacts after K checks, syncs, revives and restores", "[skip]") {
  auto full = chain_with_flatten();
  auto full_opt = adam_for(*full);
  // Distinct optimizer state, so that a misplaced element shows.
  for (std::size_t k = 0; k < full_opt->state().size(); ++k) {
    std::vector<float> v(full->params().numel());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(k * 1e6 + i);
    full_opt->state()[k].copy_from(Tensor::from_vector(v, full_opt->state()[k].shape()));
  }
  full_opt->set_steps(7);
  // The filters to be skipped really are dead: BN gamma = beta = 0.
  for (int64_t c : {1, 3}) set_gamma_beta(*full, "c1bn", c, 0.0, 0.0);
  set_gamma_beta(*full, "c2bn", 0, 0.0, 0.0);
  const Tensor x = random_input(*full, 4, 9);
  const std::vector<double> logits_full = full->forward(x, false).to_vector_f64();

  FilterSkipper skipper(*full, *full_opt, adam_for, 2, 1e-12);
  const std::map<std::string, std::set<int64_t>> dead = {{"c1conv", {1, 3}}, {"c2conv", {0}}};
  CHECK_FALSE(skipper.record_check(stats_with_dead(*full, dead), 1));
  CHECK_FALSE(skipper.skipping());
  REQUIRE(skipper.record_check(stats_with_dead(*full, dead), 2));
  skipper.rebuild();
  REQUIRE(skipper.skipping());
  CHECK(skipper.block_channels()[0] == std::vector<int64_t>{0, 2, 4, 5, 6, 7});
  CHECK(skipper.block_channels()[1] == std::vector<int64_t>{1, 2, 3, 4, 5});
  CHECK(skipper.skipped_total() == 3);
  Model& net = skipper.model();
  CHECK(net.tensor("c1conv.weight").dim(0) == 6);
  CHECK(net.tensor("c2conv.weight").dim(1) == 6);
  CHECK(skipper.optimizer().steps() == 7);

  // The compacted network computes the same function.
  const std::vector<double> logits = net.forward(x, false).to_vector_f64();
  for (std::size_t i = 0; i < logits.size(); ++i)
    CHECK(logits[i] == Approx(logits_full[i]).epsilon(1e-5).margin(1e-6));

  // Optimizer state moved with its parameters: c2conv row 2 (now row 1), input channels kept.
  const ParamView* full_view = nullptr;
  const ParamView* net_view = nullptr;
  for (const ParamView& v : full->param_views())
    if (v.name == "c2conv.weight") full_view = &v;
  for (const ParamView& v : net.param_views())
    if (v.name == "c2conv.weight") net_view = &v;
  REQUIRE((full_view && net_view));
  const std::vector<double> s_full = full_opt->state()[1].to_vector_f64();
  const std::vector<double> s_net = skipper.optimizer().state()[1].to_vector_f64();
  const std::vector<int64_t> in = skipper.block_channels()[0];
  for (std::size_t k = 0; k < in.size(); ++k)
    for (int64_t t = 0; t < 9; ++t)
      CHECK(s_net[net_view->offset + (1 * 6 + k) * 9 + t] ==
            s_full[full_view->offset + (2 * 8 + in[k]) * 9 + t]);

  // Training changes the compacted network; sync_full copies it back and leaves skipped rows.
  const std::vector<double> skipped_row = conv_row(*full, "c1conv", 3);
  {
    std::vector<float> p = net.params().to_vector_f32();
    for (float& e : p) e += 0.25f;
    net.params().copy_from(Tensor::from_vector(p, net.params().shape()));
  }
  skipper.sync_full();
  CHECK(conv_row(*full, "c1conv", 3) == skipped_row);
  CHECK(conv_row(*full, "c1conv", 2) == conv_row(net, "c1conv", 1));
  CHECK(conv_row(*full, "c2conv", 1, in) == conv_row(net, "c2conv", 0));

  // A checkpoint's state rebuilds the same network.
  {
    auto opt2 = adam_for(*full);
    FilterSkipper again(*full, *opt2, adam_for, 2, 1e-12);
    again.restore(skipper.state_json());
    CHECK(again.block_channels() == skipper.block_channels());
    CHECK(again.model().params().to_vector_f64() == net.params().to_vector_f64());
  }

  // A pass over the full network finds c1 filter 3 alive: it comes back with the values it
  // was skipped with.
  REQUIRE(skipper.record_check(stats_with_dead(*full, {{"c1conv", {1}}, {"c2conv", {0}}}), 3));
  skipper.rebuild();
  CHECK(skipper.block_channels()[0] == std::vector<int64_t>{0, 2, 3, 4, 5, 6, 7});
  CHECK(conv_row(skipper.model(), "c1conv", 2) == skipped_row);

  // Every filter of a group due: compaction keeps one.
  std::map<std::string, std::set<int64_t>> all_c3;
  all_c3["c3conv"] = {0, 1, 2, 3, 4};
  skipper.record_check(stats_with_dead(*full, all_c3), 4);
  skipper.record_check(stats_with_dead(*full, all_c3), 5);
  skipper.rebuild();
  CHECK(skipper.block_channels()[2].size() == 1);
}

namespace {

// Filters forced dead at initialization: BN gamma = beta = 0, so the ReLU outputs 0 on every
// input, in train and eval mode, and their gradients are 0: they stay dead.
const std::map<std::string, std::vector<int64_t>> kForced = {{"bn1", {1, 4, 6}},
                                                             {"bn2", {0, 3, 5, 7, 8, 12}}};

void force_dead(Model& m) {
  for (const auto& [bn, channels] : kForced)
    for (int64_t c : channels) set_gamma_beta(m, bn, c, 0.0, 0.0);
}

TrainResult train_tiny(const std::string& dir, bool skip, int epochs,
                       std::vector<std::string> extra = {}) {
  TrainRequest r;
  r.config_path = test::test_config("synthetic_tiny.json");
  r.overrides = {"training.epochs=" + std::to_string(epochs),
                 "sparsity.skip_dead=" + std::string(skip ? "true" : "false"),
                 "sparsity.skip_after=2"};
  r.overrides.insert(r.overrides.end(), extra.begin(), extra.end());
  r.out_dir = dir;
  r.quiet = true;
  r.prepare_model = force_dead;
  return run_training(r);
}

std::unique_ptr<Model> load_full(const std::string& run_dir) {
  return Checkpoint::load(run_dir + "/checkpoints/last.safetensors").make_model(cpu());
}

// The plan that removes exactly the forced filters.
CompactionPlan forced_plan(const Model& m) {
  std::map<std::string, std::set<int64_t>> dead;
  dead["conv1"] = {1, 4, 6};
  dead["conv2"] = {0, 3, 5, 7, 8, 12};
  return plan_compaction(m, activation_exact(), maxima_with_dead(m, dead));
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(a[i]));
  }
  return d / std::max(scale, 1e-30);
}

}  // namespace

TEST_CASE("skip: training with forced-dead filters skipped matches training them",
          "[skip][train]") {
  test::ScratchDir dir("skip-equal");
  const TrainResult with = train_tiny(dir / "skip", true, 5);
  const TrainResult without = train_tiny(dir / "full", false, 5);
  const auto a = test::read_jsonl(dir / "skip" + "/metrics.jsonl");
  const auto b = test::read_jsonl(dir / "full" + "/metrics.jsonl");
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == 5);
  for (std::size_t e = 0; e < a.size(); ++e) {
    INFO("epoch " << e + 1);
    for (const char* k : {"train_loss", "test_loss"})
      CHECK(a[e][k].get<double>() == Approx(b[e][k].get<double>()).epsilon(1e-4));
    for (const char* k : {"train_acc", "test_acc"})
      CHECK(std::fabs(a[e][k].get<double>() - b[e][k].get<double>()) <= 1.0 / 64);
    CHECK(a[e]["dead"] == b[e]["dead"]);
    CHECK(a[e]["channels"] == b[e]["channels"]);
  }
  // Skipping starts after two checks (epochs 1 and 2) and then trains the smaller network.
  CHECK(a[0]["skip_dead"]["skipped_total"] == 0);
  CHECK(a[1]["skip_dead"]["skipped_total_next"] == 9);
  CHECK(a[2]["skip_dead"]["skipped_total"] == 9);
  CHECK(a[2]["skip_dead"]["params"].get<int64_t>() < without.summary["params"].get<int64_t>());
  CHECK(a[2]["skip_dead"]["skipped"]["conv2"] == 6);
  // The per-filter file marks the skipped filters.
  const auto filters = test::read_json(dir / "skip" + "/stats/filters_final.json");
  CHECK(filters["layers"][0]["filters"][4]["skipped"] == true);
  CHECK(filters["layers"][0]["filters"][0]["skipped"] == false);

  // The surviving filters' parameters (and BN statistics) agree.
  auto ma = load_full(dir / "skip");
  auto mb = load_full(dir / "full");
  auto ca = apply_compaction(*ma, forced_plan(*ma), cpu());
  auto cb = apply_compaction(*mb, forced_plan(*mb), cpu());
  CHECK(max_rel_diff(ca->params().to_vector_f64(), cb->params().to_vector_f64()) < 1e-4);
  CHECK(max_rel_diff(ca->buffers().to_vector_f64(), cb->buffers().to_vector_f64()) < 1e-4);

  // Exports of both runs: the same compacted network.
  auto export_of = [&](const std::string& run) {
    ExportRequest r;
    r.run_dir = run;
    r.out = run + "/export/net.safetensors";
    r.bench_batch = 4;
    return run_export(r, [](const std::string&) {});
  };
  const auto ra = export_of(dir / "skip");
  const auto rb = export_of(dir / "full");
  CHECK(ra["parameters"]["after"] == rb["parameters"]["after"]);
  CHECK(ra["layers"] == rb["layers"]);
  const Checkpoint ea = Checkpoint::load(dir / "skip" + "/export/net.safetensors");
  const Checkpoint eb = Checkpoint::load(dir / "full" + "/export/net.safetensors");
  CHECK(ea.meta()["export"]["kept_filters"] == eb.meta()["export"]["kept_filters"]);
  auto xa = ea.make_model(cpu());
  auto xb = eb.make_model(cpu());
  CHECK(xa->specs().size() == xb->specs().size());
  CHECK(max_rel_diff(xa->params().to_vector_f64(), xb->params().to_vector_f64()) < 1e-4);
  CHECK(ra["test"]["compacted"]["correct"] == rb["test"]["compacted"]["correct"]);
}

TEST_CASE("skip: a skipping run resumed after 3 epochs equals one run of 5, bit for bit",
          "[skip][train][resume]") {
  test::ScratchDir dir("skip-resume");
  train_tiny(dir / "straight", true, 5);
  train_tiny(dir / "split", true, 3);
  TrainRequest r;
  r.resume_dir = dir / "split";
  r.overrides = {"training.epochs=5"};
  r.quiet = true;
  run_training(r);
  const auto a = test::read_jsonl(dir / "straight" + "/metrics.jsonl");
  const auto b = test::read_jsonl(dir / "split" + "/metrics.jsonl");
  REQUIRE(a.size() == b.size());
  for (std::size_t e = 0; e < a.size(); ++e) {
    for (const char* k : {"train_loss", "test_loss", "dead", "skip_dead"})
      CHECK(a[e][k] == b[e][k]);
  }
  auto ma = load_full(dir / "straight");
  auto mb = load_full(dir / "split");
  CHECK(ma->params().to_vector_f64() == mb->params().to_vector_f64());
  CHECK(ma->buffers().to_vector_f64() == mb->buffers().to_vector_f64());
}

TEST_CASE("skip: revival checks measure the full network and keep dead filters skipped",
          "[skip][train]") {
  test::ScratchDir dir("skip-revive");
  train_tiny(dir.str(), true, 5, {"sparsity.revival_every=1"});
  const auto m = test::read_jsonl(dir / "metrics.jsonl");
  REQUIRE(m.size() == 5);
  CHECK(m[2]["skip_dead"]["revival_check"] == true);
  CHECK(m[3]["skip_dead"]["skipped_total_next"] == 9);
  CHECK(m[3]["dead_total"]["exact_eval"].get<int64_t>() >= 9);
}
