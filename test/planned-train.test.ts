// Training and inference on planned NIfTI folders: the NIfTI path equals the HDF5 path on LA written as a
// Decathlon folder, every method trains on a planned folder, predict / Segmenter answer on the input's
// grid, and raw (unnormalised) scans get the labels their normalised volumes get.
import test from 'ava';
import { decode } from 'fast-png';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readImageDataset } from '../lib/data/folders.js';
import { caseOverlayPng } from '../lib/report/overlays.js';
import { readH5 } from '../lib/data/hdf5.js';
import { readNifti } from '../lib/data/nifti.js';
import { DEMO_DATA } from '../lib/demo/demo.js';
import { methodRecipe, plannedConfig } from '../lib/cli/planned.js';
import { fingerprintDataset } from '../lib/plan/fingerprint.js';
import { planFromFingerprint, type Plan } from '../lib/plan/plan.js';
import { setNumThreads } from '../lib/runtime.js';
import { dispose, tidy } from '../lib/scope.js';
import { Segmenter } from '../lib/segmenter.js';
import { BatchSource, freeItems } from '../lib/trainers/batches.js';
import { laData } from '../lib/trainers/data.js';
import { saveCheckpoint } from '../lib/io/checkpoint.js';
import { nets } from '../lib/nets/index.js';
import { manualSeed, noGrad } from '../lib/index.js';
import { train } from '../lib/trainers/loop.js';
import { plannedData } from '../lib/trainers/planned-data.js';
import { resolveConfig, type TrainConfig } from '../lib/trainers/recipes.js';
import type { Item } from '../lib/data/loader.js';
import { dataDir } from './helpers/data.js';
import { syntheticFolder } from './helpers/folders.js';
import { runPythonCode } from './helpers/python.js';
import { repoRoot } from './helpers/reference.js';

setNumThreads(1);
const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });

const la = dataDir ? test.serial : test.serial.skip;
la('LA written as a Decathlon folder gives the same batches and the same validation Dice as the HDF5 path', async (t) => {
  // a cropped copy of LA in both layouts (small enough for a quick sliding window), 0.625 mm isotropic
  const tmp = mkdtempSync(join(tmpdir(), 'semiseg-la-'));
  runPythonCode(`
import os, json, h5py, numpy as np, nibabel as nib
src = ${JSON.stringify(join(dataDir ?? '', 'LA'))}; dst = ${JSON.stringify(tmp)}
ids = [l.strip() for l in open(f'{src}/train.list') if l.strip()]
os.makedirs(f'{dst}/h5', exist_ok=True); os.makedirs(f'{dst}/nii/imagesTr', exist_ok=True); os.makedirs(f'{dst}/nii/labelsTr', exist_ok=True)
with open(f'{dst}/h5/train.list', 'w') as f: f.write('\\n'.join(ids) + '\\n')
for k, i in enumerate(ids):
    with h5py.File(f'{src}/2018LA_Seg_Training Set/{i}/mri_norm2.h5', 'r') as h:
        img, lab = h['image'][:], h['label'][:]
    c = [s // 2 for s in img.shape]
    img = img[c[0]-32:c[0]+32, c[1]-32:c[1]+32, c[2]-24:c[2]+24].astype(np.float32); lab = lab[c[0]-32:c[0]+32, c[1]-32:c[1]+32, c[2]-24:c[2]+24]
    os.makedirs(f'{dst}/h5/2018LA_Seg_Training Set/{i}', exist_ok=True)
    with h5py.File(f'{dst}/h5/2018LA_Seg_Training Set/{i}/mri_norm2.h5', 'w') as h:
        h['image'] = img; h['label'] = lab
    aff = np.diag([0.625, 0.625, 0.625, 1.0])
    nib.save(nib.Nifti1Image(img, aff), f'{dst}/nii/imagesTr/la_{k:03d}.nii'); nib.save(nib.Nifti1Image(lab, aff), f'{dst}/nii/labelsTr/la_{k:03d}.nii')
json.dump({'name': 'LA', 'modality': {'0': 'MRI'}, 'labels': {'0': 'background', '1': 'left atrium'}, 'file_ending': '.nii'}, open(f'{dst}/nii/dataset.json', 'w'))
`);
  const patch = [32, 32, 32];
  const h5 = laData(join(tmp, 'h5'), { labeled: 4, patch: patch as [number, number, number], valCases: 2 });
  const ds = readImageDataset(join(tmp, 'nii'));
  const fp = await fingerprintDataset(ds);
  // the HDF5 path does no preprocessing and validates with the LA strides: the plan is told the same
  const plan = planFromFingerprint(fp, ds, { crop: false, normalization: 'none', foregroundOversampling: 0, size: patch, strides: [18, 18, 4] });
  t.deepEqual(plan.spacing, [0.625, 0.625, 0.625]);
  const ids = ds.labeled.map((c) => c.id);
  const nii = await plannedData(ds, plan, { labeledList: ids.slice(0, 4), valList: ids.slice(10) });
  t.deepEqual([nii.labeled, nii.unlabeled], [h5.labeled, h5.unlabeled]);
  // batches: the loop's batch source on both, same seed
  const caches = [new Map<number, Promise<Item>>(), new Map<number, Promise<Item>>()];
  const sources = [h5, nii].map((d, k) => new BatchSource(d, { batchSize: 4, labeledBatch: 2, labeledOnly: false, seed: 5, stage: 0, device: 'cpu' }, caches[k]));
  for (let it = 1; it <= 3; it++) {
    const [a, b] = await Promise.all(sources.map((s) => s.batch(it)));
    t.deepEqual(a.indices, b.indices);
    t.deepEqual(a.images.shape, b.images.shape);
    t.is(tidy(() => a.images.sub(b.images).abs().max().item()) as number, 0, `images of batch ${it}`);
    t.is(tidy(() => a.labels.ne(b.labels).to('int64').sum().item()) as number, 0, `labels of batch ${it}`);
    dispose([a.images, a.labels, b.images, b.labels]);
  }
  await Promise.all(caches.map(freeItems));
  // the same short supervised run on both: the same validation Dice
  const base = resolveConfig('supervised-la', { iterations: 3, validateEvery: 3, batchSize: 2, labeledBatch: 2, size: patch, labeled: 4, seed: 11 });
  const r1 = await train(base, { data: h5, out: join(tmp, 'run-h5') });
  const r2 = await train({ ...base, dataset: 'nifti', plan }, { data: nii, out: join(tmp, 'run-nii') });
  t.true(r1.best !== null && r2.best !== null);
  t.is(r2.best!.dice, r1.best!.dice);
  t.is(r2.lastLoss, r1.lastLoss);
  h5.dispose();
  nii.dispose();
  rmSync(tmp, { recursive: true });
});

