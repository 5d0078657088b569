/** `semiseg predict` with a DICOM series in (a folder or a .dcm file) and a DICOM SEG (.dcm) or NIfTI out. */
import { open, stat } from 'node:fs/promises';

import { readDicomSeries, type DicomImage } from '../data/dicom.js';
import { writeDicomSeg } from '../data/dicom-seg.js';
import type { Tensor } from '../tensor.js';
import { UsageError } from './options.js';

/** A folder, a *.dcm file, or any file with the DICM marker at byte 128. */
export async function isDicomInput(path: string): Promise<boolean> {
  let st;
  try {
    st = await stat(path);
  } catch {
    return /\.dcm$/i.test(path);
  }
  if (st.isDirectory()) return true;
  if (/\.dcm$/i.test(path)) return true;
  if (/\.(nii(\.gz)?|h5)$/.test(path)) return false;
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, 128);
    return bytesRead === 4 && b.toString('latin1') === 'DICM';
  } finally {
    await fh.close();
  }
}

/** Reads the series, saying which series a folder holds when it holds several and none was chosen. */
export async function readDicomInput(path: string, series?: string): Promise<DicomImage> {
  let img: DicomImage;
  try {
    const tty = process.stderr.isTTY;
    const onProgress = (done: number, total: number) => {
      if (total < 100) return; // small series read in well under a second
      if (tty) process.stderr.write(`\rreading DICOM: ${done}/${total} slices${done === total ? '\n' : ''}`);
      else if (done === total || done % 200 === 0) process.stderr.write(`reading DICOM: ${done}/${total} slices\n`);
    };
    img = await readDicomSeries(path, { ...(series === undefined ? {} : { seriesInstanceUID: series }), onProgress });
  } catch (err) {
    const m = (err as Error).message;
    // which series to read is the caller's choice: a usage error, with the option that makes it
    if (/ holds \d+ series; choose one by SeriesInstanceUID: /.test(m)) throw new UsageError(m.replace(/^readDicomSeries\(\): /, 'predict: ').replace('choose one by SeriesInstanceUID', 'choose one with --series <uid>'));
    if (series !== undefined && / has no series /.test(m)) throw new UsageError(m.replace(/^readDicomSeries\(\): /, '--series: '));
    throw err;
  }
  console.log(
    `read: ${path} (DICOM ${img.dicom.modality} '${img.dicom.seriesDescription}', ${img.dicom.slices.length} slices of ${img.dicom.rows} x ${img.dicom.columns}, spacing ${img.spacing.map((s) => +s.toFixed(4)).join(' x ')} mm)`,
  );
  return img;
}

/** Segment names from `--segment-names a,b,c` (labels 1, 2, 3). */
export function segmentNames(list: string | undefined): Array<{ label: string }> | undefined {
  if (list === undefined) return undefined;
  const names = list.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new UsageError(`--segment-names: expected comma-separated names of labels 1, 2, ..., got '${list}'`);
  return names.map((label) => ({ label }));
}

/** Writes the label map as a DICOM SEG referencing `source`. */
export async function writeSegOutput(path: string, labels: Tensor, source: DicomImage, names?: Array<{ label: string }>): Promise<void> {
  try {
    await writeDicomSeg(path, labels, source, { ...(names ? { segments: names } : {}), seriesDescription: 'semiseg segmentation' });
  } catch (err) {
    // a label without a name is a usage error of --segment-names
    if (err instanceof RangeError && names) throw new UsageError(`--segment-names: ${err.message.replace(/^writeDicomSeg\(\): /, '')}`);
    throw err;
  }
}
