// The parts of Network that need no torch::nn: metadata, input checks, state dicts and the EMA update.
#include "nets/network.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace semiseg::nets {

namespace {
c10::MemoryFormat channelsLastFormat(int64_t rank) {
  return rank == 5 ? c10::MemoryFormat::ChannelsLast3d : c10::MemoryFormat::ChannelsLast;
}
}  // namespace

void Network::setChannelsLast(bool on) {
  c10::NoGradGuard noGrad;
  const int64_t rank = spatialDims() + 2;
  const auto fmt = on ? channelsLastFormat(rank) : c10::MemoryFormat::Contiguous;
  for (auto& [name, p] : namedParameters())
    if (p.dim() == rank) p.set_data(p.contiguous(fmt));
  channelsLast_ = on;
}

at::Tensor Network::prepareInput(const at::Tensor& x) const {
  return channelsLast_ ? x.contiguous(channelsLastFormat(x.dim())) : x;
}

c10::Device Network::device() const {
  auto params = namedParameters();
  return params.empty() ? c10::Device(c10::kCPU) : params.front().second.device();
}

c10::ScalarType Network::dtype() const {
  auto params = namedParameters();
  return params.empty() ? c10::ScalarType::Float : params.front().second.scalar_type();
}

int64_t Network::parameterCount() const {
  int64_t n = 0;
  for (const auto& [name, p] : namedParameters()) n += p.numel();
  return n;
}

void Network::checkInput(const at::Tensor& x, const char* fn) const {
  const int64_t rank = spatialDims() + 2;
  const char* layout = spatialDims() == 2 ? "(N, C, H, W)" : "(N, C, D, H, W)";
  TORCH_CHECK(x.defined(), kind(), ".", fn, "(): argument 'input' is undefined");
  TORCH_CHECK(x.dim() == rank, kind(), ".", fn, "(): argument 'input' must be ", rank, "-D ", layout, ", got ", x.dim(),
              "-D with shape ", x.sizes());
  TORCH_CHECK(x.size(1) == inChannels(), kind(), ".", fn, "(): argument 'input' must have ", inChannels(),
              " channel(s) in dimension 1, got ", x.size(1), " (shape ", x.sizes(), ")");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), kind(), ".", fn,
              "(): argument 'input' must be a floating-point tensor, got ", x.scalar_type());
  TORCH_CHECK(x.size(0) > 0, kind(), ".", fn, "(): argument 'input' has an empty batch");
  for (int64_t d = 2; d < rank; ++d)
    TORCH_CHECK(x.size(d) > 0 && x.size(d) % sizeMultiple() == 0, kind(), ".", fn,
                "(): every spatial size of 'input' must be a positive multiple of ", sizeMultiple(), ", got shape ",
                x.sizes());
  TORCH_CHECK(x.device() == device(), kind(), ".", fn, "(): argument 'input' is on ", x.device(),
              " but the network is on ", device());
}

namespace {

std::string shapeString(c10::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

std::string listKeys(const std::vector<std::string>& keys) {
  std::ostringstream os;
  const size_t shown = std::min<size_t>(keys.size(), 8);
  for (size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << keys[i];
  if (keys.size() > shown) os << ", ... and " << keys.size() - shown << " more";
  return os.str();
}

}  // namespace

LoadReport loadState(Network& net, const NamedTensors& dict, bool strict) {
  std::unordered_map<std::string, const at::Tensor*> given;
  for (const auto& [k, v] : dict) {
    TORCH_CHECK(v.defined(), "loadStateDict(): the value of '", k, "' is not a tensor");
    given.emplace(k, &v);
  }
  NamedTensors own = net.stateDict();
  LoadReport report;
  std::vector<std::pair<at::Tensor, const at::Tensor*>> copies;
  for (const auto& [k, dst] : own) {
    auto it = given.find(k);
    if (it == given.end()) {
      report.missing.push_back(k);
      continue;
    }
    const at::Tensor& src = *it->second;
    if (src.sizes() != dst.sizes())
      report.mismatched.push_back(k + ": expected " + shapeString(dst.sizes()) + ", got " + shapeString(src.sizes()));
    else
      copies.emplace_back(dst, &src);
    given.erase(it);
  }
  for (const auto& [k, v] : dict)
    if (given.count(k)) report.unexpected.push_back(k);
  std::sort(report.unexpected.begin(), report.unexpected.end());
  const bool fail = !report.mismatched.empty() || (strict && (!report.missing.empty() || !report.unexpected.empty()));
  if (fail) {
    std::ostringstream os;
    os << "loadStateDict(): the state dict does not fit this " << net.kind() << " (" << dict.size() << " keys given, "
       << own.size() << " expected)";
    if (!report.missing.empty()) os << "; missing keys (" << report.missing.size() << "): " << listKeys(report.missing);
    if (!report.unexpected.empty())
      os << "; unexpected keys (" << report.unexpected.size() << "): " << listKeys(report.unexpected);
    if (!report.mismatched.empty())
      os << "; mis-shaped keys (" << report.mismatched.size() << "): " << listKeys(report.mismatched);
    // nn.DataParallel / DistributedDataParallel save their module's keys under "module."
    std::unordered_set<std::string> names;
    for (const auto& [k, t] : own) names.insert(k);
    const bool wrapped = !report.unexpected.empty() &&
                         std::all_of(report.unexpected.begin(), report.unexpected.end(), [&](const std::string& k) {
                           return k.rfind("module.", 0) == 0 && names.count(k.substr(7)) > 0;
                         });
    if (wrapped)
      os << " (the given keys are this network's with the prefix 'module.' that nn.DataParallel and "
            "DistributedDataParallel add: remove it from the names first)";
    TORCH_CHECK(false, os.str());
  }
  c10::NoGradGuard noGrad;
  for (auto& [dst, src] : copies) dst.copy_(*src);
  return report;
}

void emaUpdate(Network& teacher, const Network& student, double alpha, bool includeBuffers) {
  TORCH_CHECK(alpha >= 0 && alpha <= 1, "emaUpdate(): argument 'alpha' must be in [0, 1], got ", alpha);
  TORCH_CHECK(teacher.kind() == student.kind(), "emaUpdate(): the teacher is a ", teacher.kind(),
              " but the student is a ", student.kind());
  c10::NoGradGuard noGrad;
  auto t = includeBuffers ? teacher.stateDict() : teacher.namedParameters();
  auto s = includeBuffers ? student.stateDict() : student.namedParameters();
  TORCH_CHECK(t.size() == s.size(), "emaUpdate(): the teacher has ", t.size(), " tensors, the student ", s.size());
  for (size_t i = 0; i < t.size(); ++i) {
    at::Tensor& dst = t[i].second;
    const at::Tensor& src = s[i].second;
    TORCH_CHECK(t[i].first == s[i].first && dst.sizes() == src.sizes(), "emaUpdate(): teacher '", t[i].first,
                "' does not match student '", s[i].first, "'");
    if (at::isFloatingType(dst.scalar_type())) {
      dst.mul_(alpha).add_(src.to(dst.device(), dst.scalar_type()), 1 - alpha);
    } else {
      // alpha * t + (1 - alpha) * s in double, then truncated back (num_batches_tracked)
      dst.copy_(dst.to(at::kDouble).mul(alpha).add(src.to(dst.device(), at::kDouble), 1 - alpha));
    }
  }
}

}  // namespace semiseg::nets
