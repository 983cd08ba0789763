#include "export/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>

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
  data::LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.normalization = norm;
  return o;
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

Throughput measure_throughput(Model& model, int64_t batch, double min_seconds, int repeats) {
  const InputShape in = model.input_shape();
  std::mt19937_64 gen(1);
  std::normal_distribution<float> d;
  std::vector<float> v(batch * in.channels * in.height * in.width);
  for (float& e : v) e = d(gen);
  const Tensor x =
      on_model_device(model, Tensor::from_vector(v, {batch, in.channels, in.height, in.width}));
  Backend& be = model.backend();
  for (int w = 0; w < 2; ++w) model.forward(x, false);  // buffers allocated, caches warm
  be.synchronize();
  using clock = std::chrono::steady_clock;
  Throughput t;
  t.batch = batch;
  for (int r = 0; r < repeats; ++r) {
    int64_t passes = 0;
    const auto start = clock::now();
    double seconds = 0;
    do {
      model.forward(x, false);
      be.synchronize();
      ++passes;
      seconds = std::chrono::duration<double>(clock::now() - start).count();
    } while (seconds < min_seconds);
    t.images_per_second =
        std::max(t.images_per_second, static_cast<double>(passes * batch) / seconds);
  }
  return t;
}

nlohmann::json eval_json(const EvalResult& r) {
  return {
      {"loss", r.loss}, {"accuracy", r.accuracy()}, {"correct", r.correct}, {"images", r.images}};
}

}  // namespace st
