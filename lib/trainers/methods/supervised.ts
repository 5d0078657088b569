/**
 * Supervised-only baseline (spec 7): the labeled subset, 0.5 * (CE + Dice), one native call per step (on
 * several data-parallel ranks: forward, loss and optimizeStep, so the ranks agree on a non-finite loss).
 */
import { ceDiceLoss } from '../../losses.js';
import { trainStep } from '../../train/step.js';
import type { TrainConfig } from '../recipes.js';
import { Bag, makeNetwork, optimizeStep, makeOptimizer, type MethodRuntime } from './common.js';

export function supervised(c: TrainConfig, inChannels: number): MethodRuntime {
  const net = makeNetwork(c, inChannels);
  const optimizer = makeOptimizer(net, c);
  return {
    networks: { student: net },
    main: 'student',
    optimizer: () => optimizer,
    stages: [
      {
        name: 'train',
        iterations: c.iterations,
        labeledOnly: true,
        begin: async () => undefined,
        async step(batch, it) {
          net.train();
          try {
            if (optimizer.group) {
              const bag = new Bag();
              try {
                const loss = bag.add(ceDiceLoss(bag.add(await net.forward(batch.images)), batch.labels, c.dice));
                const value = await optimizeStep(optimizer, loss, it);
                return { loss: value, parts: { sup: value } };
              } finally {
                bag.free();
              }
            }
            const loss = await trainStep(net, optimizer, batch.images, batch.labels, { loss: 'ceDice', dice: c.dice });
            return { loss, parts: { sup: loss } };
          } catch (err) {
            throw new Error(`${(err as Error).message} (iteration ${it})`);
          }
        },
      },
    ],
    state: () => ({}),
    restore: () => undefined,
    dispose: () => net.dispose(),
  };
}
