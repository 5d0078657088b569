// Augmentations equal numpy / scipy exactly: rotate(order=0, reshape=False) at every angle the ACDC
// recipe draws, zoom(order=0) both ways, rot90 / flip, and UA-MT's random crop with its padding rule.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { acdcAugment, laAugment, prng, randomCrop, rotateNearest, zoomNearest } from '../lib/data/augment.js';
import { dispose, liveTensors, manualSeed, randint, randn, readTorchStateDict, tensor, tidy, writeTorchStateDict, type Tensor } from '../lib/index.js';
import { plannedAugment2d } from '../lib/trainers/planned-data.js';
import { referencePython } from './helpers/reference.js';
import { runPythonCode } from './helpers/python.js';

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-aug-'));
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const SCIPY = `
import json, sys, numpy as np, torch
from scipy import ndimage
d = torch.load(sys.argv[1])
spec = json.loads(sys.argv[2])
out = {}
for name, s in spec.items():
    x = d[name].numpy()
    if s['op'] == 'rotate':
        y = ndimage.rotate(x, s['angle'], order=0, reshape=False)
    elif s['op'] == 'zoom':
        y = ndimage.zoom(x, [n / m for n, m in zip(s['size'], x.shape)], order=0)
    elif s['op'] == 'rot90flip':
        y = np.flip(np.rot90(x, s['k']), axis=s['axis']).copy()
    out[name] = torch.from_numpy(np.ascontiguousarray(y))
torch.save(out, sys.argv[3])
`;

test.serial('rotation, zoom, rot90 and flip equal scipy / numpy exactly', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  manualSeed(3);
  const inputs: Record<string, Tensor> = {};
  const spec: Record<string, Record<string, unknown>> = {};
  const ours: Record<string, Tensor> = {};
  const shapes = [[37, 41], [64, 64], [50, 33], [154, 186]];
  shapes.forEach((shape, si) => {
    const lab = randint(shape, 0, 4);
    const img = randn(shape);
    for (let angle = -20; angle < 20; angle += si === 1 ? 1 : 7) {
      for (const [kind, x] of [['lab', lab], ['img', img]] as const) {
        const name = `rot_${kind}_${si}_${angle}`;
        inputs[name] = x;
        spec[name] = { op: 'rotate', angle };
        ours[name] = rotateNearest(x, angle);
      }
    }
    for (const size of [[256, 256], [17, 29], [50, 37], [shape[0] * 2, shape[1]]]) {
      const name = `zoom_${si}_${size.join('x')}`;
      inputs[name] = lab;
      spec[name] = { op: 'zoom', size };
      ours[name] = zoomNearest(lab, size);
    }
    for (let k = 0; k < 4; k++)
      for (let axis = 0; axis < 2; axis++) {
        const name = `rf_${si}_${k}_${axis}`;
        inputs[name] = img;
        spec[name] = { op: 'rot90flip', k, axis };
        ours[name] = tidy(() => img.rot90(k, [0, 1]).flip(axis));
      }
  });
  const inPath = join(dir, 'in.pt');
  const outPath = join(dir, 'out.pt');
  await writeTorchStateDict(inPath, inputs);
  runPythonCode(SCIPY.replace('sys.argv[1]', JSON.stringify(inPath)).replace('sys.argv[2]', JSON.stringify(JSON.stringify(spec))).replace('sys.argv[3]', JSON.stringify(outPath)));
  const ref = await readTorchStateDict(outPath);
  let compared = 0;
  for (const name of Object.keys(spec)) {
    t.deepEqual(ours[name].shape, ref[name].shape, name);
    t.deepEqual(ours[name].toArray(), ref[name].toArray(), name);
    compared++;
  }
  t.true(compared > 80, `${compared} cases`);
  dispose([inputs, ours, ref]);
});

