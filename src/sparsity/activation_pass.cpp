#include "sparsity/activation_pass.h"

#include "sparsity/exact_stats.h"

namespace st {

ActivationRecorder make_block_recorder(const Model& model) {
  std::vector<ActivationRecorder::Layer> layers;
  for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) layers.push_back({b.name, b.channels});
  return ActivationRecorder(std::move(layers));
}

void record_block_maxima(const Model& model, ActivationRecorder& recorder,
                         std::vector<Tensor>& scratch, const BlockChannels* channels) {
  const auto& blocks = model.conv_bn_relu_blocks();
  scratch.resize(blocks.size());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const Tensor& h = model.activation(blocks[i].relu);
    const Shape want{h.dim(0), blocks[i].channels};
    if (scratch[i].shape() != want || scratch[i].device() != h.device())
      scratch[i] = Tensor(want, DType::F32, h.device());
    model.backend().channel_absmax(h, scratch[i]);
    const Tensor absmax =
        scratch[i].device() == Device::CPU ? scratch[i] : scratch[i].to(Device::CPU);
    if (channels)
      recorder.record(static_cast<int>(i), absmax, channels->at(i));
    else
      recorder.record(static_cast<int>(i), absmax);
  }
}

void record_exact_pass(Model& model, const data::Dataset& data, const data::Normalization& norm,
                       int64_t batch_size, ActivationRecorder& recorder,
                       const BlockChannels* channels) {
  std::vector<int> relus;
  for (const ConvBNReLU& b : model.conv_bn_relu_blocks()) relus.push_back(b.relu);
  for_each_channel_absmax(model, data, norm, batch_size, relus,
                          [&](std::size_t k, const Tensor& absmax) {
                            const int layer = static_cast<int>(k);
                            if (channels)
                              recorder.record(layer, absmax, channels->at(k));
                            else
                              recorder.record(layer, absmax);
                          });
}

std::vector<std::vector<float>> block_bn_values(const Model& model, const char* suffix) {
  std::vector<std::vector<float>> out;
  for (const ConvBNReLU& b : model.conv_bn_relu_blocks())
    out.push_back(model.tensor(model.specs()[b.bn].name + suffix).to_vector_f32());
  return out;
}

std::vector<LayerStats> block_stats(const Model& model, const ActivationRecorder& recorder,
                                    const StatsThresholds& thresholds) {
  return recorder.finalize(block_bn_values(model, ".weight"), block_bn_values(model, ".bias"),
                           thresholds);
}

}  // namespace st
