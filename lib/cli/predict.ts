/** `semiseg predict`: a label map of one image (.nii / .nii.gz / .h5) on the input's grid, optionally a PNG overlay. */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import type { Command } from 'commander';

import { readH5 } from '../data/hdf5.js';
import { readNifti, writeNiftiLabels, type NiftiImage } from '../data/nifti.js';
import { dispose, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import { channelAxisOf, DEFAULT_MAX_VOXELS, Segmenter } from '../segmenter.js';
import { intOption, UsageError } from './options.js';
import { overlayPng } from './png.js';
import { niftiReference } from '../data/nifti-header.js';
import { isDicomInput, readDicomInput, segmentNames, writeSegOutput } from './predict-dicom.js';
import { PRECISION_HELP, precisionOption, warnIfEmulated } from './precision.js';

/** A NIfTI-1 header for data without one (HDF5 input): identity affine, unit spacing. */
function blankReference(data: Tensor, path: string): NiftiImage {
  const header = new Uint8Array(348);
  const v = new DataView(header.buffer);
  v.setInt32(0, 348, true);
  for (let k = 0; k < 8; k++) v.setFloat32(76 + 4 * k, 1, true); // pixdim
  header.set(Buffer.from('n+1\0', 'latin1'), 344);
  return { data, spacing: data.shape.map(() => 1), affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], header, path };
}

async function readInput(path: string): Promise<NiftiImage> {
  if (/\.nii(\.gz)?$/.test(path)) return readNifti(path);
  if (/\.h5$/.test(path)) {
    const s = await readH5(path, { requireLabel: false });
    s.label?.dispose();
    return blankReference(s.image, path);
  }
  throw new UsageError(`predict: '${path}' is neither .nii, .nii.gz nor .h5`);
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('segment one image with a checkpoint and write the label map on its grid')
    .argument('<input>', 'image: .nii, .nii.gz (3-D, or 4-D with the channels last), .h5 (the dataset layout), or a DICOM series (a folder, or a .dcm file)')
    .requiredOption('--checkpoint <file>', 'a semiseg checkpoint')
    .requiredOption('-o, --output <file>', 'label map to write: .nii.gz, or .dcm (a DICOM SEG, for DICOM input)')
    .option('--png <file>', 'also write an overlay picture of a few slices')
    .option('--task <id>', 'VerSemi checkpoints: the task (dataset) to segment, 0..T (default 0)', intOption(0))
    .option('--series <uid>', 'DICOM input: the SeriesInstanceUID to read when the folder holds several')
    .option('--segment-names <names>', 'DICOM SEG output: comma-separated names of labels 1, 2, ... (default Segment 1, ...)')
    .option('--precision <p>', PRECISION_HELP, 'float32')
    .option('--max-voxels <n>', `most voxels the image may have on the model's grid (after cropping and resampling to its spacing) (default ${DEFAULT_MAX_VOXELS}, a 512^3 volume)`, intOption(1))
    .action(async (input: string, opts: { checkpoint: string; output: string; png?: string; task?: number; precision: string; maxVoxels?: number }) => {
      if (!/\.(nii(\.gz)?|dcm)$/.test(opts.output)) throw new UsageError(`--output: '${opts.output}' must end in .nii or .nii.gz (a NIfTI label map) or .dcm (a DICOM SEG)`);
      const dicomOpts = opts as typeof opts & { series?: string; segmentNames?: string };
      const dicomIn = await isDicomInput(input);
      if (opts.output.endsWith('.dcm') && !dicomIn)
        throw new UsageError(`--output: a DICOM SEG (.dcm) references the DICOM series it segments, and '${input}' is not one (write .nii.gz instead)`);
      if (!dicomIn && dicomOpts.series !== undefined) throw new UsageError(`--series: '${input}' is not a DICOM series`);
      const names = segmentNames(dicomOpts.segmentNames);
      // a folder that is not there fails now, not after the whole inference
      for (const [flag, file] of [['--output', opts.output], ['--png', opts.png]] as const) {
        const dir = file === undefined ? undefined : dirname(resolve(file));
        if (dir !== undefined && !(existsSync(dir) && statSync(dir).isDirectory())) throw new UsageError(`${flag}: the folder '${dir}' of '${file}' does not exist`);
      }
      let seg: Segmenter;
      try {
        seg = await Segmenter.load(opts.checkpoint, { precision: precisionOption(opts.precision, 'cpu').requested, task: opts.task, maxVoxels: opts.maxVoxels });
      } catch (err) {
        throw err instanceof RangeError ? new UsageError((err as Error).message) : err;
      }
      warnIfEmulated(seg.precision, seg.network.device);
      const dicom = dicomIn ? await readDicomInput(input, dicomOpts.series) : undefined;
      const image = dicom ? niftiReference(dicom, input) : await readInput(input);
      const owned: Tensor[] = [image.data];
      try {
        // A NIfTI goes through the checkpoint's preprocessing (normalisation, spacing) and comes back on its
        // own grid; an .h5 volume is in the dataset layout, already normalised (slices first for 2-D networks).
        const nifti = !input.endsWith('.h5');
        if (!nifti && image.data.rank !== 3) throw new UsageError(`predict: '${input}' has ${image.data.rank} dimensions; a 3-D volume is needed`);
        let labels: Tensor;
        if (nifti) {
          try {
            labels = await seg.segmentImage(image);
          } catch (err) {
            // the image does not fit the model (shape, channels, NaN voxels, size): one line naming the file
            throw err instanceof RangeError ? new UsageError(`predict: '${input}': ${err.message.replace(/^[\w.]+\(\): /, '')}`) : err;
          }
        } else labels = await seg.segment(tidy(() => image.data.to('float32')));
        owned.push(labels);
        // the overlay shows the first channel of a 4-D image: (C, I, J, K) or (I, J, K, C), as segmentImage reads it
        const channelAxis = nifti ? channelAxisOf('predict', image.data.shape, seg.preprocessing?.channels.length ?? 1) : -1;
        const volume = channelAxis === -1 ? image.data : owned[owned.push(tidy(() => image.data.narrow(channelAxis, 0, 1).squeeze(channelAxis))) - 1];
        const pred = labels;
        const info = { kind: nifti ? 'VNet3D' : seg.network.kind }; // overlays: NIfTI slices along the last axis
        if (dicom && opts.output.endsWith('.dcm')) await writeSegOutput(opts.output, labels, dicom, names);
        else await writeNiftiLabels(opts.output, labels, image);
        console.log(`written: ${opts.output} (${labels.shape.join('x')}, classes ${[...new Set(Array.from(labels.data() as BigInt64Array, Number))].sort().join(', ')})`);
        if (opts.png) {
          const axis = info.kind === 'UNet2D' ? 0 : 2;
          const n = volume.shape[axis];
          const picks = [...new Set([0.3, 0.45, 0.6, 0.75].map((f) => Math.min(n - 1, Math.floor(f * n))))];
          const slices = picks.map((k) =>
            tidy(() => ({
              image: volume.narrow(axis, k, 1).squeeze(axis).contiguous().to('float32').data() as Float32Array,
              labels: pred.narrow(axis, k, 1).squeeze(axis).contiguous().data() as BigInt64Array,
            })),
          );
          const shape = volume.shape.filter((_, i) => i !== axis);
          writeFileSync(opts.png, overlayPng(slices, shape[0], shape[1]));
          console.log(`written: ${opts.png} (slices ${picks.join(', ')})`);
        }
      } finally {
        dispose(owned);
        seg.dispose();
      }
    });
}
