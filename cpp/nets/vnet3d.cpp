// The UA-MT / BCP 3D V-Net (spec 1.1) as torch::nn modules whose names equal the PyTorch module tree.
#include "nets/module_network.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/normalization.h>
#include "nets/sync_batchnorm.h"

namespace semiseg::nets {

namespace {

namespace nn = torch::nn;

void addNorm(nn::Sequential& seq, const std::string& kind, int64_t c) {
  if (kind == "batchnorm") seq->push_back(SyncBatchNorm3d(c));
  if (kind == "instancenorm") seq->push_back(nn::InstanceNorm3d(c));
  if (kind == "groupnorm") seq->push_back(nn::GroupNorm(16, c));
}

// In-place ReLU, as the published code's nn.ReLU(inplace=True): no new activation-sized tensor per layer
// (8 x 16 x 112 x 112 x 80 floats are 0.5 GiB at the spec's LA batch), so far fewer fresh pages to fault
// in; the norms' backward keeps its input (or x - mean), never its output, so overwriting it is safe.
nn::ReLU relu() { return nn::ReLU(nn::ReLUOptions().inplace(true)); }

// conv: n x [Conv3d 3x3x3 pad 1, norm, ReLU]
nn::Sequential convBlock(int64_t stages, int64_t cin, int64_t cout, const std::string& norm) {
  nn::Sequential seq;
  for (int64_t i = 0; i < stages; ++i) {
    seq->push_back(nn::Conv3d(nn::Conv3dOptions(i == 0 ? cin : cout, cout, 3).padding(1)));
    addNorm(seq, norm, cout);
    seq->push_back(relu());
  }
  return seq;
}

// conv: [Conv3d or ConvTranspose3d kernel 2 stride 2, norm, ReLU]
nn::Sequential resample(int64_t cin, int64_t cout, const std::string& norm, bool up) {
  nn::Sequential seq;
  if (up)
    seq->push_back(nn::ConvTranspose3d(nn::ConvTranspose3dOptions(cin, cout, 2).stride(2)));
  else
    seq->push_back(nn::Conv3d(nn::Conv3dOptions(cin, cout, 2).stride(2)));
  addNorm(seq, norm, cout);
  seq->push_back(relu());
  return seq;
}

// Each block of the published code is a module holding one Sequential named "conv".
struct BlockImpl : nn::Module {
  explicit BlockImpl(nn::Sequential seq) { conv = register_module("conv", std::move(seq)); }
  at::Tensor forward(const at::Tensor& x) { return conv->forward(x); }
  nn::Sequential conv{nullptr};
};
TORCH_MODULE(Block);

struct VNet3DImpl : nn::Module {
  explicit VNet3DImpl(const VNet3DOptions& o) : hasDropout(o.hasDropout), lastBlock(o.lastBlock) {
    const int64_t f = o.nFilters;
    const std::string& n = o.normalization;
    auto add = [&](const char* name, nn::Sequential seq) { return register_module(name, Block(std::move(seq))); };
    one = add("block_one", convBlock(1, o.inChannels, f, n));
    oneDw = add("block_one_dw", resample(f, 2 * f, n, false));
    two = add("block_two", convBlock(2, 2 * f, 2 * f, n));
    twoDw = add("block_two_dw", resample(2 * f, 4 * f, n, false));
    three = add("block_three", convBlock(3, 4 * f, 4 * f, n));
    threeDw = add("block_three_dw", resample(4 * f, 8 * f, n, false));
    four = add("block_four", convBlock(3, 8 * f, 8 * f, n));
    fourDw = add("block_four_dw", resample(8 * f, 16 * f, n, false));
    five = add("block_five", convBlock(3, 16 * f, 16 * f, n));
    fiveUp = add("block_five_up", resample(16 * f, 8 * f, n, true));
    six = add("block_six", convBlock(3, 8 * f, 8 * f, n));
    sixUp = add("block_six_up", resample(8 * f, 4 * f, n, true));
    seven = add("block_seven", convBlock(3, 4 * f, 4 * f, n));
    sevenUp = add("block_seven_up", resample(4 * f, 2 * f, n, true));
    eight = add("block_eight", convBlock(2, 2 * f, 2 * f, n));
    eightUp = add("block_eight_up", resample(2 * f, f, n, true));
    if (o.lastBlock) nine = add("block_nine", convBlock(1, f, f, n));
    out_conv = register_module("out_conv", nn::Conv3d(nn::Conv3dOptions(f, o.outChannels, 1)));
    dropout = register_module("dropout", nn::Dropout3d(nn::Dropout3dOptions(0.5)));
  }

