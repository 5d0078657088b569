/**
 * Image dataset folders as users export them: the Medical Segmentation Decathlon layout and the nnU-Net v2
 * raw layout (both NIfTI). Reading a folder lists its cases and checks that every file is there;
 * {@link readCase} decodes one case and checks it (shapes, affines, label values, intensities), so that a
 * bad file is one line naming the file and what is wrong.
 *
 *   Decathlon: dataset.json (`modality`, `labels` {"0": "background", ...}, `training` [{image, label}]),
 *              imagesTr/<case>.nii.gz (4-D with the channels last when there are several modalities),
 *              labelsTr/<case>.nii.gz, imagesTs/.
 *   nnU-Net v2: dataset.json (`channel_names`, `labels` {"background": 0, ...}, `file_ending`),
 *              imagesTr/<case>_0000.nii.gz (one file per channel), labelsTr/<case>.nii.gz, imagesTs/.
 *   nnU-Net v1 folders (`modality`, imagesTr/<case>_0000.nii.gz) read as nnU-Net: when dataset.json has no
 *              `channel_names`, a folder is Decathlon when every label has its imagesTr/<case>.nii.gz.
 * Both: an optional imagesUnlabeled/ (images without labels, in the folder's own naming) and labelsTs/
 * (labels of imagesTs, for `--split test`).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

import { FLOAT_DTYPES } from '../dtype.js';
import { stack } from '../functional.js';
import { dispose, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import type { SpatialImage } from './image.js';
import { readNifti, type NiftiImage } from './nifti.js';

export type FolderLayout = 'decathlon' | 'nnunet';

export interface ImageCase {
  id: string;
  /** One file per channel (nnU-Net), or one file holding every channel (Decathlon). */
  images: string[];
  label?: string;
}

export interface ImageDataset {
  root: string;
  layout: FolderLayout;
  name: string;
  /** Channel (modality) names, e.g. ['MRI'] or ['CT']. */
  channels: string[];
  /** Class names; the index is the label value (0: background). */
  classes: string[];
  /** Cases of imagesTr with a label in labelsTr, sorted by id. */
  labeled: ImageCase[];
  /** Images without a label: imagesTr without one, imagesTs when there is no labelsTs, imagesUnlabeled/. */
  unlabeled: ImageCase[];
  /** imagesTs cases with a label in labelsTs (the test split). */
  test: ImageCase[];
  fileEnding: string;
}

/** Whether `root` looks like a Decathlon or nnU-Net folder (dataset.json beside imagesTr/). */
export function isImageDataset(root: string): boolean {
  return existsSync(join(root, 'dataset.json')) && existsSync(join(root, 'imagesTr'));
}

function fail(why: string): Error {
  return new Error(`readImageDataset(): ${why}`);
}

function listFiles(dir: string, ending: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(ending) && !f.startsWith('.') && statSync(join(dir, f)).isFile())
    .sort();
}

/** Class names by value from either form of `labels`, checking the values are 0 .. n-1. */
function classNames(labels: unknown, meta: string): string[] {
  if (!labels || typeof labels !== 'object') throw fail(`'${meta}' has no "labels" object (class names and values)`);
  const byValue = new Map<number, string>();
  for (const [k, v] of Object.entries(labels as Record<string, unknown>)) {
    // Decathlon: {"0": "background"}; nnU-Net v2: {"background": 0} (region lists are not supported)
    const [value, name] = /^\d+$/.test(k) && typeof v === 'string' ? [Number(k), v] : [v, k];
    if (Array.isArray(value)) throw fail(`'${meta}': label '${name}' is a region (a list of values); region-based labels are not supported`);
    // nnU-Net v2 marks unannotated voxels with a label named 'ignore': it would train as a class here
    if (String(name) === 'ignore' && !(/^\d+$/.test(k) && typeof v === 'string'))
      throw fail(`'${meta}': label 'ignore' (${JSON.stringify(v)}) is nnU-Net v2's ignore label (unannotated voxels), which is not supported: it would train as a class; annotate those voxels or leave 'ignore' out of the labels and the label maps`);
    if (!Number.isInteger(value) || (value as number) < 0) throw fail(`'${meta}': label '${k}' has value ${JSON.stringify(v)}; an integer >= 0 is needed`);
    byValue.set(value as number, String(name));
  }
  const n = byValue.size;
  if (n < 2) throw fail(`'${meta}' names ${n} label(s); background and at least one class are needed`);
  const names: string[] = [];
  for (let c = 0; c < n; c++) {
    const name = byValue.get(c);
    if (name === undefined) throw fail(`'${meta}': label values must be 0 .. ${n - 1} without gaps; ${c} is missing`);
    names.push(name);
  }
  return names;
}

/**
 * The layout of a folder. nnU-Net v2 names its channels (`channel_names`); otherwise the labels decide:
 * Decathlon when every label <id> has its image imagesTr/<id><ending> (so Decathlon case ids that end in
 * _0000 stay Decathlon), else nnU-Net (v1 also writes `modality`) when imagesTr holds <id>_0000<ending>
 * channel files, else Decathlon (whose missing-image error then names the file).
 */
