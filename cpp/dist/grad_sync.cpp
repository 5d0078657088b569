// The gradient all-reduce of data-parallel training (dist.h: attachGradSync). Buckets hold parameters in
// reverse order (the order a backward pass mostly produces their gradients) up to bucketBytes each, one
// dtype and device per bucket. A hook on each parameter copies its gradient into the bucket; bucket k is
// launched once it is full and buckets 0..k-1 are launched, so every rank issues the same collectives in
// the same order whatever order its backward ran in. The optimizer's step launches what is left (a
// parameter without a gradient contributes zeros), all-reduces how many ranks produced each gradient,
// waits, and writes sum / world size back as the gradient (none where no rank produced one).
#include "dist/dist.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <mutex>
#include <stdexcept>

namespace semiseg::dist {

namespace {

class GradSync final : public train::StepHook {
 public:
  GradSync(std::shared_ptr<Group> group, std::vector<at::Tensor> params, int64_t bucketBytes)
      : group_(std::move(group)), params_(std::move(params)), slots_(params_.size()) {
    TORCH_CHECK(bucketBytes > 0, "attachGradSync(): bucketBytes must be > 0, got ", bucketBytes);
    // Buckets over the parameters in reverse order.
    for (size_t k = params_.size(); k-- > 0;) {
      const at::Tensor& p = params_[k];
      const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
      const bool fresh = buckets_.empty() || buckets_.back().dtype != p.scalar_type() ||
                         buckets_.back().device != p.device() ||
                         (buckets_.back().bytes > 0 && buckets_.back().bytes + bytes > bucketBytes);
      if (fresh) buckets_.emplace_back(p.scalar_type(), p.device());
      Bucket& b = buckets_.back();
      slots_[k] = Slot{buckets_.size() - 1, b.numel, p.numel()};
      b.members.push_back(k);
      b.numel += p.numel();
      b.bytes += bytes;
    }
    for (auto& b : buckets_) b.flat = at::empty({b.numel}, at::TensorOptions().dtype(b.dtype).device(b.device));
    used_ = at::zeros({static_cast<int64_t>(params_.size())}, at::kFloat);
    for (const auto& p : params_) TORCH_CHECK(p.requires_grad(), "attachGradSync(): every parameter must require grad");
    try {
      for (size_t k = 0; k < params_.size(); ++k) {
        hooks_.push_back(params_[k].register_hook([this, k](const at::Tensor& grad) {
          onGrad(k, grad);
          return grad;
        }));
      }
    } catch (...) {
      removeHooks();  // none may outlive this half-built object
      throw;
    }
    reset();
  }

  ~GradSync() override { removeHooks(); }

  // Gradients cleared without a step (every rank alike): buckets already on the wire finish first, so no
  // collective is abandoned and no buffer is rewritten while Gloo still reads it.
  void afterZeroGrad() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& b : buckets_)
      if (b.work) b.work->wait();
    reset();
  }

  void beforeStep() override {
    std::unique_lock<std::mutex> lock(mutex_);
    c10::NoGradGuard noGrad;
    // Parameters the backward did not reach: zeros in their slot, launched in order with the rest.
    for (size_t k = 0; k < params_.size(); ++k)
      if (!slots_[k].seen) {
        const Slot& s = slots_[k];
        Bucket& b = buckets_[s.bucket];
        TORCH_CHECK(!b.work, "distributed: internal error: bucket ", s.bucket, " launched before all its gradients");
        b.flat.narrow(0, s.offset, s.numel).zero_();
        --b.waiting;
      }
    launchReady();
    TORCH_CHECK(next_ == buckets_.size(), "distributed: internal error: ", buckets_.size() - next_,
                " gradient bucket(s) not launched");
    std::unique_ptr<Pending> counting = group_->allreduceGradAsync(used_);
    lock.unlock();
    for (auto& b : buckets_) b.work->wait();
    counting->wait();
    const double world = static_cast<double>(group_->size());
    auto used = used_.accessor<float, 1>();
    for (size_t k = 0; k < params_.size(); ++k) {
      at::Tensor& p = params_[k];
      if (used[static_cast<int64_t>(k)] == 0) continue;  // no rank produced a gradient: stays none
      const Slot& s = slots_[k];
      at::Tensor mean = buckets_[s.bucket].flat.narrow(0, s.offset, s.numel).view(p.sizes()).div(world);
      if (p.grad().defined())
        p.mutable_grad().copy_(mean);
      else
        p.mutable_grad() = at::empty_like(p, at::MemoryFormat::Preserve).copy_(mean);
    }
    lock.lock();
    reset();
  }

 private:
  struct Bucket {
    Bucket(c10::ScalarType t, c10::Device d) : dtype(t), device(d) {}
    c10::ScalarType dtype;
    c10::Device device;
    std::vector<size_t> members;
    int64_t numel = 0, bytes = 0;
    at::Tensor flat;
    size_t waiting = 0;
    std::unique_ptr<Pending> work;
  };
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0, numel = 0;
    bool seen = false;
  };

  void removeHooks() {
    for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
    hooks_.clear();
  }

  void reset() {
    for (auto& b : buckets_) {
      b.waiting = b.members.size();
      b.work.reset();
    }
    for (auto& s : slots_) s.seen = false;
    used_.zero_();
    next_ = 0;
  }

  void onGrad(size_t k, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex_);
    c10::NoGradGuard noGrad;
    Slot& s = slots_[k];
    Bucket& b = buckets_[s.bucket];
    at::Tensor dst = b.flat.narrow(0, s.offset, s.numel).view(params_[k].sizes());
    if (s.seen) {
      // A second backward through this parameter before the step: gradients accumulate, as they do in
      // .grad, unless its bucket is already on the wire.
      TORCH_CHECK(!b.work, "distributed: parameter ", k,
                  " received a second gradient after its bucket was all-reduced; call the optimizer's step "
                  "(or zeroGrad) between backward passes");
      dst.add_(grad);
      return;
    }
    dst.copy_(grad);
    s.seen = true;
    used_[static_cast<int64_t>(k)].fill_(1);
    --b.waiting;
    launchReady();
  }

  // Launches buckets in order while the next one is complete (mutex held).
  void launchReady() {
    while (next_ < buckets_.size() && buckets_[next_].waiting == 0) {
      buckets_[next_].work = group_->allreduceGradAsync(buckets_[next_].flat);
      ++next_;
    }
  }

  std::shared_ptr<Group> group_;
  std::vector<at::Tensor> params_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hooks_;
  at::Tensor used_;
  size_t next_ = 0;
  std::mutex mutex_;
};

}  // namespace

std::shared_ptr<train::StepHook> attachGradSync(std::shared_ptr<Group> group, train::Optimizer& optimizer,
                                                int64_t bucketBytes) {
  TORCH_CHECK(group, "attachGradSync(): no group");
  TORCH_CHECK(!optimizer.stepHook(), "attachGradSync(): this optimizer already has a gradient all-reduce attached");
  auto sync = std::make_shared<GradSync>(std::move(group), optimizer.parameters(), bucketBytes);
  optimizer.setStepHook(sync);
  return sync;
}

}  // namespace semiseg::dist
