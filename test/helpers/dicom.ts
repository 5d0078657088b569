/** The DICOM series of ../shared/data/DICOM (or $SEMISEG_DATA/DICOM), and modified copies of them for error cases. */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { referencePython, repoRoot } from './reference.js';

export const dicomDir: string | null =
  [process.env.SEMISEG_DATA, join(repoRoot, '..', 'shared', 'data')]
    .filter((d): d is string => Boolean(d))
    .map((d) => join(d, 'DICOM'))
    .find((d) => existsSync(join(d, 'Study1', '13_HCropVolume'))) ?? null;

/** The three hippocampus crops and the whole-head T1, relative to dicomDir. */
export const SERIES = ['Study1/13_HCropVolume', 'Study2/14_HCropVolume', 'Study3/11_HCropVolume', 'Study1/12-T1post-05670'];

/** pydicom is the reference reader: tests that compare against it need it in the reference python. */
export const havePydicom = ((): boolean => {
  if (!referencePython) return false;
  return spawnSync(referencePython, ['-c', 'import pydicom, imagecodecs, nibabel'], { stdio: 'ignore' }).status === 0;
})();

export function copySeries(from: string, to: string): string[] {
  mkdirSync(to, { recursive: true });
  const names = readdirSync(from).filter((n) => n.endsWith('.dcm'));
  for (const n of names) copyFileSync(join(from, n), join(to, n));
  return names;
}

interface DcmjsData {
  DicomMessage: { readFile(b: ArrayBuffer): { meta: Record<string, unknown>; dict: Record<string, unknown> } };
  DicomMetaDictionary: {
    naturalizeDataset(d: unknown): Record<string, unknown>;
    denaturalizeDataset(d: Record<string, unknown>): Record<string, unknown>;
  };
  DicomDict: new (meta: unknown) => { dict: unknown; write(): ArrayBuffer };
}
const dcmjs = createRequire(import.meta.url)('dcmjs') as { data: DcmjsData; log: { setLevel(l: string): void } };
dcmjs.log.setLevel('error');

/** Rewrites a DICOM file with dcmjs after `edit` changes its (naturalized) meta header and data set. */
export function editDicom(path: string, edit: (meta: Record<string, unknown>, ds: Record<string, unknown>) => void, out = path): void {
  const buf = readFileSync(path);
  const msg = dcmjs.data.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const d = dcmjs.data.DicomMetaDictionary;
  const meta = d.naturalizeDataset(msg.meta);
  const ds = d.naturalizeDataset(msg.dict);
  edit(meta, ds);
  const dict = new dcmjs.data.DicomDict(d.denaturalizeDataset(meta));
  dict.dict = d.denaturalizeDataset(ds);
  writeFileSync(out, Buffer.from(dict.write()));
}