test.serial('every method trains on a planned folder (3-D plan; ICL on a 2-D plan of the same data)', async (t) => {
  // 9 cases: BCP's batch takes 4 labeled and 4 unlabeled (4 + 1 validation + 4)
  const root = syntheticFolder({ n: 9, shape: [20, 20, 18] });
  const binary = syntheticFolder({ n: 6, shape: [20, 20, 18], classes: 2 }); // VerSemi's tasks are binary
  const sets = await Promise.all([root, binary].map(async (r) => {
    const d = readImageDataset(r);
    return { ds: d, fp: await fingerprintDataset(d) };
  }));
  const out = mkdtempSync(join(tmpdir(), 'semiseg-methods-'));
  for (const method of ['supervised', 'mt', 'bcp', 'coda', 'action', 'versemi', 'icl']) {
    const { ds, fp } = sets[method === 'versemi' ? 1 : 0];
    // (BCP pre-trains on halves of the labeled batch: at a 16^3 patch the V-Net's bottleneck is one voxel, so two per half)
    const plan = planFromFingerprint(fp, ds, method === 'icl' ? { network: 'UNet2D', size: [16, 16], labeledBatch: 2 } : { size: [16, 16, 16], ...(method === 'bcp' ? { labeledBatch: 4 } : {}) });
    const recipe = methodRecipe(method, plan.network);
    const extra: Partial<TrainConfig> = { iterations: 2, validateEvery: 2, pretrainIterations: method === 'bcp' || method === 'versemi' ? 1 : 0 };
    if (method === 'action') extra.action = { ...resolveConfig(recipe).action, globalIterations: 1, localIterations: 1, window: 16, pool: 8, queries: 8, negatives: 8, queue: 4, representation: 16 };
    const config = resolveConfig(recipe, { ...plannedConfig(recipe, plan, method === 'bcp' ? 4 : 3, {}), ...extra });
    const data = await plannedData(ds, plan, { labeled: method === 'bcp' ? 4 : 3, val: 1 });
    try {
      const r = await train(config, { data, out: join(out, method) }).catch((err: Error) => {
        throw new Error(`${method}: ${err.message}`);
      });
      t.true(Number.isFinite(r.lastLoss), `${method}: loss ${r.lastLoss}`);
      t.is(r.validations.length > 0, true, `${method} validated`);
    } finally {
      data.dispose();
    }
  }
  rmSync(out, { recursive: true });
  rmSync(root, { recursive: true });
  rmSync(binary, { recursive: true });
});

