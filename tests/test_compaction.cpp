// Compaction: networks with filters made dead or constant on purpose (plain chains, residual
// blocks, constant channels that can and cannot be folded, a layer where every filter is
// dead), compacted under each criterion; the compacted network must give the original's
// eval-mode logits within 1e-5 relative, and keep exactly the channels the construction says.
#include <catch2/catch.hpp>

#include "backend/cpu/cpu_backend.h"
#include "data/loader.h"
#include "export_test_nets.h"
#include "sparsity/compaction.h"
#include "sparsity/exact_stats.h"

using namespace st;
using namespace st::testnets;
using Catch::Matchers::Contains;

namespace {

constexpr double kTol = 1e-5;

Backend& cpu() {
  static std::unique_ptr<Backend> be = make_backend("cpu");
  return *be;
}

// Maxima of every ReLU over a synthetic image set, as the export measures them.
ReluMaxima measured_maxima(Model& m) {
  const data::Dataset images = synthetic_images(m.input_shape(), 5, 96, 7);
  const data::Normalization norm = data::normalization_from(images);
  std::vector<int> relus;
  for (int i = 0; i < static_cast<int>(m.specs().size()); ++i)
    if (m.specs()[i].kind == LayerKind::ReLU && m.output_shape(i).size() == 3) relus.push_back(i);
  const auto maxima = exact_channel_maxima(m, images, norm, 32, relus);
  ReluMaxima out;
  for (std::size_t k = 0; k < relus.size(); ++k) out[m.specs()[relus[k]].name] = maxima[k];
  return out;
}

const ChannelGroup& group_of(const Model& m, const CompactionPlan& p, const std::string& layer) {
  return p.groups[p.group_of[m.layer_index(layer)]];
}

std::vector<int64_t> kept(const Model& m, const CompactionPlan& p, const std::string& layer) {
  return group_of(m, p, layer).kept;
}

// A chain: c1 (3x3, read by a padded 3x3 conv), c2 (read by a 1x1 conv), c3 (read by the
// linear layer through the global pool).
std::unique_ptr<Model> plain_chain() {
  std::vector<LayerSpec> l;
  block(l, "c1", 8);
  l.push_back(pool(LayerKind::MaxPool, "pool1", 2, 2));
  block(l, "c2", 6);
  block(l, "c3", 5, 1, 0);
  l.push_back(layer(LayerKind::GlobalAvgPool, "gap"));
  l.push_back(linear("fc"));
  auto m = std::make_unique<Model>(l, InputShape{3, 8, 8}, 5, cpu());
  randomize(*m, 11);
  set_constant_bn_output(*m, "c1conv", "c1bn", 1, -1.0);  // dead
  set_gamma_beta(*m, "c1bn", 4, 0.0, 0.5);                // constant 0.5, reader padded
  set_constant_bn_output(*m, "c1conv", "c1bn", 6, -0.2);  // dead
  set_constant_bn_output(*m, "c2conv", "c2bn", 0, -1.0);  // dead
  set_gamma_beta(*m, "c2bn", 3, 0.0, 0.8);                // constant 0.8 into a 1x1 conv
  set_gamma_beta(*m, "c2bn", 5, 0.0, -0.3);               // zero by both criteria
  set_gamma_beta(*m, "c3bn", 2, 0.0, 0.6);                // constant 0.6 into the linear
  set_constant_bn_output(*m, "c3conv", "c3bn", 4, -0.5);  // dead
  return m;
}

CompactionOptions with(DeadCriterion c, ConstantFold fold = ConstantFold::Exact,
                       int64_t round_to = 1) {
  CompactionOptions o;
  o.criterion = c;
  o.fold_constant = fold;
  o.round_to = round_to;
  return o;
}

}  // namespace