function folderLayout(json: Record<string, unknown>, imagesTr: string, labelsTr: string, ending: string): FolderLayout {
  if (json.channel_names !== undefined) return 'nnunet';
  const images = new Set(listFiles(imagesTr, ending));
  const labels = listFiles(labelsTr, ending);
  if (labels.length > 0 && labels.every((f) => images.has(f))) return 'decathlon';
  if ([...images].some((f) => f.endsWith(`_0000${ending}`))) return 'nnunet';
  return 'decathlon';
}

/** Lists the cases of a Decathlon or nnU-Net v2 folder (nothing is decoded yet). */
export function readImageDataset(root: string): ImageDataset {
  if (!existsSync(root)) throw fail(`'${root}' does not exist`);
  const meta = join(root, 'dataset.json');
  if (!existsSync(meta)) throw fail(`'${root}' is not a Decathlon or nnU-Net dataset folder: it has no dataset.json (expected dataset.json, imagesTr/ and labelsTr/)`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(meta, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw fail(`'${meta}' is not valid JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const imagesTr = join(root, 'imagesTr');
  const labelsTr = join(root, 'labelsTr');
  if (!existsSync(imagesTr)) throw fail(`'${root}' has no imagesTr/ folder`);
  const ending = typeof json.file_ending === 'string' ? json.file_ending : '.nii.gz';
  if (!/\.nii(\.gz)?$/.test(ending)) throw fail(`'${meta}': file_ending '${ending}' is not supported (NIfTI: .nii.gz or .nii)`);
  // a case saved with the other NIfTI ending was silently left out (an image) or turned unlabeled (a label)
  const other = ending === '.nii' ? '.nii.gz' : '.nii';
  for (const dir of ['imagesTr', 'labelsTr', 'imagesTs', 'labelsTs', 'imagesUnlabeled']) {
    const stray = listFiles(join(root, dir), other);
    if (stray.length > 0)
      throw fail(
        `'${join(root, dir, stray[0])}'${stray.length > 1 ? ` (and ${stray.length - 1} more)` : ''} does not end in the dataset's file_ending '${ending}' (dataset.json): save every image and label as '${ending}', or set file_ending`,
      );
  }
  const layout = folderLayout(json, imagesTr, labelsTr, ending);
  const names = (json.channel_names ?? json.modality ?? { 0: 'image' }) as Record<string, string>;
  const channels = Object.keys(names)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => String(names[k]));
  if (channels.length === 0) throw fail(`'${meta}' names no channel ("channel_names" or "modality")`);
  const classes = classNames(json.labels, meta);

  const strip = (f: string) => f.slice(0, -ending.length);
  const imagesOf = (dir: string, id: string) =>
    layout === 'nnunet' ? channels.map((_, c) => join(dir, `${id}_${String(c).padStart(4, '0')}${ending}`)) : [join(dir, `${id}${ending}`)];
  const caseIds = (dir: string) => {
    const files = listFiles(dir, ending);
    const ids = layout === 'nnunet' ? files.filter((f) => /_\d{4}$/.test(strip(f))).map((f) => strip(f).replace(/_\d{4}$/, '')) : files.map(strip);
    return [...new Set(ids)].sort();
  };
  const checked = (c: ImageCase): ImageCase => {
    const missing = c.images.find((p) => !existsSync(p));
    if (missing) throw fail(`case '${c.id}' has no ${layout === 'nnunet' ? 'channel file' : 'image'} '${missing}'`);
    return c;
  };

  const labelIds = listFiles(labelsTr, ending).map(strip);
  if (!existsSync(labelsTr) || labelIds.length === 0) throw fail(`'${labelsTr}' holds no '*${ending}' labels (at least one labeled case is needed)`);
  const labeled = labelIds.map((id) => checked({ id, images: imagesOf(imagesTr, id), label: join(labelsTr, `${id}${ending}`) }));
  const labeledSet = new Set(labelIds);
  const unlabeled: ImageCase[] = caseIds(imagesTr)
    .filter((id) => !labeledSet.has(id))
    .map((id) => checked({ id, images: imagesOf(imagesTr, id) }));
  const labelsTs = join(root, 'labelsTs');
  const test: ImageCase[] = [];
  for (const id of caseIds(join(root, 'imagesTs'))) {
    const label = join(labelsTs, `${id}${ending}`);
    const c = checked({ id, images: imagesOf(join(root, 'imagesTs'), id), label: existsSync(label) ? label : undefined });
    if (c.label) test.push(c);
    else unlabeled.push(c);
  }
  for (const id of caseIds(join(root, 'imagesUnlabeled'))) unlabeled.push(checked({ id, images: imagesOf(join(root, 'imagesUnlabeled'), id) }));
  return { root, layout, name: typeof json.name === 'string' ? json.name : basename(root), channels, classes, labeled, unlabeled, test, fileEnding: ending };
}

