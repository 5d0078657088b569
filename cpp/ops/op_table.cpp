// The fused ops (and their composite references, under "composite.") in the op table that the
// bindings reach: arguments in the order of lib/ops.ts.
#include "ops/composite.h"
#include "ops/ops.h"
#include "tensor/ops.h"

#include <c10/util/Exception.h>

namespace semiseg {

namespace {
ops::Pairing pairingArg(const Args& a, size_t i) {
  const int64_t p = a.int64(i, "pairing");
  TORCH_CHECK(p >= 0 && p <= 2, a.op(), "(): argument 'pairing' must be 0 (same), 1 (inFirst) or 2 (outFirst), got ",
              p);
  return static_cast<ops::Pairing>(p);
}
Value copyPasteList(const ops::CopyPaste& r) {
  return TensorList{r.mixedIn, r.targetIn, r.weightIn, r.mixedOut, r.targetOut, r.weightOut};
}
Value overExpectationList(const ops::OverExpectation& r) {
  return TensorList{r.loss, r.count, r.classConfidence, r.classCount};
}
}  // namespace

void registerFusedOps(OpTable& t) {
  // (labeled, labels, unlabeled, pseudoLabels, box, alpha, pairing)
  t["bidirectionalCopyPaste"] = [](const Args& a) -> Value {
    return copyPasteList(ops::bidirectionalCopyPaste(a.tensor(0, "labeled"), a.tensor(1, "labels"),
                                                     a.tensor(2, "unlabeled"), a.tensor(3, "pseudoLabels"),
                                                     a.tensor(4, "box"), a.f64(5, "alpha"), pairingArg(a, 6)));
  };
  t["composite.bidirectionalCopyPaste"] = [](const Args& a) -> Value {
    return copyPasteList(ops::composite::bidirectionalCopyPaste(
        a.tensor(0, "labeled"), a.tensor(1, "labels"), a.tensor(2, "unlabeled"), a.tensor(3, "pseudoLabels"),
        a.tensor(4, "box"), a.f64(5, "alpha"), pairingArg(a, 6)));
  };
  // (input, target, weights?, squared, perSample, smooth, includeBackground)
  t["regionWeightedCeDice"] = [](const Args& a) -> Value {
    losses::DiceOptions o;
    o.squared = a.boolean(3, "squared");
    o.perSample = a.boolean(4, "perSample");
    o.smooth = a.f64(5, "smooth");
    o.includeBackground = a.boolean(6, "includeBackground");
    return ops::regionWeightedCeDice(a.tensor(0, "input"), a.tensor(1, "target"), a.optTensor(2, "weights"), o);
  };
  // (input, labeledMarginal, unlabeledMarginal, eps)
  t["marginalAlign"] = [](const Args& a) -> Value {
    return ops::marginalAlign(a.tensor(0, "input"), a.tensor(1, "labeledMarginal"), a.tensor(2, "unlabeledMarginal"),
                              a.f64(3, "eps"));
  };
  t["composite.marginalAlign"] = [](const Args& a) -> Value {
    return ops::composite::marginalAlign(a.tensor(0, "input"), a.tensor(1, "labeledMarginal"),
                                         a.tensor(2, "unlabeledMarginal"), a.f64(3, "eps"));
  };
  // (input, mask?)
  t["classMarginals"] = [](const Args& a) -> Value {
    auto [means, count] = ops::classMarginals(a.tensor(0, "input"), a.optTensor(1, "mask"));
    return TensorList{means, count};
  };
  t["composite.classMarginals"] = [](const Args& a) -> Value {
    auto [means, count] = ops::composite::classMarginals(a.tensor(0, "input"), a.optTensor(1, "mask"));
    return TensorList{means, count};
  };
  // (input, aligned, expectations)
  t["overExpectationCe"] = [](const Args& a) -> Value {
    return overExpectationList(
        ops::overExpectationCe(a.tensor(0, "input"), a.tensor(1, "aligned"), a.tensor(2, "expectations")));
  };
  t["composite.overExpectationCe"] = [](const Args& a) -> Value {
    return overExpectationList(
        ops::composite::overExpectationCe(a.tensor(0, "input"), a.tensor(1, "aligned"), a.tensor(2, "expectations")));
  };
}

}  // namespace semiseg