  // logits, x1..x5, x6..x9
  std::vector<at::Tensor> forwardFeatures(const at::Tensor& x) {
    at::Tensor x1 = one->forward(x);
    at::Tensor x2 = two->forward(oneDw->forward(x1));
    at::Tensor x3 = three->forward(twoDw->forward(x2));
    at::Tensor x4 = four->forward(threeDw->forward(x3));
    at::Tensor x5 = five->forward(fourDw->forward(x4));
    if (hasDropout) x5 = dropout->forward(x5);
    at::Tensor x6 = six->forward(fiveUp->forward(x5) + x4);
    at::Tensor x7 = seven->forward(sixUp->forward(x6) + x3);
    at::Tensor x8 = eight->forward(sevenUp->forward(x7) + x2);
    at::Tensor x9 = lastBlock ? nine->forward(eightUp->forward(x8) + x1) : eightUp->forward(x8);
    at::Tensor logits = out_conv->forward(hasDropout ? dropout->forward(x9) : x9);
    return {logits, x1, x2, x3, x4, x5, x6, x7, x8, x9};
  }
  at::Tensor forward(const at::Tensor& x) { return forwardFeatures(x).front(); }

  bool hasDropout, lastBlock;
  Block one{nullptr}, oneDw{nullptr}, two{nullptr}, twoDw{nullptr}, three{nullptr}, threeDw{nullptr}, four{nullptr},
      fourDw{nullptr}, five{nullptr}, fiveUp{nullptr}, six{nullptr}, sixUp{nullptr}, seven{nullptr}, sevenUp{nullptr},
      eight{nullptr}, eightUp{nullptr}, nine{nullptr};
  nn::Conv3d out_conv{nullptr};
  nn::Dropout3d dropout{nullptr};
};

class VNet3DNetwork : public ModuleNetwork<VNet3DNetwork, VNet3DImpl, VNet3DOptions> {
 public:
  using ModuleNetwork::ModuleNetwork;
  std::string kind() const override { return "VNet3D"; }
  int64_t spatialDims() const override { return 3; }
  int64_t sizeMultiple() const override { return 16; }
  std::string optionsJson() const override {
    std::ostringstream os;
    os << "{\"inChannels\":" << options_.inChannels << ",\"outChannels\":" << options_.outChannels
       << ",\"nFilters\":" << options_.nFilters << ",\"normalization\":\"" << options_.normalization
       << "\",\"hasDropout\":" << (options_.hasDropout ? "true" : "false");
    if (!options_.lastBlock) os << ",\"lastBlock\":false";  // absent when true: older checkpoints still match
    os << "}";
    return os.str();
  }
};

}  // namespace

std::unique_ptr<Network> makeVNet3D(const VNet3DOptions& o) {
  TORCH_CHECK(o.inChannels >= 1, "VNet3D(): option 'inChannels' must be >= 1, got ", o.inChannels);
  TORCH_CHECK(o.outChannels >= 1, "VNet3D(): option 'outChannels' must be >= 1, got ", o.outChannels);
  TORCH_CHECK(o.nFilters >= 1, "VNet3D(): option 'nFilters' must be >= 1, got ", o.nFilters);
  const auto& n = o.normalization;
  TORCH_CHECK(n == "batchnorm" || n == "instancenorm" || n == "groupnorm" || n == "none",
              "VNet3D(): option 'normalization' must be 'batchnorm', 'instancenorm', 'groupnorm' or 'none', got '", n,
              "'");
  TORCH_CHECK(n != "groupnorm" || o.nFilters % 16 == 0,
              "VNet3D(): 'groupnorm' uses 16 groups, so 'nFilters' must be a multiple of 16, got ", o.nFilters);
  return std::make_unique<VNet3DNetwork>(o);
}

}  // namespace semiseg::nets
