// The tensor op table: every tensor operation the host languages reach goes through callOp(name, args),
// so a binding needs one entry point, not one per op. Arguments are positional; each op's order is
// written beside its registration and mirrored by lib/tensor.ts.
#pragma once

#include "tensor/value.h"

#include <string>
#include <unordered_map>
#include <vector>

namespace semiseg {

using OpFn = Value (*)(const Args&);
using OpTable = std::unordered_map<std::string, OpFn>;

// Runs op `name`. Unknown names and bad arguments throw c10::Error with a message naming them.
Value callOp(const Args& args);
std::vector<std::string> opNames();
// The leaf tensors (parameters) whose gradients a backward from `root` accumulates into.
std::vector<at::Tensor> autogradLeaves(const at::Tensor& root);

// Each family registers its ops (cpp/tensor/ops_*.cpp).
void registerFactoryOps(OpTable& table);
void registerElementwiseOps(OpTable& table);
void registerReductionOps(OpTable& table);
void registerShapeOps(OpTable& table);
void registerNnOps(OpTable& table);
void registerAutogradOps(OpTable& table);
void registerLossOps(OpTable& table);      // cpp/losses/losses.cpp
void registerMetricOps(OpTable& table);    // cpp/metrics/metrics.cpp
void registerAugmentOps(OpTable& table);   // cpp/augment/affine.cpp
void registerFusedOps(OpTable& table);     // cpp/ops/op_table.cpp
void registerContrastOps(OpTable& table);  // cpp/train/contrast.cpp

}  // namespace semiseg
