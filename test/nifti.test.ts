// NIfTI-1 against nibabel: values (with intensity scaling), nibabel's axis order, affines from sform and
// qform; label maps written on a source image's grid that nibabel reads back with the same affine.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parseNifti, readNifti, writeNiftiLabels } from '../lib/data/nifti.js';
import { dispose, liveTensors, readTorchStateDict, tensor, tidy } from '../lib/index.js';
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
  await t.throwsAsync(readNifti(small), { message: /readNifti\(\): '.*small\.nii' is too short for a NIfTI header \(100 bytes\)/ });
  const junk = join(dir, 'junk.nii');
  writeFileSync(junk, Buffer.alloc(400, 7));
  await t.throwsAsync(readNifti(junk), { message: /is not a NIfTI file \(sizeof_hdr is neither 348, NIfTI-1, nor 540, NIfTI-2\)/ });
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

test.serial('NIfTI-2, wide integers and repaired headers read as nibabel reads them', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  runPythonCode(`
import json, struct, numpy as np, nibabel as nib, torch
d = ${JSON.stringify(dir)}
rng = np.random.default_rng(1)
aff = np.array([[0.0, -0.9, 0.1, 40], [1.1, 0, 0, -7], [0, 0.05, 2.2, 3], [0, 0, 0, 1]])
f = rng.normal(size=(6, 5, 4)).astype(np.float32)
n2 = nib.Nifti2Image(f, aff); n2.set_qform(aff, code=1); nib.save(n2, d + '/n2.nii.gz')
u32 = rng.integers(0, 2**32 - 1, size=(3, 4, 2), dtype=np.uint64).astype(np.uint32)
nib.save(nib.Nifti1Image(u32, np.eye(4)), d + '/u32.nii')
i64 = rng.integers(-2**50, 2**50, size=(3, 4, 2), dtype=np.int64)
nib.save(nib.Nifti1Image(i64, np.eye(4), dtype=np.int64), d + '/i64.nii')
raw = rng.integers(-50, 50, size=(3, 4, 2)).astype(np.int16)
nan = nib.Nifti1Image(raw, np.eye(4)); nan.header['scl_slope'] = np.nan; nan.header['scl_inter'] = 3; nib.save(nan, d + '/slope_nan.nii')
neg = nib.Nifti1Image(f, None); neg.set_sform(None, code=0)
neg.set_qform(np.array([[0, 0.8, 0, 1], [-1.2, 0, 0, 2], [0, 0, 2.5, 3], [0, 0, 0, 1]]), code=1)
nib.save(neg, d + '/negpix.nii')
b = bytearray(open(d + '/negpix.nii', 'rb').read()); b[80:84] = struct.pack('<f', -0.8); open(d + '/negpix.nii', 'wb').write(bytes(b))
nib.save(nib.Nifti1Image(f, aff), d + '/off0.nii')
b = bytearray(open(d + '/off0.nii', 'rb').read()); b[108:112] = struct.pack('<f', 0.0); open(d + '/off0.nii', 'wb').write(bytes(b))
b[108:112] = struct.pack('<f', float('nan')); open(d + '/offnan.nii', 'wb').write(bytes(b))
out = {}
for name in ['n2.nii.gz', 'u32.nii', 'i64.nii', 'slope_nan.nii', 'negpix.nii', 'off0.nii']:
    im = nib.load(d + '/' + name)
    out[name] = {'affine': im.affine.tolist(), 'zooms': [float(z) for z in im.header.get_zooms()]}
    # vox_offset 0 in a single file: nibabel reads the header as voxels; the data start after the header
    a = f if name == 'off0.nii' else np.asanyarray(im.dataobj)
    torch.save({'x': torch.from_numpy(np.ascontiguousarray(a.astype(np.int64) if a.dtype.kind in 'iu' else a.astype(np.float32)))}, d + '/' + name + '.pt')
json.dump(out, open(d + '/odd.json', 'w'))
`);
  const meta = JSON.parse(readFileSync(join(dir, 'odd.json'), 'utf8')) as Record<string, { affine: number[][]; zooms: number[] }>;
  for (const name of Object.keys(meta)) {
    const ref = (await readTorchStateDict(join(dir, `${name}.pt`))).x;
    const img = await readNifti(join(dir, name));
    t.deepEqual(img.data.shape, ref.shape, name);
    t.is(img.data.dtype, ref.dtype === 'int64' ? 'int64' : 'float32', name);
    t.deepEqual(img.data.toArray(), ref.toArray(), `${name}: voxels`);
    t.true(img.affine.flat().every((x, i) => Math.abs(x - meta[name].affine.flat()[i]) < 1e-5), `${name}: affine ${img.affine} vs ${meta[name].affine}`);
    t.deepEqual(img.spacing.map((s) => +s.toFixed(5)), meta[name].zooms.map((s) => +s.toFixed(5)), `${name}: spacing`);
    // readNifti assembles the tensor on the compute thread; parseNifti on the calling one: the same image
    const live = liveTensors();
    const sync = parseNifti(readFileSync(join(dir, name)), name);
    t.is(sync.data.dtype, img.data.dtype, `${name}: dtype (parseNifti)`);
    t.deepEqual(sync.data.toArray(), img.data.toArray(), `${name}: voxels (parseNifti)`);
    t.deepEqual(sync.header, img.header);
    sync.data.dispose();
    t.is(liveTensors(), live, `${name}: nothing left behind`);
    dispose([ref, img.data]);
  }
  // a label map written on a NIfTI-2 image's grid: NIfTI-1, the same affine
  const n2 = await readNifti(join(dir, 'n2.nii.gz'));
  const pred = tidy(() => n2.data.gt(0).to('int64'));
  await writeNiftiLabels(join(dir, 'n2-pred.nii.gz'), pred, n2);
  const back = JSON.parse(runPythonCode(`
import json, numpy as np, nibabel as nib
p = nib.load(${JSON.stringify(join(dir, 'n2-pred.nii.gz'))})
print(json.dumps({'affine': p.affine.tolist(), 'sum': int(np.asarray(p.dataobj).sum()), 'version': p.header['sizeof_hdr'].item()}))`)) as { affine: number[][]; sum: number; version: number };
  t.is(back.version, 348);
  t.is(back.sum, tidy(() => Number(pred.sum().item())));
  t.true(back.affine.flat().every((x, i) => Math.abs(x - meta['n2.nii.gz'].affine.flat()[i]) < 1e-4), `${back.affine}`);
  dispose([n2.data, pred]);
  await t.throwsAsync(readNifti(join(dir, 'offnan.nii')), { message: /'.*offnan\.nii' has an invalid vox_offset NaN/ });
});

