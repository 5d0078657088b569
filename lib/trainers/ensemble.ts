/**
 * Inference with the mean of several networks' class probabilities (Co-DA's coda.inference = 'mean',
 * spec 3.7): the evaluation protocols of validate.ts (1.5) with each network's softmax averaged before the
 * labels are taken. 2-D: each slice resized to the training size, the mean softmax's argmax resized back;
 * 3-D: each network's sliding-window probabilities (softmax averaged over the overlaps), then their mean.
 */
import { fitSlices, slidingWindowInference } from '../infer.js';
import type { Network } from '../nets/network.js';
import { noGrad } from '../runtime.js';
import { dispose, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import { stack } from '../functional.js';

/** Runs `fn` with every network in eval mode, restoring each one's mode afterwards. */
async function allInEval<T>(nets: Network[], fn: () => Promise<T>): Promise<T> {
  const training = nets.map((n) => n.training);
  nets.forEach((n, i) => training[i] && n.eval());
  try {
    return await fn();
  } finally {
    nets.forEach((n, i) => training[i] && !n.isDisposed && n.train());
  }
}

/**
 * The ACDC protocol (sliceInference) with the mean softmax of `nets`: each slice of a (slices, H, W)
 * volume resized to `size` (scipy's zoom order 0), the argmax of the networks' mean softmax, resized back;
 * labels (slices, H, W), int64.
 */
export async function meanSliceLabels(nets: Network[], volume: Tensor, size: number[], signal?: AbortSignal, resize = true): Promise<Tensor> {
  return allInEval(nets, async () => {
    const slices: Tensor[] = [];
    // the whole volume resized (or padded) at once, as sliceInference does; each slice cut from it
    const fitted = fitSlices(volume, size, resize);
    try {
      for (let s = 0; s < volume.shape[0]; s++) {
        signal?.throwIfAborted();
        const input = tidy(() => fitted.input.narrow(0, s, 1).unsqueeze(0));
        let sum: Tensor | null = null;
        try {
          for (const net of nets) {
            const logits = await noGrad(() => net.forward(input));
            const next: Tensor = tidy(() => (sum ? sum.add(logits.softmax(1)) : logits.softmax(1)));
            dispose([logits, sum]);
            sum = next;
          }
        } finally {
          input.dispose();
        }
        const total = sum as unknown as Tensor;
        slices.push(tidy(() => fitted.restore(total.div(nets.length).argmax(1)).squeeze(0)));
        total.dispose();
      }
      return stack(slices, 0);
    } finally {
      dispose([...slices, fitted.input]);
    }
  });
}

/** The sliding-window protocol (slidingWindowInference) of each network, then the mean of their probabilities (classes, ...spatial). */
export async function meanWindowProbabilities(nets: Network[], image: Tensor, o: { patch: number[]; strides: number[]; signal?: AbortSignal }): Promise<Tensor> {
  let sum: Tensor | null = null;
  try {
    for (const net of nets) {
      const p = await slidingWindowInference(net, image, o);
      const next: Tensor = sum ? tidy(() => (sum as Tensor).add(p)) : p;
      if (sum) dispose([sum, p]);
      sum = next;
    }
    const total = sum as unknown as Tensor;
    return tidy(() => total.div(nets.length));
  } finally {
    sum?.dispose();
  }
}
