// Decathlon / nnU-Net folders written by nibabel (the reference writer) for the dataset tests.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runPythonCode } from './python.js';

/**
 * A small Decathlon folder of blob volumes: `n` labeled cases (labels 0..classes-1), raw intensities
 * (scale + offset per case), spacing `spacing`. `tweak` is Python run after writing (variables: root,
 * nib, np) to break things on purpose. Returns the folder.
 */
export function syntheticFolder(o: { n?: number; shape?: number[]; spacing?: number[]; classes?: number; layout?: 'decathlon' | 'nnunet'; channels?: number; modality?: string; tweak?: string; test?: number } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'semiseg-folder-'));
  const code = `
import json, os, numpy as np, nibabel as nib
root = ${JSON.stringify(root)}
n, shape, spacing, C, layout, channels = ${o.n ?? 6}, ${JSON.stringify(o.shape ?? [24, 28, 20])}, ${JSON.stringify(o.spacing ?? [1, 1, 1])}, ${o.classes ?? 3}, ${JSON.stringify(o.layout ?? 'decathlon')}, ${o.channels ?? 1}
ntest = ${o.test ?? 0}
for d in ['imagesTr', 'labelsTr', 'imagesTs', 'labelsTs']: os.makedirs(os.path.join(root, d), exist_ok=True)
rng = np.random.default_rng(0)
aff = np.diag(spacing + [1.0]); aff[:3, 3] = [-10.0, 5.0, 2.5]
def case(i):
    g = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing='ij'), -1).astype(np.float32)
    c = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    r = np.sqrt((((g - c) * np.array(spacing)) ** 2).sum(-1))
    lab = np.zeros(shape, np.uint8)
    for k in range(1, C): lab[r < (C - k + 1) * 3.0] = k
    img = (100.0 + 40.0 * lab + rng.normal(0, 5, shape)) * (1 + i) + 7 * i
    return img.astype(np.float32), lab
def save(img, path): nib.save(nib.Nifti1Image(img, aff), path)
names = {str(k): ('background' if k == 0 else f'c{k}') for k in range(C)}
for i in range(n + ntest):
    img, lab = case(i)
    split = 'Tr' if i < n else 'Ts'
    cid = f'case_{i:03d}'
    if layout == 'decathlon':
        save(img if channels == 1 else np.stack([img * (c + 1) for c in range(channels)], -1), f'{root}/images{split}/{cid}.nii.gz')
    else:
        for c in range(channels): save(img * (c + 1), f'{root}/images{split}/{cid}_{c:04d}.nii.gz')
    save(lab, f'{root}/labels{split}/{cid}.nii.gz')
meta = {'name': 'Synthetic', 'labels': names, 'modality': {str(c): ${JSON.stringify(o.modality ?? 'MRI')} for c in range(channels)}} if layout == 'decathlon' else {
    'name': 'Synthetic', 'labels': {v: int(k) for k, v in names.items()}, 'channel_names': {str(c): ${JSON.stringify(o.modality ?? 'MRI')} for c in range(channels)}, 'file_ending': '.nii.gz'}
json.dump(meta, open(f'{root}/dataset.json', 'w'))
${o.tweak ?? ''}
`;
  runPythonCode(code);
  return root;
}
