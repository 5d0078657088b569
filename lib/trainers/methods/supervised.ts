/** Supervised-only baseline (spec 7): the labeled subset, 0.5 * (CE + Dice), one native call per step. */
import { trainStep } from '../../train/step.js';
import type { TrainConfig } from '../recipes.js';
import { makeNetwork, sgd, type MethodRuntime } from './common.js';

export function supervised(c: TrainConfig, inChannels: number): MethodRuntime {
  const net = makeNetwork(c, inChannels);
  const optimizer = sgd(net, c);
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