test.serial('predict on a hippocampus NIfTI writes labels on its grid; Segmenter gives the same labels; evaluate scores in mm', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-hippo-'));
  let r = run('train', '--method', 'supervised', '--data', DEMO_DATA, '--labeled', '4', '--val', '2', '--size', '16', '--iterations', '2', '--validate-every', '2', '--out', join(out, 'run'));
  t.is(r.status, 0, r.stderr);
  const plan = JSON.parse(runPythonCode(`import json; print(json.dumps(json.load(open(${JSON.stringify(join(out, 'run', 'plan.json'))}))))`)) as Plan;
  const ids = readImageDataset(DEMO_DATA).labeled.map((c) => c.id);
  t.deepEqual(plan.split!.validation, ids.slice(-2), 'validation: the last two labeled cases');
  t.deepEqual(plan.split!.labeled, ids.slice(0, 4));
  const input = join(DEMO_DATA, 'imagesTr', 'hippocampus_003.nii.gz');
  r = run('predict', input, '--checkpoint', join(out, 'run', 'final.ckpt'), '-o', join(out, 'labels.nii.gz'));
  t.is(r.status, 0, r.stderr);
  const geometry = JSON.parse(
    runPythonCode(`
import json, numpy as np, nibabel as nib
a = nib.load(${JSON.stringify(join(out, 'labels.nii.gz'))}); b = nib.load(${JSON.stringify(input)})
print(json.dumps({'shape': [list(a.shape), list(b.shape)], 'affine': bool(np.allclose(a.affine, b.affine)), 'zooms': [list(map(float, a.header.get_zooms())), list(map(float, b.header.get_zooms()))], 'max': int(np.asarray(a.dataobj).max())}))
`),
  ) as { shape: number[][]; affine: boolean; zooms: number[][]; max: number };
  t.deepEqual(geometry.shape[0], geometry.shape[1]);
  t.true(geometry.affine);
  t.deepEqual(geometry.zooms[0], geometry.zooms[1]);
  t.true(geometry.max <= 2);
  const seg = await Segmenter.load(join(out, 'run', 'final.ckpt'));
  const image = await readNifti(input);
  const labels = await seg.segmentImage(image);
  const written = await readNifti(join(out, 'labels.nii.gz'));
  t.is(tidy(() => labels.ne(written.data.to('int64')).to('int64').sum().item()) as number, 0, 'Segmenter and predict agree');
  dispose([image.data, labels, written.data]);
  r = run('evaluate', '--checkpoint', join(out, 'run', 'final.ckpt'), '--data', DEMO_DATA, '--split', 'val', '--json', '--overlays', join(out, 'overlays'));
  t.is(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { units: string; cases: number };
  t.is(summary.units, 'mm');
  t.is(summary.cases, 2);
  // one picture per case, slices along z of the case's own grid: the Segmenter's labels beside the reference
  t.deepEqual(readdirSync(join(out, 'overlays')).sort(), plan.split!.validation.map((id) => `${id}.png`).sort());
  for (const id of plan.split!.validation) {
    const img = await readNifti(join(DEMO_DATA, 'imagesTr', `${id}.nii.gz`));
    const ref = await readNifti(join(DEMO_DATA, 'labelsTr', `${id}.nii.gz`));
    const pred = await seg.segmentImage(img);
    const expected = caseOverlayPng(img.data, ref.data, pred, false);
    t.true(readFileSync(join(out, 'overlays', `${id}.png`)).equals(expected), `overlay of ${id}`);
    const png = decode(expected);
    t.is(png.width, 3 * img.data.shape[1] + 2 * 2);
    t.is(png.height, 3 * img.data.shape[0] + 2 * 2);
    dispose([img.data, ref.data, pred]);
  }
  seg.dispose();
  rmSync(out, { recursive: true });
});