TEST_CASE("compaction: plain chain - activation criterion", "[compaction]") {
  auto m = plain_chain();
  const CompactionPlan plan =
      plan_compaction(*m, with(DeadCriterion::Activation), measured_maxima(*m));
  CHECK(kept(*m, plan, "c1conv") == std::vector<int64_t>{0, 2, 3, 4, 5, 7});
  CHECK(kept(*m, plan, "c2conv") == std::vector<int64_t>{1, 2, 3, 4});
  CHECK(kept(*m, plan, "c3conv") == std::vector<int64_t>{0, 1, 2, 3});
  auto c = apply_compaction(*m, plan, cpu());
  CHECK(c->tensor("c2conv.weight").shape() == Shape{4, 6, 3, 3});
  CHECK(c->tensor("c3conv.weight").shape() == Shape{4, 4, 1, 1});
  CHECK(c->tensor("fc.weight").shape() == Shape{5, 4});
  CHECK(c->num_params() < m->num_params());
  CHECK(relative_logit_difference(*m, *c, random_input(*m, 16, 1)) < kTol);
}

TEST_CASE("compaction: constant channels fold where exact - else stay", "[compaction]") {
  auto m = plain_chain();
  const CompactionPlan plan = plan_compaction(*m, with(DeadCriterion::Gamma), {});
  // c1's constant channel 4 feeds a padded 3x3 conv: folding is not exact, so it stays; the
  // conv-zeroed dead channels have a normal gamma, which this criterion does not see.
  CHECK(kept(*m, plan, "c1conv") == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(kept(*m, plan, "c2conv") == std::vector<int64_t>{0, 1, 2, 4});
  CHECK(kept(*m, plan, "c3conv") == std::vector<int64_t>{0, 1, 3, 4});
  const ChannelGroup& g2 = group_of(*m, plan, "c2conv");
  REQUIRE(g2.removed.size() == 2);
  CHECK(g2.removed[0].index == 3);
  REQUIRE(g2.removed[0].folds.size() == 1);
  CHECK(g2.removed[0].folds[0].value == Approx(0.8));
  CHECK(g2.removed[0].folds[0].exact);
  CHECK_FALSE(g2.removed[0].approximate);  // gamma is exactly 0
  CHECK(g2.removed[1].folds[0].value == 0.0);
  auto c = apply_compaction(*m, plan, cpu());
  // The 1x1 conv had no bias; the fold gives it one.
  CHECK(c->specs()[c->layer_index("c3conv")].bias);
  CHECK(relative_logit_difference(*m, *c, random_input(*m, 16, 2)) < kTol);
}

TEST_CASE("compaction: approximate folding into a padded conv is flagged and differs",
          "[compaction]") {
  auto m = plain_chain();
  const CompactionPlan plan =
      plan_compaction(*m, with(DeadCriterion::Gamma, ConstantFold::Approximate), {});
  CHECK(kept(*m, plan, "c1conv") == std::vector<int64_t>{0, 1, 2, 3, 5, 6, 7});
  const ChannelGroup& g1 = group_of(*m, plan, "c1conv");
  REQUIRE(g1.removed.size() == 1);
  CHECK(g1.removed[0].approximate);
  CHECK_FALSE(g1.removed[0].folds[0].exact);
  auto c = apply_compaction(*m, plan, cpu());
  // Zero padding makes the folded constant wrong at the borders of c2's input.
  CHECK(relative_logit_difference(*m, *c, random_input(*m, 16, 3)) > 1e-4);
}

TEST_CASE("compaction: both criteria together remove only filters dead by each", "[compaction]") {
  auto m = plain_chain();
  const CompactionPlan plan = plan_compaction(*m, with(DeadCriterion::Both), measured_maxima(*m));
  CHECK(kept(*m, plan, "c1conv").size() == 8);
  CHECK(kept(*m, plan, "c2conv") == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(kept(*m, plan, "c3conv").size() == 5);
  auto c = apply_compaction(*m, plan, cpu());
  CHECK(relative_logit_difference(*m, *c, random_input(*m, 16, 4)) < kTol);
}

TEST_CASE("compaction: a small nonzero gamma is an approximation", "[compaction]") {
  auto m = plain_chain();
  set_gamma_beta(*m, "c2bn", 2, 1e-4, 0.3);
  const CompactionPlan plan = plan_compaction(*m, with(DeadCriterion::Gamma), {});
  const ChannelGroup& g2 = group_of(*m, plan, "c2conv");
  bool found = false;
  for (const RemovedChannel& r : g2.removed)
    if (r.index == 2) {
      found = true;
      CHECK(r.approximate);
      CHECK_THAT(r.reason, Contains("gamma"));
    }
  CHECK(found);
  auto c = apply_compaction(*m, plan, cpu());
  const double d = relative_logit_difference(*m, *c, random_input(*m, 16, 5));
  CHECK(d > 0);
  CHECK(d < 1e-2);
}

namespace {

// A stem, two identity residual blocks (stream 1, 8 channels) and a downsampling block with a
// 1x1 conv shortcut (stream 2, 6 channels).
std::unique_ptr<Model> residual_net() {
  std::vector<LayerSpec> l;
  block(l, "stem.", 8);
  auto basic = [&](const std::string& p, const std::string& in, int64_t planes, int stride,
                   bool projection) {
    l.push_back(conv(p + "conv1", 4, 3, 1, {in}, stride));
    l.push_back(layer(LayerKind::BatchNorm, p + "bn1"));
    l.push_back(layer(LayerKind::ReLU, p + "relu1"));
    l.push_back(conv(p + "conv2", planes));
    l.push_back(layer(LayerKind::BatchNorm, p + "bn2"));
    std::string shortcut = in;
    if (projection) {
      l.push_back(conv(p + "shortcut.0", planes, 1, 0, {in}, stride));
      l.push_back(layer(LayerKind::BatchNorm, p + "shortcut.1"));
      shortcut = p + "shortcut.1";
    }
    l.push_back(layer(LayerKind::Add, p + "add", {p + "bn2", shortcut}));
    l.push_back(layer(LayerKind::ReLU, p + "relu2"));
  };
  basic("a.", "stem.relu", 8, 1, false);
  basic("b.", "a.relu2", 8, 1, false);
  basic("c.", "b.relu2", 6, 2, true);
  l.push_back(layer(LayerKind::GlobalAvgPool, "gap"));
  l.push_back(linear("fc"));
  auto m = std::make_unique<Model>(l, InputShape{3, 8, 8}, 5, cpu());
  randomize(*m, 21);
  // Stream 1, channel 2: zero at every ReLU of the stream (stem -1, each block adds -1).
  set_gamma_beta(*m, "stem.bn", 2, 0.0, -1.0);
  set_gamma_beta(*m, "a.bn2", 2, 0.0, -1.0);
  set_gamma_beta(*m, "b.bn2", 2, 0.0, -1.0);
  // Stream 1, channel 5: dead at the stem, but block a writes into it.
  set_gamma_beta(*m, "stem.bn", 5, 0.0, -1.0);
  // Inside block a's branch: channel 1 dead.
  set_gamma_beta(*m, "a.bn1", 1, 0.0, -0.5);
  // Stream 2, channel 3: both writers negative, so zero after the add and ReLU.
  set_gamma_beta(*m, "c.bn2", 3, 0.0, -1.0);
  set_gamma_beta(*m, "c.shortcut.1", 3, 0.0, -0.5);
  // Stream 2, channel 1: one writer constant, the other not: the sum is not constant.
  set_gamma_beta(*m, "c.bn2", 1, 0.0, -1.0);
  return m;
}

}  // namespace

TEST_CASE("compaction: residual streams go only where every block lets go", "[compaction]") {
  auto m = residual_net();
  for (DeadCriterion crit : {DeadCriterion::Activation, DeadCriterion::Gamma}) {
    INFO("criterion " << dead_criterion_name(crit));
    const CompactionPlan plan = plan_compaction(*m, with(crit), measured_maxima(*m));
    const ChannelGroup& s1 = group_of(*m, plan, "stem.conv");
    CHECK(s1.kept == std::vector<int64_t>{0, 1, 3, 4, 5, 6, 7});
    // One group: the stem and both blocks' second convs write it.
    CHECK(s1.producers.size() == 3);
    CHECK(&group_of(*m, plan, "a.conv2") == &s1);
    CHECK(kept(*m, plan, "a.conv1") == std::vector<int64_t>{0, 2, 3});
    CHECK(kept(*m, plan, "b.conv1").size() == 4);
    CHECK(kept(*m, plan, "c.conv2") == std::vector<int64_t>{0, 1, 2, 4, 5});
    CHECK(&group_of(*m, plan, "c.shortcut.0") == &group_of(*m, plan, "c.conv2"));
    auto c = apply_compaction(*m, plan, cpu());
    CHECK(c->tensor("c.shortcut.0.weight").shape() == Shape{5, 7, 1, 1});
    CHECK(c->tensor("b.conv1.weight").shape() == Shape{4, 7, 3, 3});
    CHECK(relative_logit_difference(*m, *c, random_input(*m, 16, 6)) < kTol);
  }
}

TEST_CASE("compaction: 'both' leaves residual streams alone (no BN-scale test at the adds)",
          "[compaction]") {
  auto m = residual_net();
  const CompactionPlan plan = plan_compaction(*m, with(DeadCriterion::Both), measured_maxima(*m));
  CHECK(kept(*m, plan, "stem.conv").size() == 8);
  CHECK(kept(*m, plan, "a.conv1") == std::vector<int64_t>{0, 2, 3});
  auto c = apply_compaction(*m, plan, cpu());
  CHECK(relative_logit_difference(*m, *c, random_input(*m, 16, 7)) < kTol);
}

TEST_CASE("compaction: a layer whose filters are all dead keeps its strongest", "[compaction]") {
  std::vector<LayerSpec> l;
  block(l, "c1", 4);
  block(l, "c2", 3);
  block(l, "c3", 4, 1, 0);
  l.push_back(layer(LayerKind::GlobalAvgPool, "gap"));
  l.push_back(linear("fc"));
  Model m(l, InputShape{2, 6, 6}, 3, cpu());
  randomize(m, 31);
  const double gammas[] = {0.5, 0.9, 0.7};
  for (int f = 0; f < 3; ++f) {
    set_gamma_beta(m, "c2bn", f, gammas[f], 0.0);
    set_constant_bn_output(m, "c2conv", "c2bn", f, -1.0);
  }
  const CompactionPlan plan =
      plan_compaction(m, with(DeadCriterion::Activation), measured_maxima(m));
  const ChannelGroup& g = group_of(m, plan, "c2conv");
  CHECK(g.kept == std::vector<int64_t>{1});  // the largest |gamma|: all activations are 0
  REQUIRE(g.notes.size() == 1);
  CHECK_THAT(g.notes[0], Contains("every channel is removable"));
  auto c = apply_compaction(m, plan, cpu());
  CHECK(c->tensor("c2conv.weight").shape() == Shape{1, 4, 3, 3});
  CHECK(relative_logit_difference(m, *c, random_input(m, 8, 8)) < kTol);
}

TEST_CASE("compaction: --round-to keeps counts at multiples", "[compaction]") {
  auto m = plain_chain();
  const CompactionPlan plan = plan_compaction(
      *m, with(DeadCriterion::Activation, ConstantFold::Exact, 4), measured_maxima(*m));
  CHECK(kept(*m, plan, "c1conv").size() == 8);  // 6 rounds up to 8
  CHECK(kept(*m, plan, "c2conv").size() == 4);
  CHECK(kept(*m, plan, "c3conv").size() == 4);
  CHECK_THAT(group_of(*m, plan, "c1conv").notes.at(0), Contains("multiple of 4"));
  const CompactionPlan p3 = plan_compaction(
      *m, with(DeadCriterion::Activation, ConstantFold::Exact, 3), measured_maxima(*m));
  CHECK(kept(*m, p3, "c1conv").size() == 6);
  CHECK(kept(*m, p3, "c2conv").size() == 6);  // 4 rounds up to 6 = all
  CHECK(kept(*m, p3, "c3conv").size() == 5);  // 4 rounds up to 6 > 5 channels: all
  auto c = apply_compaction(*m, p3, cpu());
  CHECK(relative_logit_difference(*m, *c, random_input(*m, 16, 9)) < kTol);
}

TEST_CASE("compaction: BN fused into convs gives the same eval outputs", "[compaction]") {
  auto m = residual_net();
  auto f = fuse_batchnorm(*m, cpu());
  for (const LayerSpec& s : f->specs()) CHECK(s.kind != LayerKind::BatchNorm);
  CHECK(f->specs()[f->layer_index("c.add")].inputs ==
        std::vector<std::string>{"c.conv2", "c.shortcut.0"});
  CHECK(relative_logit_difference(*m, *f, random_input(*m, 16, 10)) < kTol);
  auto chain = plain_chain();
  auto fc = fuse_batchnorm(*chain, cpu());
  CHECK(fc->specs().size() == chain->specs().size() - 3);
  CHECK(relative_logit_difference(*chain, *fc, random_input(*chain, 16, 11)) < kTol);
}

TEST_CASE("compaction: missing or mismatched statistics are errors naming the layer",
          "[compaction]") {
  auto m = plain_chain();
  ReluMaxima maxima = measured_maxima(*m);
  maxima.erase("c2relu");
  CHECK_THROWS_WITH(plan_compaction(*m, with(DeadCriterion::Activation), maxima),
                    Contains("c2relu"));
  maxima = measured_maxima(*m);
  maxima["c3relu"].pop_back();
  CHECK_THROWS_WITH(plan_compaction(*m, with(DeadCriterion::Activation), maxima),
                    Contains("c3relu") && Contains("4 channels"));
  maxima = measured_maxima(*m);
  maxima["c3bn"] = std::vector<float>(5, 0.0f);
  CHECK_THROWS_WITH(plan_compaction(*m, with(DeadCriterion::Activation), maxima),
                    Contains("not a ReLU"));
  CHECK_THROWS_WITH(dead_criterion_from_name("gama"), Contains("activation, gamma or both"));
}

TEST_CASE("compaction: constants through padded pools", "[compaction]") {
  // a (3x3) -> max-pool with padding -> b (1x1); a2 (3x3) -> average pool with padding -> c (1x1).
  std::vector<LayerSpec> l;
  block(l, "a", 4);
  l.push_back(pool(LayerKind::MaxPool, "maxp", 3, 2, 1));
  block(l, "b", 4, 1, 0);
  block(l, "a2", 4);
  l.push_back(pool(LayerKind::AvgPool, "avgp", 3, 1, 1));
  block(l, "c", 4, 1, 0);
  l.push_back(layer(LayerKind::GlobalAvgPool, "gap"));
  l.push_back(linear("fc"));
  Model m(l, InputShape{2, 7, 7}, 3, cpu());
  randomize(m, 51);
  set_gamma_beta(m, "abn", 1, 0.0, 0.6);   // max-pool padding is -inf: still constant
  set_gamma_beta(m, "a2bn", 2, 0.0, 0.6);  // average pool counts zero padding: not constant
  const CompactionPlan exact = plan_compaction(m, with(DeadCriterion::Gamma), {});
  CHECK(kept(m, exact, "aconv") == std::vector<int64_t>{0, 2, 3});
  CHECK(kept(m, exact, "a2conv").size() == 4);
  auto c = apply_compaction(m, exact, cpu());
  CHECK(relative_logit_difference(m, *c, random_input(m, 8, 12)) < kTol);
  const CompactionPlan approx =
      plan_compaction(m, with(DeadCriterion::Gamma, ConstantFold::Approximate), {});
  CHECK(kept(m, approx, "a2conv") == std::vector<int64_t>{0, 1, 3});
  CHECK(group_of(m, approx, "a2conv").removed.at(0).approximate);
  auto ca = apply_compaction(m, approx, cpu());
  CHECK(relative_logit_difference(m, *ca, random_input(m, 8, 13)) > 1e-5);
}

TEST_CASE("compaction: a linear layer after flatten loses whole channel column blocks",
          "[compaction]") {
  std::vector<LayerSpec> l;
  block(l, "c1", 4);
  l.push_back(pool(LayerKind::MaxPool, "pool", 2, 2));
  l.push_back(layer(LayerKind::Flatten, "flat"));
  l.push_back(linear("fc", false));
  Model m(l, InputShape{2, 6, 6}, 3, cpu());
  randomize(m, 61);
  set_gamma_beta(m, "c1bn", 1, 0.0, -0.5);  // zero
  set_gamma_beta(m, "c1bn", 3, 0.0, 0.25);  // constant, folded into fc (which gets a bias)
  const CompactionPlan plan = plan_compaction(m, with(DeadCriterion::Gamma), {});
  CHECK(kept(m, plan, "c1conv") == std::vector<int64_t>{0, 2});
  auto c = apply_compaction(m, plan, cpu());
  CHECK(c->tensor("fc.weight").shape() == Shape{3, 18});
  CHECK(c->specs().back().bias);
  CHECK(relative_logit_difference(m, *c, random_input(m, 8, 14)) < kTol);
}
