// The `semiseg` operator library registered with the LibTorch dispatcher: the public differentiable
// ops, their backward ops, and the reduction ops they are built from. Kernels register per device
// (cpu/*_kernel.cpp, cuda/*_kernel.cu), autograd wrappers under the Autograd key (autograd/*.cpp),
// device-agnostic compositions under CompositeExplicitAutograd (*.cpp beside this file).
//
// Conventions shared by every kernel (inputs are validated by the public entries in ops.h; kernels
// still make their inputs contiguous):
//   images / logits / probs: (N, C, *S) floating, S = 2 or 3 spatial dims, contiguous NC(D)HW.
//   labels: (N, *S) int64.  weights: (N, *S), the dtype of the logits.  "acc" = float64 for float64
//   inputs, float32 otherwise (float16 / bfloat16 accumulate in float32).
#include <torch/library.h>

TORCH_LIBRARY(semiseg, m) {
  // ---- Bidirectional copy-paste (BCP) ----------------------------------------------------------------
  // box: int64 CPU tensor (B, 2 * nd): [start_0..start_{nd-1}, size_0..size_{nd-1}], B = 1 (one box for
  // the batch) or K (one per mixed sample). pairing: 0 "same" (K = N; sample i of both mixes pairs
  // labeled[i] with unlabeled[i]), 1 "inFirst" (K = N / 2; the in-mix takes samples 0..K-1, the out-mix
  // K..2K-1), 2 "outFirst" (K = N / 2; the out-mix takes 0..K-1, the in-mix K..2K-1).
  // With src_in(i), src_out(i) the sources of mixed sample i and inside(i, x) the box test:
  //   mixed_in[i]  = inside ? labeled[src_in]    : unlabeled[src_in]
  //   target_in[i] = inside ? labels[src_in]     : pseudo_labels[src_in];  weight_in  = inside ? 1 : alpha
  //   mixed_out[i] = inside ? unlabeled[src_out] : labeled[src_out]
  //   target_out[i]= inside ? pseudo_labels[src_out] : labels[src_out];    weight_out = inside ? alpha : 1
  m.def(
      "bidirectional_copy_paste(Tensor labeled, Tensor labels, Tensor unlabeled, Tensor pseudo_labels, "
      "Tensor box, float alpha, int pairing) -> (Tensor mixed_in, Tensor target_in, Tensor weight_in, "
      "Tensor mixed_out, Tensor target_out, Tensor weight_out)");
  // Routes the mixed inputs' gradients back: grad_labeled[n] gathers grad_in inside the box where
  // src_in = n and grad_out outside it where src_out = n; grad_unlabeled the complement. batch = N.
  m.def(
      "bidirectional_copy_paste_backward(Tensor grad_in, Tensor grad_out, Tensor box, int pairing, int batch) "
      "-> (Tensor grad_labeled, Tensor grad_unlabeled)");

  // ---- Region-weighted CE + Dice (BCP's loss on each mixed output) ------------------------------------
  // 0.5 * (CE_w + Dice_w): CE_w = sum(w ce) / (sum(w) + 1e-16) (the plain mean without weights);
  // Dice_w per class (and per sample when per_sample) = 1 - (2 sum(w p y) + smooth) /
  // (sum(w p^2) + sum(w y) + smooth) (squared) or (sum(w p) + sum(w y) + smooth) (linear), averaged.
  m.def(
      "region_weighted_ce_dice(Tensor logits, Tensor target, Tensor? weights, bool squared, bool per_sample, "
      "float smooth, bool include_background) -> Tensor");
  // Sums of one pass: class_stats (G, 3, C) acc, G = per_sample ? N : 1, rows [sum w p_c [t = c],
  // sum w p_c^2 (squared) or sum w p_c, sum w [t = c]]; ce_stats (2) acc: [sum w ce, sum w] with
  // ce = logsumexp(x) - x_t and w = 1 when weights is None. Labels outside [0, C) raise.
  m.def(
      "_ce_dice_stats(Tensor logits, Tensor target, Tensor? weights, bool squared, bool per_sample) -> "
      "(Tensor class_stats, Tensor ce_stats)");
  // grad_logits of the loss, one pass. coeffs (G * 2 * C + 1) acc: a = coeffs[g, 0, :], b = coeffs[g, 1, :],
  // k = coeffs[-1]. Per pixel, p = softmax(x), y = one_hot(t):
  //   g_c = w (a_c y_c + b_c (squared ? 2 p_c : 1)),  grad_x_j = p_j (g_j - sum_c p_c g_c) + k w (p_j - y_j).
  m.def(
      "_ce_dice_backward(Tensor logits, Tensor target, Tensor? weights, Tensor coeffs, bool squared, "
      "bool per_sample) -> Tensor");

  // ---- Class-wise marginal alignment (Co-DA) ----------------------------------------------------------
  // q_c = p_c r_c / sum_k p_k r_k with r = labeled_marginal / (unlabeled_marginal + eps).
  m.def("marginal_align(Tensor probs, Tensor labeled_marginal, Tensor unlabeled_marginal, float eps) -> Tensor");
  // The kernel: ratio (C) acc, on the device of probs. Output: the dtype of probs.
  m.def("_marginal_align(Tensor probs, Tensor ratio) -> Tensor");
  // grad_p_j = (r_j / s) (g_j - sum_c g_c q_c), s = sum_k p_k r_k, q_c = p_c r_c / s.
  m.def("_marginal_align_backward(Tensor grad, Tensor probs, Tensor ratio) -> Tensor");
  // Per-class mean of probs over the pixels where mask (N, *S) bool is true (all pixels without a mask):
  // (means (C) acc, count () acc); means are 0 when no pixel counts.
  m.def("class_marginals(Tensor probs, Tensor? mask) -> (Tensor means, Tensor count)");
  // The kernel: (sums (C) acc, count () acc).
  m.def("_class_marginal_sums(Tensor probs, Tensor? mask) -> (Tensor sums, Tensor count)");

  // ---- Over-expectation cross-entropy (Co-DA) ---------------------------------------------------------
  // yhat = argmax_c aligned (first maximum), conf = max_c aligned, keep = conf >= expectations[yhat].
  // loss = sum(keep ce(logits, yhat)) / max(sum(keep), 1); count = sum(keep); class_confidence[c] = mean
  // conf over pixels with yhat = c (0 where none), class_count[c] = number of those pixels.
  m.def(
      "over_expectation_ce(Tensor logits, Tensor aligned, Tensor expectations) -> (Tensor loss, Tensor count, "
      "Tensor class_confidence, Tensor class_count)");
  // The kernel: stats (2) acc [sum keep ce, sum keep]; class_stats (2, C) acc [sum conf, count] by yhat.
  // expectations (C) acc on the device of logits; aligned has the dtype of logits.
  m.def(
      "_over_expectation_ce_stats(Tensor logits, Tensor aligned, Tensor expectations) -> (Tensor stats, "
      "Tensor class_stats)");
  // grad_x_j = keep ? scale (softmax(x)_j - [yhat = j]) : 0, scale (1) acc = grad_loss / max(count, 1).
  m.def(
      "_over_expectation_ce_backward(Tensor logits, Tensor aligned, Tensor expectations, Tensor scale) -> "
      "Tensor");
}
