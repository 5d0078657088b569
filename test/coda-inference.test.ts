// Co-DA's inference option (spec 3.7): `--set coda.inference=mean` keeps network 2 in best / final, and
// validation, Segmenter, `semiseg evaluate` and `semiseg predict` segment with the mean of both networks' softmax, checked
// against a composite of ordinary ops; 'net1' (default) segments with network 1 alone.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, loadCheckpoint, nets, readCheckpointInfo, readH5, readNifti, Segmenter, setNumThreads, stack, tidy, trainers, zoomNearest, type Network, type Tensor } from '../lib/index.js';
import { dataDir } from './helpers/data.js';
import { repoRoot } from './helpers/reference.js';

setNumThreads(1);
const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });

/** The composite: per slice, resize to `size`, mean of both softmaxes, argmax, resize back. */
async function composite(a: Network, b: Network, volume: Tensor, size: [number, number]): Promise<Tensor> {
  const [, h, w] = volume.shape;
  a.eval();
  b.eval();
  const out: Tensor[] = [];
  for (let s = 0; s < volume.shape[0]; s++) {
    const x = tidy(() => zoomNearest(volume.narrow(0, s, 1), size).unsqueeze(0).to('float32'));
    const la = a.forwardSync(x);
    const lb = b.forwardSync(x);
    out.push(tidy(() => zoomNearest(la.softmax(1).add(lb.softmax(1)).div(2).argmax(1), [h, w]).squeeze(0)));
    dispose([x, la, lb]);
  }
  const labels = stack(out, 0);
  dispose(out);
  return labels;
}

const differing = (x: Tensor, y: Tensor) => Number(tidy(() => x.ne(y).sum()).item());

test('coda.inference=mean: best.ckpt holds both networks; validation, Segmenter, evaluate and predict use their mean softmax', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-coda-mean-'));
  const args = ['--data', 'synthetic', '--iterations', '4', '--batch-size', '4', '--labeled-batch', '2', '--labeled', '4', '--size', '32', '--validate-every', '2', '--val-cases', '1', '--json'];
  const tr = run('train', '--recipe', 'coda-acdc', ...args, '--set', 'coda.inference=mean', '--out', out);
  t.is(tr.status, 0, tr.stderr);
  const best = join(out, 'best.ckpt');
  const info = await readCheckpointInfo(best);
  t.deepEqual(info.networks, ['net2']);
  t.is((info.extra?.config as { coda: { inference: string } }).coda.inference, 'mean');

  const net1 = nets.UNet2D();
  const net2 = nets.UNet2D();
  await loadCheckpoint(best, { network: net1, networks: { net2 }, restoreRng: false });
  // the same validation volumes the run used (the CLI's synthetic data: labeled 4, size 32, seed 1337)
  const data = trainers.syntheticData({ spatialDims: 2, labeled: 4, size: 32, valCases: 1, seed: 1337 });
  const [volume] = await data.validation();
  const expected = await composite(net1, net2, volume.image, [32, 32]);
  const alone = await trainers.predictVolume(net1, volume.image, { size: [32, 32], classes: 4 });
  t.true(differing(expected, alone) > 0, 'the mean differs from network 1 alone on this volume');

  const seg = await Segmenter.load(best);
  const got = await seg.segment(volume.image);
  t.is(differing(got, expected), 0, 'Segmenter: the mean of both networks');
  // the validation Dice the run recorded is the mean's
  const settings = { size: [32, 32], classes: 4 };
  const meanDice = (await trainers.validateDice(net1, [volume], { ...settings, ensemble: [net2] })).dice;
  const net1Dice = (await trainers.validateDice(net1, [volume], settings)).dice;
  t.true(Math.abs((info.extra?.dice as number) - meanDice) < 1e-12, `recorded ${info.extra?.dice}, mean ${meanDice}, net1 ${net1Dice}`);
  // semiseg evaluate on the same volume: the mean's Dice
  const ev = run('evaluate', '--checkpoint', best, '--data', 'synthetic', '--split', 'val', '--json', '--out', join(out, 'eval'));
  t.is(ev.status, 0, ev.stderr);
  const summary = JSON.parse(ev.stdout) as { cases: number; mean: { dice: number } };
  t.is(summary.cases, 1);
  t.true(Math.abs(summary.mean.dice - meanDice) < 1e-9, `evaluate ${summary.mean.dice}, mean ${meanDice}`);
  seg.dispose();
  t.true(net2.isDisposed === false);
  dispose([expected, alone, got]);

  // 'net1' (default): network 1 alone, and best.ckpt holds it alone
  const out1 = mkdtempSync(join(tmpdir(), 'semiseg-coda-net1-'));
  t.is(run('train', '--recipe', 'coda-acdc', ...args, '--out', out1).status, 0);
  const info1 = await readCheckpointInfo(join(out1, 'best.ckpt'));
  t.is(info1.networks, undefined);
  const seg1 = await Segmenter.load(join(out1, 'best.ckpt'));
  const only = nets.UNet2D();
  await loadCheckpoint(join(out1, 'best.ckpt'), { network: only, restoreRng: false });
  const [p1, q1] = [await seg1.segment(volume.image), await trainers.predictVolume(only, volume.image, settings)];
  t.is(differing(p1, q1), 0);
  dispose([p1, q1]);
  seg1.dispose();
  only.dispose();

  // semiseg predict on a real volume (when the data is here): the composite of both networks
  if (dataDir) {
    const input = join(dataDir, 'ACDC', 'data', 'patient002_frame01.h5');
    const pr = run('predict', input, '--checkpoint', best, '-o', join(out, 'p.nii.gz'));
    t.is(pr.status, 0, pr.stderr);
    const written = await readNifti(join(out, 'p.nii.gz'));
    const source = await readH5(input);
    const want = await composite(net1, net2, source.image, [32, 32]);
    t.is(differing(written.data.to('int64'), want), 0, 'predict: the mean of both networks');
    dispose([written.data, source.image, source.label, want]);
  }
  dispose([volume.image, volume.label]);
  data.dispose();
  net1.dispose();
  net2.dispose();
});

test("coda.inference accepts 'net1' or 'mean' only", (t) => {
  t.throws(() => trainers.resolveConfig('coda-acdc', { coda: { inference: 'max' as never } }), { message: "resolveConfig(): argument 'coda.inference' must be 'net1' or 'mean', got the string \"max\"" });
});