test.serial('parseNifti bounds what a gzipped image may expand to; 3-D labels on a 4-D image', async (t) => {
  const { parseNifti } = await import('../lib/data/nifti.js');
  const { gzipSync } = await import('node:zlib');
  // a 64^3 float32 image of zeros: 1 MiB decompressed, ~1 KiB compressed
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  header.writeInt16LE(3, 40);
  [64, 64, 64, 1, 1, 1, 1].forEach((s, k) => header.writeInt16LE(s, 42 + 2 * k));
  header.writeInt16LE(16, 70);
  header.writeInt16LE(32, 72);
  [1, 1, 1, 1].forEach((p, k) => header.writeFloatLE(p, 76 + 4 * k));
  header.writeFloatLE(352, 108);
  header.write('n+1\0', 344, 'latin1');
  const file = Buffer.concat([header, Buffer.alloc(64 ** 3 * 4)]);
  const gz = gzipSync(file);
  t.true(gz.length < 10000);
  t.throws(() => parseNifti(gz, 'upload', { maxBytes: 100000 }), { instanceOf: RangeError, message: "readNifti(): 'upload' decompresses to more than 100000 bytes, the limit" });
  t.throws(() => parseNifti(file, 'raw', { maxBytes: 100000 }), { instanceOf: RangeError, message: /'raw' decompresses to more than 100000 bytes/ });
  t.throws(() => parseNifti(gz, 'upload', { maxBytes: -1 }), { instanceOf: RangeError, message: /options\.maxBytes must be a positive integer/ });
  const { parseNiftiAsync } = await import('../lib/data/nifti.js');
  await t.throwsAsync(parseNiftiAsync(gz, 'upload', { maxBytes: 100000 }), { instanceOf: RangeError, message: "readNifti(): 'upload' decompresses to more than 100000 bytes, the limit" });
  await t.throwsAsync(parseNiftiAsync(gz.subarray(0, 100), 'cut'), { message: /'cut' is a damaged gzip file/ });
  const viaPool = await parseNiftiAsync(gz, 'upload', { maxBytes: file.length });
  t.deepEqual(viaPool.data.shape, [64, 64, 64]);
  viaPool.data.dispose();
  const ok = parseNifti(gz, 'upload', { maxBytes: file.length });
  t.deepEqual(ok.data.shape, [64, 64, 64]);
  // two channels last, as the Decathlon layout stores them: the label map is 3-D on the same grid
  const four = Buffer.from(file.subarray(0, 352 + 8 * 8 * 4 * 2 * 4));
  four.writeInt16LE(4, 40);
  [8, 8, 4, 2].forEach((s, k) => four.writeInt16LE(s, 42 + 2 * k));
  const img = parseNifti(four, 'four');
  t.deepEqual(img.data.shape, [8, 8, 4, 2]);
  const labels = tidy(() => img.data.narrow(3, 0, 1).squeeze(3).gt(-1).to('int64'));
  const { encodeNiftiLabels } = await import('../lib/data/nifti.js');
  const back = parseNifti(encodeNiftiLabels(labels, img), 'labels');
  t.deepEqual(back.data.shape, [8, 8, 4]);
  t.deepEqual(back.affine, img.affine);
  t.is(tidy(() => Number(back.data.sum().item())), 8 * 8 * 4);
  t.throws(() => encodeNiftiLabels(tidy(() => labels.narrow(0, 0, 4)), img), { instanceOf: RangeError, message: /'labels' has shape \[4, 8, 4\] but the reference image \[8, 8, 4, 2\]/ });
  dispose([ok.data, img.data, labels, back.data]);
});

test.serial('a header with neither sform nor qform code gets the affine nibabel gives it (i flipped, centred)', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  const out = runPythonCode(`
import json, numpy as np, nibabel as nib
d = ${JSON.stringify(dir)}
img = nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), np.diag([0.8, 1.5, 2.0, 1.0]))
img.set_sform(None, code=0); img.set_qform(None, code=0)
nib.save(img, d + '/nocode.nii')
print(json.dumps(nib.load(d + '/nocode.nii').affine.tolist()))
`);
  const expected = JSON.parse(out) as number[][];
  const img = await readNifti(join(dir, 'nocode.nii'));
  t.true(img.affine.flat().every((x, i) => Math.abs(x - expected.flat()[i]) < 1e-6), `${JSON.stringify(img.affine)} vs ${JSON.stringify(expected)}`);
  t.true(Math.abs(expected[0][0] + 0.8) < 1e-6, 'nibabel flips i');
  img.data.dispose();
});