const acdc = dataDir ? test.serial : test.serial.skip;
acdc('a raw ACDC volume written as NIfTI gets, through Segmenter and predict, the labels its normalised HDF5 volume gets (a checkpoint without a plan)', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-raw-'));
  manualSeed(0); // the untrained network below draws from the process's generator: the same one whatever ran before
  // an ACDC checkpoint as the training loop writes it (its config has no plan: the recipe's normalisation
  // applies); an untrained U-Net whose output layer is amplified, so that its labels vary with the intensities
  const net = nets.UNet2D({ inChannels: 1, outChannels: 4 });
  const params = net.namedParameters();
  noGrad(() => params['decoder.out_conv.weight'].copyFrom(tidy(() => params['decoder.out_conv.weight'].mul(300))));
  dispose(params);
  const ckpt = join(out, 'acdc.ckpt');
  await saveCheckpoint(ckpt, { network: net, iteration: 0, extra: { config: resolveConfig('supervised-acdc', { size: [64, 64] }) } });
  net.dispose();
  const h5 = join(dataDir!, 'ACDC', 'data', 'patient028_frame01.h5');
  const vol = await readH5(h5, { numClasses: 4 });
  const raw = join(out, 'raw.nii.gz');
  // scanner-like intensities: a scale and an offset of the min-max normalised volume, slices last as NIfTI has them
  runPythonCode(`
import h5py, numpy as np, nibabel as nib
v = h5py.File(${JSON.stringify(h5)}, 'r')['image'][:]
nib.save(nib.Nifti1Image((np.transpose(v, (1, 2, 0)) * 743.0 + 21.0).astype(np.float32), np.diag([1.5, 1.5, 10.0, 1.0])), ${JSON.stringify(raw)})
`);
  const seg = await Segmenter.load(ckpt);
  t.is(seg.preprocessing?.normalization[0].scheme, 'minmax');
  const expected = await seg.segment(vol.image); // what `semiseg evaluate` computes on the HDF5 volume
  const image = await readNifti(raw);
  const got = await seg.segmentImage(image);
  const gotSlicesFirst = tidy(() => got.permute([2, 0, 1]).contiguous());
  t.is(tidy(() => gotSlicesFirst.ne(expected).to('int64').sum().item()) as number, 0);
  const classes = new Set(Array.from(expected.data() as BigInt64Array, Number));
  t.true(classes.size >= 2, 'the network gives more than one class, so the comparison means something');
  // without the normalisation the raw intensities give other labels
  const unnormalised = await seg.segment(tidy(() => image.data.permute([2, 0, 1]).contiguous()));
  t.true((tidy(() => unnormalised.ne(expected).to('int64').sum().item()) as number) > 0);
  const r = run('predict', raw, '--checkpoint', ckpt, '-o', join(out, 'labels.nii.gz'));
  t.is(r.status, 0, r.stderr);
  const written = await readNifti(join(out, 'labels.nii.gz'));
  t.is(tidy(() => written.data.to('int64').ne(got).to('int64').sum().item()) as number, 0, 'predict agrees');
  dispose([vol.image, vol.label, expected, image.data, got, gotSlicesFirst, unnormalised, written.data]);
  seg.dispose();
  rmSync(out, { recursive: true });
});

test.serial('semiseg compare takes a NIfTI folder: one plan for every run, evaluation on imagesTs + labelsTs in mm', (t) => {
  const root = syntheticFolder({ n: 6, shape: [20, 20, 18], test: 2 });
  const out = mkdtempSync(join(tmpdir(), 'semiseg-compare-'));
  const r = run('compare', '--recipes', 'supervised-la,mt-la', '--data', root, '--iterations', '2', '--validate-every', '2', '--size', '16', '--labeled', '3', '--out', out);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /test split, mean Dice %/);
  for (const recipe of ['supervised-la', 'mt-la']) {
    const summary = JSON.parse(runPythonCode(`import json; print(json.dumps(json.load(open(${JSON.stringify(join(out, `${recipe}-seed1337`, 'best.ckpt.test.json'))}))))`)) as { units: string; cases: number };
    t.is(summary.units, 'mm');
    t.is(summary.cases, 2);
  }
  rmSync(out, { recursive: true });
  rmSync(root, { recursive: true });
});
