/**
 * The nnU-Net raw dataset layout, so users can point semiseg at their own data:
 *   <root>/dataset.json, <root>/imagesTr/<case>_0000.nii.gz (one file per channel, _0000, _0001, ...),
 *   <root>/labelsTr/<case>.nii.gz. Cases come from the files in labelsTr (sorted); dataset.json gives
 *   the channel count ("channel_names" or "modality") and the file ending.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface NnUnetCase {
  id: string;
  images: string[];
  label: string;
}

export interface NnUnetDataset {
  root: string;
  channels: number;
  labels: Record<string, number>;
  cases: NnUnetCase[];
}

export function readNnUnetDataset(root: string): NnUnetDataset {
  const fn = 'readNnUnetDataset';
  const meta = join(root, 'dataset.json');
  if (!existsSync(meta)) throw new Error(`${fn}(): '${meta}' does not exist (an nnU-Net raw dataset has dataset.json)`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(meta, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${fn}(): '${meta}' is not valid JSON: ${(err as Error).message}`);
  }
  const names = (json.channel_names ?? json.modality ?? { 0: 'image' }) as Record<string, string>;
  const channels = Object.keys(names).length;
  const ending = typeof json.file_ending === 'string' ? json.file_ending : '.nii.gz';
  const labelsDir = join(root, 'labelsTr');
  if (!existsSync(labelsDir)) throw new Error(`${fn}(): '${labelsDir}' does not exist`);
  const cases = readdirSync(labelsDir)
    .filter((f) => f.endsWith(ending))
    .sort()
    .map((f) => {
      const id = f.slice(0, -ending.length);
      const images = Array.from({ length: channels }, (_, c) => join(root, 'imagesTr', `${id}_${String(c).padStart(4, '0')}${ending}`));
      const missing = images.find((p) => !existsSync(p));
      if (missing) throw new Error(`${fn}(): case '${id}' has a label but no image '${missing}'`);
      return { id, images, label: join(labelsDir, f) };
    });
  if (cases.length === 0) throw new Error(`${fn}(): '${labelsDir}' holds no '*${ending}' labels`);
  return { root, channels, labels: (json.labels ?? {}) as Record<string, number>, cases };
}
