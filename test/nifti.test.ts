// NIfTI-1 against nibabel: values (with intensity scaling), nibabel's axis order, affines from sform and
// qform; label maps written on a source image's grid that nibabel reads back with the same affine.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readNifti, writeNiftiLabels } from '../lib/data/nifti.js';
import { dispose, readTorchStateDict, tensor, tidy } from '../lib/index.js';
import { referencePython } from './helpers/reference.js';
import { maxAbsDiff, runPythonCode } from './helpers/python.js';

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-nifti-'));
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test.serial('NIfTI images read as nibabel reads them, and written labels keep the grid', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  runPythonCode(`
import json, numpy as np, nibabel as nib, torch
d = ${JSON.stringify(dir)}
rng = np.random.default_rng(0)
aff = np.array([[0.7, 0.1, 0, -90.5], [0, 0.7, 0.05, 12.25], [0.02, 0, 2.5, 30], [0, 0, 0, 1]])
raw = rng.integers(-300, 300, size=(13, 11, 7)).astype(np.int16)
img = nib.Nifti1Image(raw, aff)
img.header.set_slope_inter(0.5, 10)
img.set_qform(aff, code=1)
nib.save(img, d + '/img.nii.gz')
lab = rng.integers(0, 4, size=(9, 8, 5)).astype(np.uint8)
q = nib.Nifti1Image(lab, np.diag([1.25, 1.25, 3.0, 1.0]))
q.set_sform(None, code=0)
q.set_qform(np.array([[0, -1.25, 0, 5], [1.25, 0, 0, -3], [0, 0, 3.0, 7], [0, 0, 0, 1]]), code=2)
nib.save(q, d + '/lab.nii')
a = nib.load(d + '/img.nii.gz'); b = nib.load(d + '/lab.nii')
torch.save({'img': torch.from_numpy(np.ascontiguousarray(a.get_fdata().astype(np.float32))),
            'lab': torch.from_numpy(np.ascontiguousarray(np.asarray(b.dataobj).astype(np.int64)))}, d + '/ref.pt')
json.dump({'img_affine': a.affine.tolist(), 'lab_affine': b.affine.tolist(), 'img_zooms': [float(z) for z in a.header.get_zooms()]}, open(d + '/ref.json', 'w'))
`);
  const ref = await readTorchStateDict(join(dir, 'ref.pt'));
  const meta = JSON.parse(readFileSync(join(dir, 'ref.json'), 'utf8')) as { img_affine: number[][]; lab_affine: number[][]; img_zooms: number[] };
  const img = await readNifti(join(dir, 'img.nii.gz'));
  t.deepEqual(img.data.shape, [13, 11, 7]);
  t.is(img.data.dtype, 'float32');
  t.is(maxAbsDiff(img.data.toArray() as Float32Array, ref.img.toArray() as Float32Array), 0);
  t.true(img.affine.flat().every((x, i) => Math.abs(x - meta.img_affine.flat()[i]) < 1e-5), `${img.affine} vs ${meta.img_affine}`);
  t.deepEqual(img.spacing.map((s) => +s.toFixed(5)), meta.img_zooms.map((s) => +s.toFixed(5)));
  const lab = await readNifti(join(dir, 'lab.nii'));
  t.is(lab.data.dtype, 'int64');
  t.deepEqual(lab.data.toArray(), ref.lab.toArray());
  t.true(lab.affine.flat().every((x, i) => Math.abs(x - meta.lab_affine.flat()[i]) < 1e-5), `qform affine ${lab.affine} vs ${meta.lab_affine}`);

  // a prediction on the image's grid: nibabel reads the same labels and the same affine
  const pred = tidy(() => img.data.gt(10).to('int64').add(img.data.gt(100).to('int64')));
  await writeNiftiLabels(join(dir, 'pred.nii.gz'), pred, img);
  const back = JSON.parse(
    runPythonCode(`
import json, numpy as np, nibabel as nib
p = nib.load(${JSON.stringify(join(dir, 'pred.nii.gz'))})
print(json.dumps({'affine': p.affine.tolist(), 'dtype': str(p.get_data_dtype()), 'sum': int(np.asarray(p.dataobj).sum()), 'shape': list(p.shape), 'zooms': [float(z) for z in p.header.get_zooms()]}))`),
  ) as { affine: number[][]; dtype: string; sum: number; shape: number[]; zooms: number[] };
  t.deepEqual(back.shape, [13, 11, 7]);
  t.is(back.dtype, 'uint8');
  t.is(back.sum, tidy(() => Number(pred.sum().item())));
  t.true(back.affine.flat().every((x, i) => Math.abs(x - meta.img_affine.flat()[i]) < 1e-5));
  t.deepEqual(back.zooms, meta.img_zooms);
  const again = await readNifti(join(dir, 'pred.nii.gz'));
  t.deepEqual(again.data.toArray(), pred.toArray());
  dispose([ref, img.data, lab.data, pred, again.data]);
});

test.serial('damaged NIfTI files and mismatched label maps fail clearly', async (t) => {
  const small = join(dir, 'small.nii');
  writeFileSync(small, Buffer.alloc(100));
  await t.throwsAsync(readNifti(small), { message: /readNifti\(\): '.*small\.nii' is too short for a NIfTI-1 header \(100 bytes\)/ });
  const junk = join(dir, 'junk.nii');
  writeFileSync(junk, Buffer.alloc(400, 7));
  await t.throwsAsync(readNifti(junk), { message: /is not a NIfTI-1 file \(sizeof_hdr is not 348\)/ });
  const gz = join(dir, 'bad.nii.gz');
  writeFileSync(gz, Buffer.from([0x1f, 0x8b, 1, 2, 3]));
  await t.throwsAsync(readNifti(gz), { message: /is a damaged gzip file/ });
  await t.throwsAsync(readNifti(join(dir, 'none.nii')), { message: /'.*none\.nii' cannot be read/ });
  if (!referencePython) return;
  const full = readFileSync(join(dir, 'lab.nii'));
  const cut = join(dir, 'cut.nii');
  writeFileSync(cut, full.subarray(0, full.length - 40));
  await t.throwsAsync(readNifti(cut), { message: /'.*cut\.nii' holds \d+ data bytes where 360 are needed \(truncated\?\)/ });
  const lab = await readNifti(join(dir, 'lab.nii'));
  const wrong = tensor([[1, 2]], { dtype: 'int64' });
  await t.throwsAsync(writeNiftiLabels(join(dir, 'x.nii'), wrong, lab), { instanceOf: RangeError, message: /'labels' has shape \[1, 2\] but the reference image \[9, 8, 5\]/ });
  dispose([lab.data, wrong]);
});
