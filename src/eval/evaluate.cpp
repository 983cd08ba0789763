#include "eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>

#include "train/experiment_data.h"

namespace st {

namespace {

Tensor on_model_device(const Model& m, const Tensor& x) {
  const Device dev = m.backend().device();
  return dev == Device::CPU ? x.to(m.dtype()) : x.to(dev);
}

data::LoaderOptions eval_options(int64_t batch_size, const data::Normalization& norm) {
  if (batch_size < 1)
    throw std::invalid_argument("evaluation batch size must be positive, got " +
                                std::to_string(batch_size));
  return eval_loader_options(batch_size, norm);
}

void add_batch(Model& m, const Tensor& logits, const Tensor& labels, EvalResult& r) {
  Backend& be = m.backend();
  Tensor probs(logits.shape(), logits.dtype(), logits.device());
  const Tensor y = be.device() == Device::CPU ? labels : labels.to(be.device());
  r.loss += be.softmax_xent_forward(logits, y, probs) * static_cast<double>(logits.dim(0));
  r.correct += be.count_correct(logits, y);
  r.images += logits.dim(0);
}

}  // namespace

EvalResult evaluate(Model& model, const data::Dataset& data, const data::Normalization& norm,
                    int64_t batch_size) {
  data::BatchLoader loader(data, eval_options(batch_size, norm));
  loader.start_epoch(0);
  EvalResult r;
  while (auto batch = loader.next()) {
    const Tensor& logits = model.forward(on_model_device(model, batch->images), false);
    add_batch(model, logits, batch->labels, r);
  }
  if (r.images) r.loss /= static_cast<double>(r.images);
  return r;
}

Comparison compare_models(Model& a, Model& b, const data::Dataset& data,
                          const data::Normalization& norm, int64_t batch_size) {
  data::BatchLoader loader(data, eval_options(batch_size, norm));
  loader.start_epoch(0);
  Comparison c;
  while (auto batch = loader.next()) {
    const Tensor& la = a.forward(on_model_device(a, batch->images), false);
    add_batch(a, la, batch->labels, c.a);
    const Tensor& lb = b.forward(on_model_device(b, batch->images), false);
    add_batch(b, lb, batch->labels, c.b);
    const std::vector<double> va = la.to_vector_f64(), vb = lb.to_vector_f64();
    const int64_t k = la.dim(1);
    for (int64_t i = 0; i < la.dim(0); ++i) {
      const auto* ra = va.data() + i * k;
      const auto* rb = vb.data() + i * k;
      for (int64_t j = 0; j < k; ++j) {
        c.max_abs_logit_diff = std::max(c.max_abs_logit_diff, std::fabs(ra[j] - rb[j]));
        c.max_abs_logit = std::max(c.max_abs_logit, std::fabs(ra[j]));
      }
      if (std::max_element(ra, ra + k) - ra != std::max_element(rb, rb + k) - rb)
        ++c.prediction_changes;
    }
  }
  for (EvalResult* r : {&c.a, &c.b})
    if (r->images) r->loss /= static_cast<double>(r->images);
  return c;
}

namespace {

Tensor random_batch(const Model& model, int64_t batch) {
  const InputShape in = model.input_shape();
  std::mt19937_64 gen(1);
  std::normal_distribution<float> d;
  std::vector<float> v(batch * in.channels * in.height * in.width);
  for (float& e : v) e = d(gen);
  return on_model_device(model, Tensor::from_vector(v, {batch, in.channels, in.height, in.width}));
}

// Images per second of one timed stretch of at least `min_seconds`.
double timed_passes(Model& model, const Tensor& x, double min_seconds) {
  using clock = std::chrono::steady_clock;
  Backend& be = model.backend();
  int64_t passes = 0;
  double seconds = 0;
  const auto start = clock::now();
  do {
    model.forward(x, false);
    be.synchronize();
    ++passes;
    seconds = std::chrono::duration<double>(clock::now() - start).count();
  } while (seconds < min_seconds);
  return static_cast<double>(passes * x.dim(0)) / seconds;
}

}  // namespace

std::pair<Throughput, Throughput> measure_throughput_pair(Model& a, Model& b, int64_t batch,
                                                          double min_seconds, int repeats) {
  const Tensor xa = random_batch(a, batch), xb = random_batch(b, batch);
  for (int w = 0; w < 2; ++w) {  // buffers allocated, caches warm
    a.forward(xa, false);
    b.forward(xb, false);
  }
  a.backend().synchronize();
  b.backend().synchronize();
  Throughput ta{batch, 0}, tb{batch, 0};
  for (int r = 0; r < repeats; ++r) {
    ta.images_per_second = std::max(ta.images_per_second, timed_passes(a, xa, min_seconds));
    tb.images_per_second = std::max(tb.images_per_second, timed_passes(b, xb, min_seconds));
  }
  return {ta, tb};
}

nlohmann::json eval_json(const EvalResult& r) {
  return {
      {"loss", r.loss}, {"accuracy", r.accuracy()}, {"correct", r.correct}, {"images", r.images}};
}

}  // namespace st