test('random crop pads by (patch - side) // 2 + 3 when a side is too small, then crops in range', (t) => {
  const start = liveTensors();
  tidy(() => {
    const image = randn([100, 120, 70]);
    const label = randint([100, 120, 70], 0, 2);
    // a source that always draws 0.999...: the largest start on every axis
    const [im, lb] = randomCrop(image, label, [112, 112, 80], () => 0.999999);
    t.deepEqual(im.shape, [112, 112, 80]);
    t.deepEqual(lb.shape, [112, 112, 80]);
    // padded sides: (112-100)//2+3 = 9, (112-120)//2+3 = -1 -> max(.., 0)... but any side <= patch pads all:
    // pads [9, 0->max(-4+3,0)=0, 8]; padded shape [118, 120, 86]; largest starts [5, 7, 5]
    const [p0, p1, p2] = [9, 0, 8];
    t.deepEqual([100 + 2 * p0, 120 + 2 * p1, 70 + 2 * p2], [118, 120, 86]);
    // the crop at starts [5, 7, 5] of the padded volume: element [4+... ] compare one interior voxel
    const at = (x: Tensor, i: number, j: number, k: number) => Number(x.narrow(0, i, 1).narrow(1, j, 1).narrow(2, k, 1).item());
    t.is(at(lb, 10, 10, 10), at(label, 10 + 5 - p0, 10 + 7 - p1, 10 + 5 - p2));
    t.is(at(im, 0, 0, 0), 0, 'padding is zeros');
    const big = randomCrop(randn([130, 130, 90]), randint([130, 130, 90], 0, 2), [112, 112, 80], () => 0);
    t.deepEqual(big[0].shape, [112, 112, 80]);
  });
  t.is(liveTensors(), start);
});

test('the ACDC and LA pipelines give training-sized pairs and are deterministic for a seed', (t) => {
  tidy(() => {
    const image = randn([154, 186]);
    const label = randint([154, 186], 0, 4);
    const a = acdcAugment(image, label, prng(5));
    const b = acdcAugment(image, label, prng(5));
    t.deepEqual(a[0].shape, [256, 256]);
    t.deepEqual(a[1].toArray(), b[1].toArray());
    const seen = new Set<string>();
    for (let s = 0; s < 12; s++) seen.add(Array.from(acdcAugment(image, label, prng(s))[1].toArray() as BigInt64Array).slice(0, 4096).join());
    t.true(seen.size > 3, 'different seeds, different augmentations');
    const vol = randn([140, 130, 88]);
    const vlab = randint([140, 130, 88], 0, 2);
    const [vi, vl] = laAugment(vol, vlab, prng(1));
    t.deepEqual(vi.shape, [112, 112, 80]);
    t.deepEqual(vl.shape, [112, 112, 80]);
  });
});

// A plan's 2-D slices kept at its spacing (plan.slices 'crop'): the ACDC draws without the resize, then a
// crop of the slice size; a structure keeps its size in pixels (the resize halved this one's side).
test('plannedAugment2d crops at the slice spacing: a 4 x 4 square stays 16 pixels; the resize recipe shrinks it', (t) => {
  const live = liveTensors();
  const label = tidy(() => {
    const l = new Int32Array(64 * 64);
    for (let i = 30; i < 34; i++) for (let j = 20; j < 24; j++) l[i * 64 + j] = 1;
    return tensor(l, { shape: [64, 64] }).to('int64');
  });
  const image = tidy(() => label.to('float32').mul(3));
  const counts: number[] = [];
  for (let seed = 0; seed < 40; seed++) {
    const [im, lb] = plannedAugment2d(image, label, prng(seed), [32, 32], 1);
    t.deepEqual(im.shape, [32, 32]);
    t.deepEqual(lb.shape, [32, 32]);
    counts.push(tidy(() => Number(lb.sum().item())));
    dispose([im, lb]);
  }
  // rot90 / flip / nothing keep the 16 pixels exactly; a rotation by up to 20 degrees moves a few
  t.true(counts.every((c) => c >= 10 && c <= 22), counts.join(' '));
  t.true(counts.filter((c) => c === 16).length >= 20, counts.join(' '));
  const [smallImage, small] = acdcAugment(image, label, prng(1), [32, 32]);
  smallImage.dispose();
  t.true(tidy(() => Number(small.sum().item())) <= 9, 'the resize recipe zooms 64 -> 32');
  // a slice smaller than the size is zero-padded, not enlarged
  const tiny = tidy(() => label.narrow(0, 28, 8).narrow(1, 18, 8).contiguous());
  const tinyImage = tiny.to('float32');
  const [pi, pl] = plannedAugment2d(tinyImage, tiny, prng(2), [32, 32], 0);
  t.deepEqual(pl.shape, [32, 32]);
  t.true([16, 15, 14, 17, 18].includes(tidy(() => Number(pl.sum().item()))));
  dispose([label, image, small, tiny, tinyImage, pi, pl]);
  t.is(liveTensors(), live);
});
