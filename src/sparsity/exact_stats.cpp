#include "sparsity/exact_stats.h"

#include <algorithm>
#include <stdexcept>

#include "train/experiment_data.h"

namespace st {

namespace {

void check_4d_outputs(const Model& model, const std::vector<int>& layers) {
  for (int l : layers) {
    if (l < 0 || l >= static_cast<int>(model.specs().size()))
      throw std::invalid_argument("exact activation pass: layer index " + std::to_string(l) +
                                  " out of range");
    if (model.output_shape(l).size() != 3)
      throw std::invalid_argument("exact activation pass: layer '" + model.specs()[l].name +
                                  "' has output shape " + shape_str(model.output_shape(l)) +
                                  ", expected [C, H, W]");
  }
}

}  // namespace

void for_each_channel_absmax(Model& model, const data::Dataset& data,
                             const data::Normalization& norm, int64_t batch_size,
                             const std::vector<int>& layers,
                             const std::function<void(std::size_t, const Tensor&)>& on_batch) {
  check_4d_outputs(model, layers);
  if (batch_size < 1)
    throw std::invalid_argument("exact activation pass: batch size must be positive, got " +
                                std::to_string(batch_size));
  data::BatchLoader loader(data, eval_loader_options(batch_size, norm));
  loader.start_epoch(0);
  Backend& be = model.backend();
  const Device dev = be.device();
  while (auto batch = loader.next()) {
    const Tensor x = dev == Device::CPU ? batch->images.to(model.dtype()) : batch->images.to(dev);
    model.forward(x, /*train=*/false);
    for (std::size_t k = 0; k < layers.size(); ++k) {
      const Tensor& h = model.activation(layers[k]);
      Tensor absmax({h.dim(0), h.dim(1)}, DType::F32, dev);
      be.channel_absmax(h, absmax);
      on_batch(k, dev == Device::CPU ? absmax : absmax.to(Device::CPU));
    }
  }
}

std::vector<std::vector<float>> exact_channel_maxima(Model& model, const data::Dataset& data,
                                                     const data::Normalization& norm,
                                                     int64_t batch_size,
                                                     const std::vector<int>& layers) {
  check_4d_outputs(model, layers);
  std::vector<std::vector<float>> maxima;
  for (int l : layers) maxima.emplace_back(model.output_shape(l)[0], 0.0f);
  for_each_channel_absmax(model, data, norm, batch_size, layers,
                          [&](std::size_t k, const Tensor& absmax) {
                            const float* p = absmax.data<float>();
                            std::vector<float>& m = maxima[k];
                            const auto c = static_cast<int64_t>(m.size());
                            for (int64_t i = 0; i < absmax.dim(0); ++i)
                              for (int64_t f = 0; f < c; ++f) m[f] = std::max(m[f], p[i * c + f]);
                          });
  return maxima;
}

}  // namespace st