/** A decoded case: channels first, float32; the label int64; the geometry of its first image. */
export interface CaseData extends SpatialImage {
  id: string;
  /** (C, I, J, K) float32 */
  data: Tensor;
  /** (I, J, K) int64 */
  label?: Tensor;
  /** the first image file, for writing results on its grid */
  reference: NiftiImage;
}

function sameAffine(a: number[][], b: number[][]): boolean {
  const scale = Math.max(1, ...a.flat().map(Math.abs));
  return a.every((row, i) => row.every((v, j) => Math.abs(v - b[i][j]) <= 1e-3 * scale));
}

/**
 * Decodes one case: every channel file (or the channels of a 4-D Decathlon image), and the label when
 * `withLabel`. Checks: 3-D images (4-D only for several Decathlon modalities), the channel count, equal
 * shapes and affines of channels and label, finite intensities (no NaN or +-Inf), integer label values
 * (a float label map within 1e-3 of integers) among the dataset's classes.
 */
export async function readCase(ds: ImageDataset, c: ImageCase, withLabel = true): Promise<CaseData> {
  const owned: Tensor[] = [];
  try {
    const parts: NiftiImage[] = [];
    for (const path of c.images) {
      const im = await readNifti(path);
      owned.push(im.data);
      parts.push(im);
    }
    const first = parts[0];
    let data: Tensor;
    const want = ds.channels.length;
    if (ds.layout === 'decathlon') {
      const s = first.data.shape;
      const trailingOne = s.length === 4 && s[3] === 1;
      if (want === 1 && s.length !== 3 && !trailingOne) throw new Error(`'${first.path}' has ${s.length} dimensions (${s.join('x')}); a 3-D image is expected (dataset.json names one modality)`);
      if (want > 1 && (s.length !== 4 || s[3] !== want)) throw new Error(`'${first.path}' has shape ${s.join('x')}; a 4-D image with ${want} channels last is expected (dataset.json names ${want} modalities)`);
      data = tidy(() => (s.length === 4 ? first.data.permute([3, 0, 1, 2]) : first.data.unsqueeze(0)).to('float32').contiguous());
    } else {
      for (const p of parts) {
        if (p.data.rank !== 3) throw new Error(`'${p.path}' has ${p.data.rank} dimensions (${p.data.shape.join('x')}); a 3-D image is expected (one file per channel)`);
        if (p.data.shape.join() !== first.data.shape.join()) throw new Error(`'${p.path}' has shape ${p.data.shape.join('x')} but '${first.path}' has ${first.data.shape.join('x')}`);
        if (!sameAffine(p.affine, first.affine)) throw new Error(`'${p.path}' has another affine than '${first.path}' (channels must share one grid)`);
      }
      data = tidy(() => stack(parts.map((p) => p.data.to('float32')), 0));
    }
    owned.push(data);
    // x - x is NaN exactly where x is NaN or +-Inf
    if (tidy(() => data.sub(data).isNan().any().item()) as boolean) throw new Error(`'${first.path}' holds NaN or infinite intensities`);
    let label: Tensor | undefined;
    if (withLabel && c.label) {
      const lb = await readNifti(c.label);
      owned.push(lb.data);
      const spatial = data.shape.slice(1);
      const ls = lb.data.shape;
      const lshape = ls.length === 4 && ls[3] === 1 ? ls.slice(0, 3) : ls;
      if (lshape.join() !== spatial.join()) throw new Error(`'${c.label}' has shape ${ls.join('x')} but its image '${first.path}' has ${spatial.join('x')}`);
      if (!sameAffine(lb.affine, first.affine)) throw new Error(`'${c.label}' has another affine than its image '${first.path}' (the label must lie on the image's grid)`);
      if (FLOAT_DTYPES.includes(lb.data.dtype)) {
        // a float label map must hold integers: values between classes come from linear resampling
        const bad = tidy(() => {
          const v = (lb.data.dtype === 'float64' ? lb.data : lb.data.to('float32')).reshape([-1]);
          const off = v.sub(v.round()).abs();
          const worst = off.max().item() as number;
          if (worst <= 1e-3) return undefined;
          const at = Number.isNaN(worst) ? off.isNan().to('uint8').argmax() : off.argmax();
          return v.narrow(0, at.item() as number, 1).item() as number;
        });
        if (bad !== undefined)
          throw new Error(`'${c.label}' holds label value ${bad}, which is not an integer; labels must be integers (resample label maps with nearest neighbour, not linear interpolation)`);
      }
      label = tidy(() => lb.data.reshape(lshape).to('float64').round().to('int64'));
      owned.push(label);
      const [lo, hi] = tidy(() => [label!.min().item() as number, label!.max().item() as number]);
      if (lo < 0 || hi >= ds.classes.length) {
        const bad = lo < 0 ? lo : hi;
        throw new Error(`'${c.label}' holds label value ${bad}, which dataset.json's labels do not name (0 .. ${ds.classes.length - 1}: ${ds.classes.join(', ')})`);
      }
    }
    for (const p of parts) p.data.dispose();
    return { id: c.id, data, label, spacing: first.spacing.slice(0, 3), affine: first.affine, reference: { ...first, data } };
  } catch (err) {
    dispose(owned);
    throw err;
  }
}
