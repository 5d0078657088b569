// The SSL4MIS 2D U-Net (spec 1.1) as torch::nn modules whose names equal the PyTorch module tree.
#include "nets/module_network.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>
#include "nets/sync_batchnorm.h"

namespace semiseg::nets {

namespace {

namespace nn = torch::nn;

nn::Conv2d conv2d(int64_t cin, int64_t cout, int64_t k, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(cin, cout, k).padding(pad));
}

// conv_conv: 0 Conv 3x3, 1 BN, 2 LeakyReLU, 3 Dropout, 4 Conv 3x3, 5 BN, 6 LeakyReLU
struct ConvBlockImpl : nn::Module {
  ConvBlockImpl(int64_t cin, int64_t cout, double p) {
    conv_conv = register_module(
        "conv_conv", nn::Sequential(conv2d(cin, cout, 3, 1), SyncBatchNorm2d(cout), nn::LeakyReLU(), nn::Dropout(p),
                                    conv2d(cout, cout, 3, 1), SyncBatchNorm2d(cout), nn::LeakyReLU()));
  }
  at::Tensor forward(const at::Tensor& x) { return conv_conv->forward(x); }
  nn::Sequential conv_conv{nullptr};
};
TORCH_MODULE(ConvBlock);

// maxpool_conv: 0 MaxPool 2, 1 ConvBlock
struct DownBlockImpl : nn::Module {
  DownBlockImpl(int64_t cin, int64_t cout, double p) {
    maxpool_conv = register_module("maxpool_conv", nn::Sequential(nn::MaxPool2d(2), ConvBlock(cin, cout, p)));
  }
  at::Tensor forward(const at::Tensor& x) { return maxpool_conv->forward(x); }
  nn::Sequential maxpool_conv{nullptr};
};
TORCH_MODULE(DownBlock);

// conv1x1 c1 -> c2, bilinear x2 (align_corners), cat [skip, up], ConvBlock(2 c2 -> out, p = 0)
struct UpBlockImpl : nn::Module {
  UpBlockImpl(int64_t c1, int64_t c2, int64_t cout) {
    conv1x1 = register_module("conv1x1", conv2d(c1, c2, 1, 0));
    conv = register_module("conv", ConvBlock(2 * c2, cout, 0.0));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& skip) {
    at::Tensor y = conv1x1->forward(x);
    y = at::upsample_bilinear2d(y, {2 * y.size(2), 2 * y.size(3)}, true, 2.0, 2.0);
    return conv->forward(at::cat({skip, y}, 1));
  }
  nn::Conv2d conv1x1{nullptr};
  ConvBlock conv{nullptr};
};
TORCH_MODULE(UpBlock);

struct EncoderImpl : nn::Module {
  explicit EncoderImpl(const UNet2DOptions& o) {
    const auto& f = o.features;
    const auto& p = o.dropout;
    in_conv = register_module("in_conv", ConvBlock(o.inChannels, f[0], p[0]));
    for (int i = 0; i < 4; ++i)
      down.push_back(register_module("down" + std::to_string(i + 1), DownBlock(f[i], f[i + 1], p[i + 1])));
  }
  std::vector<at::Tensor> forward(const at::Tensor& x) {
    std::vector<at::Tensor> xs{in_conv->forward(x)};
    for (auto& d : down) xs.push_back(d->forward(xs.back()));
    return xs;
  }
  ConvBlock in_conv{nullptr};
  std::vector<DownBlock> down;
};
TORCH_MODULE(Encoder);

struct DecoderImpl : nn::Module {
  explicit DecoderImpl(const UNet2DOptions& o) {
    const auto& f = o.features;
    for (int i = 0; i < 4; ++i)
      up.push_back(register_module("up" + std::to_string(i + 1), UpBlock(f[4 - i], f[3 - i], f[3 - i])));
    out_conv = register_module("out_conv", conv2d(f[0], o.outChannels, 3, 1));
  }
  // decoder outputs of up1..up4, then the logits
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& enc) {
    std::vector<at::Tensor> out;
    at::Tensor x = enc[4];
    for (int i = 0; i < 4; ++i) out.push_back(x = up[i]->forward(x, enc[3 - i]));
    out.push_back(out_conv->forward(x));
    return out;
  }
  std::vector<UpBlock> up;
  nn::Conv2d out_conv{nullptr};
};
TORCH_MODULE(Decoder);

struct UNet2DImpl : nn::Module {
  explicit UNet2DImpl(const UNet2DOptions& o) {
    encoder = register_module("encoder", Encoder(o));
    decoder = register_module("decoder", Decoder(o));
  }
  at::Tensor forward(const at::Tensor& x) { return decoder->forward(encoder->forward(x)).back(); }
  std::vector<at::Tensor> forwardFeatures(const at::Tensor& x) {
    auto enc = encoder->forward(x);
    auto dec = decoder->forward(enc);
    std::vector<at::Tensor> out{dec.back()};
    out.insert(out.end(), enc.begin(), enc.end());
    out.insert(out.end(), dec.begin(), dec.end() - 1);
    return out;
  }
  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
};

class UNet2DNetwork : public ModuleNetwork<UNet2DNetwork, UNet2DImpl, UNet2DOptions> {
 public:
  using ModuleNetwork::ModuleNetwork;
  std::string kind() const override { return "UNet2D"; }
  int64_t spatialDims() const override { return 2; }
  int64_t sizeMultiple() const override { return 16; }
  std::string optionsJson() const override {
    std::ostringstream os;
    os << "{\"inChannels\":" << options_.inChannels << ",\"outChannels\":" << options_.outChannels << ",\"features\":[";
    for (size_t i = 0; i < options_.features.size(); ++i) os << (i ? "," : "") << options_.features[i];
    os << "],\"dropout\":[";
    for (size_t i = 0; i < options_.dropout.size(); ++i) os << (i ? "," : "") << options_.dropout[i];
    os << "]}";
    return os.str();
  }
};

}  // namespace

std::unique_ptr<Network> makeUNet2D(const UNet2DOptions& o) {
  TORCH_CHECK(o.inChannels >= 1, "UNet2D(): option 'inChannels' must be >= 1, got ", o.inChannels);
  TORCH_CHECK(o.outChannels >= 1, "UNet2D(): option 'outChannels' must be >= 1, got ", o.outChannels);
  TORCH_CHECK(o.features.size() == 5, "UNet2D(): option 'features' must have 5 entries, got ", o.features.size());
  TORCH_CHECK(o.dropout.size() == 5, "UNet2D(): option 'dropout' must have 5 entries, got ", o.dropout.size());
  for (auto f : o.features) TORCH_CHECK(f >= 1, "UNet2D(): option 'features' must hold sizes >= 1, got ", f);
  for (auto p : o.dropout)
    TORCH_CHECK(p >= 0 && p < 1, "UNet2D(): option 'dropout' must hold rates in [0, 1), got ", p);
  return std::make_unique<UNet2DNetwork>(o);
}

}  // namespace semiseg::nets
