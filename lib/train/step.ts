/** One supervised training step in one native call: zero grads, forward, loss, backward, optimizer step. */
import { callSite, startNative } from '../call.js';
import type { DiceOptions } from '../losses.js';
import { native } from '../native.js';
import { Network } from '../nets/network.js';
import { tensorArg } from '../tensor.js';
import type { Tensor } from '../tensor.js';
import { checkBool, checkNumber, checkObject, checkOneOf, typeError } from '../validate.js';
import { Optimizer } from './optimizer.js';

export interface TrainStepOptions {
  /** 'ceDice' (0.5 * (CE + Dice), default), 'ce' or 'dice'. */
  loss?: 'ce' | 'dice' | 'ceDice';
  dice?: Omit<DiceOptions, 'weights'>;
}

/**
 * Resolves with the loss value. A NaN or infinite loss rejects (`the loss is nan; the weights were not
 * updated`) before the optimizer changes anything.
 */
export function trainStep(network: Network, optimizer: Optimizer, input: Tensor, target: Tensor, options?: TrainStepOptions): Promise<number> {
  const fn = 'trainStep';
  if (!(network instanceof Network)) throw typeError(fn, 'network', 'a Network', network);
  if (!(optimizer instanceof Optimizer)) throw typeError(fn, 'optimizer', 'an Optimizer', optimizer);
  const o = checkObject(fn, 'options', options);
  const d = checkObject(fn, 'dice', o.dice);
  const spec = {
    kind: o.loss === undefined ? ('ceDice' as const) : checkOneOf(fn, 'loss', o.loss, ['ce', 'dice', 'ceDice'] as const),
    squared: d.squared === undefined ? true : checkBool(fn, 'dice.squared', d.squared),
    perSample: d.perSample === undefined ? false : checkBool(fn, 'dice.perSample', d.perSample),
    smooth: d.smooth === undefined ? 1e-5 : checkNumber(fn, 'dice.smooth', d.smooth),
    includeBackground: d.includeBackground === undefined ? true : checkBool(fn, 'dice.includeBackground', d.includeBackground),
  };
  const net = network.handle(fn);
  const x = tensorArg(fn, 'input', input);
  const y = tensorArg(fn, 'target', target);
  return startNative(() => native.trainStep(net, optimizer.native, x, y, spec), callSite(trainStep));
}
