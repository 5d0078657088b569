/**
 * DICOM Segmentation objects (SEG, SOP class 1.2.840.10008.5.1.4.1.1.66.4): a label map written as a
 * binary SEG that references its source series, so a viewer (OHIF, 3D Slicer, a PACS) overlays it on the
 * original images; and a SEG read back into a label map on the grid of its source series.
 *
 * Written: one segment per label value 1..N (SegmentNumber = label value) with its label, a coded
 * property category and type, a display colour and the algorithm; one frame per (segment, slice) where
 * the segment has voxels on that slice (all of them with `omitEmptyFrames: false`), frames ordered by
 * segment then slice, each with its plane position, its segment and a reference to the source image
 * (SOP instance, and frame number for multi-frame sources) it was derived from. Study, patient, Frame of
 * Reference and the referenced series come from the source. Frames are bit-packed back to back (1 bit
 * per pixel, no padding between frames), as the standard asks. The dataset is written by dcmjs.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

import dicomParser from 'dicom-parser';
import type { DataSet } from 'dicom-parser';

import { tensor } from '../create.js';
import { writeFileAtomic } from '../io/atomic.js';
import { tidy } from '../scope.js';
import { tensorArg, type Tensor } from '../tensor.js';
import { checkPath } from '../validate.js';
import type { DicomImage } from './dicom.js';

/** The Segmentation Storage SOP class. */
export const SEG_SOP_CLASS_UID = '1.2.840.10008.5.1.4.1.1.66.4';

/** A coded concept (code value, coding scheme, meaning), e.g. SNOMED CT `{ value: '85756007', scheme: 'SCT', meaning: 'Tissue' }`. */
export interface CodedConcept {
  value: string;
  scheme: string;
  meaning: string;
}

/** What one segment (one label value) is. */
export interface SegmentDescription {
  /** SegmentLabel, shown by viewers. */
  label: string;
  /** SegmentedPropertyCategoryCodeSequence (default SCT 91723000 'Anatomical Structure'). */
  category?: CodedConcept;
  /** SegmentedPropertyTypeCodeSequence (default SCT 85756007 'Tissue'). */
  type?: CodedConcept;
  /** Display colour, sRGB 0-255 (default from a fixed palette). */
  color?: [number, number, number];
  /** SegmentDescription (free text). */
  description?: string;
}

export interface DicomSegOptions {
  /**
   * Segment i describes label value i + 1. Default: one segment per label value 1..max(labels), named
   * 'Segment n'. Label values above the list's length are an error.
   */
  segments?: SegmentDescription[];
  /** SeriesDescription of the SEG (default 'semiseg segmentation'). */
  seriesDescription?: string;
  /** SeriesNumber of the SEG (default the source's + 1000, else 1000). */
  seriesNumber?: number;
  /** ContentLabel (a DICOM CS: upper case, default 'SEMISEG'). */
  contentLabel?: string;
  /** SegmentAlgorithmName (default 'semiseg'). */
  algorithmName?: string;
  /** Leave out frames where a segment has no voxel on a slice (default true). */
  omitEmptyFrames?: boolean;
  /** SOPInstanceUID / SeriesInstanceUID of the SEG (default: new UUID-derived UIDs). */
  sopInstanceUID?: string;
  seriesInstanceUID?: string;
}

/** A SEG read back into a label map. */
export interface DecodedDicomSeg {
  /** int64 [I, J, K] on the reference series' grid; voxel value = segment number (0 outside every segment). */
  labels: Tensor;
  segments: Array<{ number: number; label: string; category?: CodedConcept; type?: CodedConcept }>;
  seriesInstanceUID: string;
  sopInstanceUID: string;
  /** Frames the SEG holds. */
  frames: number;
}

const require = createRequire(import.meta.url);

/** The part of dcmjs used here (it ships no type declarations). */
interface Dcmjs {
  data: {
    DicomDict: new (meta: unknown) => { dict: unknown; write(options?: unknown): ArrayBuffer };
    DicomMetaDictionary: { denaturalizeDataset(ds: Record<string, unknown>): unknown };
  };
  log: { setLevel(level: string): void };
}
let dcmjsModule: Dcmjs | undefined;
function dcmjs(): Dcmjs {
  if (!dcmjsModule) {
    dcmjsModule = require('dcmjs') as Dcmjs;
    dcmjsModule.log.setLevel('error');
  }
  return dcmjsModule;
}

/** A new UID under 2.25 (a UUID as a decimal integer, ISO/IEC 9834-8). */
export function newDicomUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

const IMPLEMENTATION_CLASS_UID = '2.25.223411398284953040707962539532812866251';
const DEFAULT_CATEGORY: CodedConcept = { value: '91723000', scheme: 'SCT', meaning: 'Anatomical Structure' };
const DEFAULT_TYPE: CodedConcept = { value: '85756007', scheme: 'SCT', meaning: 'Tissue' };
const PALETTE: Array<[number, number, number]> = [
  [230, 25, 75],
  [60, 180, 75],
  [0, 130, 200],
  [255, 225, 25],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
];

/** sRGB 0-255 to the DICOM-scaled CIELab (0-65535) of RecommendedDisplayCIELabValue (D65). */
function srgbToDicomLab([r, g, b]: [number, number, number]): number[] {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const [R, G, B] = [lin(r), lin(g), lin(b)];
  const X = (0.4124564 * R + 0.3575761 * G + 0.1804375 * B) / 0.95047;
  const Y = 0.2126729 * R + 0.7151522 * G + 0.072175 * B;
  const Z = (0.0193339 * R + 0.119192 * G + 0.9503041 * B) / 1.08883;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : ((24389 / 27) * t + 16) / 116);
  const L = 116 * f(Y) - 16;
  const A = 500 * (f(X) - f(Y));
  const Bb = 200 * (f(Y) - f(Z));
  return [Math.round((L * 65535) / 100), Math.round(((A + 128) * 65535) / 255), Math.round(((Bb + 128) * 65535) / 255)].map((v) => Math.min(65535, Math.max(0, v)));
}

const code = (c: CodedConcept) => [{ CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning }];

function dicomDateTime(d = new Date()): { date: string; time: string } {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return {
    date: `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`,
    time: `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`,
  };
}

/**
 * Encodes `labels` (integer [I, J, K] on `source`'s grid, e.g. from Segmenter.segmentImage) as a binary
 * DICOM SEG referencing `source`'s series. Returns the Part 10 file bytes.
 */
export function encodeDicomSeg(labels: Tensor, source: DicomImage, options: DicomSegOptions = {}, fn = 'encodeDicomSeg'): Buffer {
  tensorArg(fn, 'labels', labels);
  const meta = source?.dicom;
  if (!meta || !Array.isArray(meta.slices)) throw new TypeError(`${fn}(): argument 'source' must be a DicomImage (from readDicomSeries), got ${typeof source}`);
  const { rows: R, columns: C } = meta;
  const K = meta.slices.length;
  if (labels.shape.join('x') !== [C, R, K].join('x'))
    throw new RangeError(`${fn}(): 'labels' has shape [${labels.shape.join(', ')}] but the source series is [${C}, ${R}, ${K}] (columns, rows, slices)`);
  if (labels.dtype.startsWith('float') || labels.dtype === 'bfloat16') throw new TypeError(`${fn}(): 'labels' must be an integer tensor, got ${labels.dtype}`);
  const flat = tidy(() => labels.permute([2, 1, 0]).contiguous().to('int32').toArray() as Int32Array); // [K, R, C]
  let hi = 0;
  for (const v of flat) {
    if (v < 0) throw new RangeError(`${fn}(): 'labels' holds the negative value ${v}`);
    if (v > hi) hi = v;
  }
  const segments: SegmentDescription[] = options.segments ?? Array.from({ length: Math.max(1, hi) }, (_, n) => ({ label: `Segment ${n + 1}` }));
  if (!Array.isArray(segments) || segments.length === 0) throw new RangeError(`${fn}(): option 'segments' must list at least one segment`);
  if (hi > segments.length) throw new RangeError(`${fn}(): 'labels' holds label ${hi} but only ${segments.length} segment${segments.length === 1 ? ' is' : 's are'} described`);
  segments.forEach((s, n) => {
    if (typeof s?.label !== 'string' || s.label === '') throw new TypeError(`${fn}(): option 'segments[${n}].label' must be a non-empty string`);
  });

  // which (segment, slice) frames to write
  const plane = R * C;
  const present: boolean[][] = segments.map(() => new Array<boolean>(K).fill(false));
  for (let k = 0; k < K; k++) {
    for (let p = 0; p < plane; p++) {
      const v = flat[k * plane + p];
      if (v > 0) present[v - 1][k] = true;
    }
  }
  const omit = options.omitEmptyFrames ?? true;
  const frames: Array<[number, number]> = []; // [segment number, k]
  segments.forEach((_, s) => {
    for (let k = 0; k < K; k++) if (!omit || present[s][k]) frames.push([s + 1, k]);
  });
  if (frames.length === 0) frames.push([1, 0]); // an empty segmentation still needs one (empty) frame

  // bit-packed frames, back to back (first pixel in the lowest bit)
  const bits = frames.length * plane;
  const pixels = new Uint8Array(Math.ceil(bits / 8) + (Math.ceil(bits / 8) % 2));
  frames.forEach(([s, k], f) => {
    const base = f * plane;
    for (let p = 0; p < plane; p++) {
      if (flat[k * plane + p] === s) {
        const bit = base + p;
        pixels[bit >> 3] |= 1 << (bit & 7);
      }
    }
  });

  const now = dicomDateTime();
  const sopInstanceUID = options.sopInstanceUID ?? newDicomUid();
  const seriesInstanceUID = options.seriesInstanceUID ?? newDicomUid();
  const ps = meta.patientStudy;
  const gap = source.spacing[2];
  const sliceRef = (k: number) => {
    const ref = meta.slices[k];
    return {
      ReferencedSOPClassUID: ref.sopClassUID,
      ReferencedSOPInstanceUID: ref.sopInstanceUID,
      ...(ref.frameNumber ? { ReferencedFrameNumber: ref.frameNumber } : {}),
    };
  };
  const instances = new Map<string, { ReferencedSOPClassUID: string; ReferencedSOPInstanceUID: string }>();
  for (const ref of meta.slices) instances.set(ref.sopInstanceUID, { ReferencedSOPClassUID: ref.sopClassUID, ReferencedSOPInstanceUID: ref.sopInstanceUID });
  const dimensionOrganizationUID = newDicomUid();
  const dataset: Record<string, unknown> = {
    _vrMap: { PixelData: 'OB' },
    SpecificCharacterSet: 'ISO_IR 192', // UTF-8: dcmjs writes text as UTF-8
    ImageType: ['DERIVED', 'PRIMARY'],
    SOPClassUID: SEG_SOP_CLASS_UID,
    SOPInstanceUID: sopInstanceUID,
    StudyDate: ps.StudyDate ?? '',
    SeriesDate: now.date,
    ContentDate: now.date,
    StudyTime: ps.StudyTime ?? '',
    SeriesTime: now.time,
    ContentTime: now.time,
    AccessionNumber: ps.AccessionNumber ?? '',
    Modality: 'SEG',
    Manufacturer: 'semiseg',
    ReferringPhysicianName: ps.ReferringPhysicianName ?? '',
    ...(ps.StudyDescription ? { StudyDescription: ps.StudyDescription } : {}),
    SeriesDescription: options.seriesDescription ?? 'semiseg segmentation',
    ManufacturerModelName: 'semiseg',
    ReferencedSeriesSequence: [{ SeriesInstanceUID: meta.seriesInstanceUID, ReferencedInstanceSequence: [...instances.values()] }],
    PatientName: ps.PatientName ?? '',
    PatientID: ps.PatientID ?? '',
    PatientBirthDate: ps.PatientBirthDate ?? '',
    PatientSex: ps.PatientSex ?? '',
    DeviceSerialNumber: '1',
    SoftwareVersions: 'semiseg',
    StudyInstanceUID: meta.studyInstanceUID,
    SeriesInstanceUID: seriesInstanceUID,
    StudyID: ps.StudyID ?? '',
    SeriesNumber: options.seriesNumber ?? (meta.seriesNumber !== undefined ? meta.seriesNumber + 1000 : 1000),
    InstanceNumber: 1,
    FrameOfReferenceUID: meta.frameOfReferenceUID,
    PositionReferenceIndicator: '',
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUID }],
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrganizationUID,
        DimensionIndexPointer: 0x0062000b, // ReferencedSegmentNumber
        FunctionalGroupPointer: 0x0062000a, // SegmentIdentificationSequence
        DimensionDescriptionLabel: 'ReferencedSegmentNumber',
      },
      {
        DimensionOrganizationUID: dimensionOrganizationUID,
        DimensionIndexPointer: 0x00200032, // ImagePositionPatient
        FunctionalGroupPointer: 0x00209113, // PlanePositionSequence
        DimensionDescriptionLabel: 'ImagePositionPatient',
      },
    ],
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    NumberOfFrames: frames.length,
    Rows: R,
    Columns: C,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    SegmentationType: 'BINARY',
    SegmentsOverlap: 'NO',
    ContentLabel: (options.contentLabel ?? 'SEMISEG').toUpperCase().replace(/[^A-Z0-9_ ]/g, '_').slice(0, 16),
    ContentDescription: 'semi-supervised segmentation (semiseg)',
    ContentCreatorName: 'semiseg',
    SegmentSequence: segments.map((s, n) => ({
      SegmentNumber: n + 1,
      SegmentLabel: s.label.slice(0, 64),
      ...(s.description ? { SegmentDescription: s.description } : {}),
      SegmentAlgorithmType: 'AUTOMATIC',
      SegmentAlgorithmName: options.algorithmName ?? 'semiseg',
      SegmentedPropertyCategoryCodeSequence: code(s.category ?? DEFAULT_CATEGORY),
      SegmentedPropertyTypeCodeSequence: code(s.type ?? DEFAULT_TYPE),
      RecommendedDisplayCIELabValue: srgbToDicomLab(s.color ?? PALETTE[n % PALETTE.length]),
    })),
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [{ ImageOrientationPatient: meta.imageOrientationPatient }],
        PixelMeasuresSequence: [{ PixelSpacing: meta.pixelSpacing, SliceThickness: meta.sliceThickness ?? gap, SpacingBetweenSlices: gap }],
      },
    ],
    PerFrameFunctionalGroupsSequence: frames.map(([s, k]) => ({
      DerivationImageSequence: [
        {
          SourceImageSequence: [{ ...sliceRef(k), PurposeOfReferenceCodeSequence: code({ value: '121322', scheme: 'DCM', meaning: 'Source image for image processing operation' }) }],
          DerivationCodeSequence: code({ value: '113076', scheme: 'DCM', meaning: 'Segmentation' }),
        },
      ],
      FrameContentSequence: [{ DimensionIndexValues: [s, k + 1] }],
      PlanePositionSequence: [{ ImagePositionPatient: meta.slices[k].position }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: s }],
    })),
    PixelData: [pixels.buffer],
  };
  const d = dcmjs().data;
  const fileMeta = d.DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: SEG_SOP_CLASS_UID,
    MediaStorageSOPInstanceUID: sopInstanceUID,
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: 'SEMISEG',
  });
  const dict = new d.DicomDict(fileMeta);
  dict.dict = d.DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write());
}

/** Writes {@link encodeDicomSeg}'s SEG to `path` atomically (a temporary file, flushed, then renamed). */
export async function writeDicomSeg(path: string, labels: Tensor, source: DicomImage, options: DicomSegOptions = {}): Promise<void> {
  checkPath('writeDicomSeg', path);
  const bytes = encodeDicomSeg(labels, source, options, 'writeDicomSeg');
  await writeFileAtomic(path, [bytes]);
}

const txt = (ds: DataSet | undefined, tag: string) => (ds?.elements[tag] ? (ds.string(tag) ?? '').trim() : '');
/** Text that may be non-ASCII: dicom-parser gives bytes as Latin-1 characters; UTF-8 when the SEG says ISO_IR 192. */
const text = (ds: DataSet | undefined, tag: string, utf8: boolean) => (utf8 ? Buffer.from(txt(ds, tag), 'latin1').toString('utf8') : txt(ds, tag));
const items = (ds: DataSet | undefined, tag: string): DataSet[] => (ds?.elements[tag]?.items ?? []).map((x) => x.dataSet).filter((x): x is DataSet => Boolean(x));
const first = (ds: DataSet | undefined, tag: string): DataSet | undefined => items(ds, tag)[0];
const codeOf = (ds: DataSet | undefined, utf8: boolean): CodedConcept | undefined =>
  ds ? { value: txt(ds, 'x00080100') || txt(ds, 'x00080119'), scheme: txt(ds, 'x00080102'), meaning: text(ds, 'x00080104', utf8) } : undefined;
const us = (ds: DataSet, tag: string) => (ds.elements[tag] && ds.elements[tag].length >= 2 ? ds.uint16(tag) : undefined);

/**
 * Reads a binary (or fractional) DICOM SEG back into a label map on the grid of `reference`, the series
 * it segments: each frame is placed by the source image it references (else by its plane position), and
 * its voxels get the frame's segment number. Throws an Error naming `name` for anything else.
 */
export function decodeDicomSeg(bytes: Uint8Array, reference: DicomImage, name = '<buffer>'): DecodedDicomSeg {
  const fn = 'decodeDicomSeg';
  const fail = (why: string) => new Error(`${fn}(): '${name}' ${why}`);
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes);
  } catch (err) {
    const m = err instanceof Error ? err.message : typeof err === 'string' ? err : String((err as { exception?: unknown }).exception ?? err);
    throw fail(`is not a readable DICOM file (${m})`);
  }
  const sopClass = txt(ds, 'x00080016');
  if (sopClass !== SEG_SOP_CLASS_UID) throw fail(`is not a DICOM SEG (SOP class ${sopClass || 'none'}, not ${SEG_SOP_CLASS_UID})`);
  const type = txt(ds, 'x00620001');
  if (type !== 'BINARY' && type !== 'FRACTIONAL') throw fail(`has SegmentationType '${type}'; semiseg reads BINARY and FRACTIONAL`);
  const meta = reference.dicom;
  const R = us(ds, 'x00280010') ?? 0;
  const C = us(ds, 'x00280011') ?? 0;
  if (R !== meta.rows || C !== meta.columns) throw fail(`has ${R} x ${C} frames but the reference series ${meta.rows} x ${meta.columns} (rows x columns)`);
  const forUID = txt(ds, 'x00200052');
  if (forUID && meta.frameOfReferenceUID && forUID !== meta.frameOfReferenceUID)
    throw fail(`is in Frame of Reference ${forUID}, not the reference series' ${meta.frameOfReferenceUID}`);
  const nFrames = Number(txt(ds, 'x00280008') || '1');
  const el = ds.elements.x7fe00010;
  if (!el) throw fail('has no pixel data (7FE0,0010)');
  if (el.encapsulatedPixelData) throw fail('has compressed pixel data; semiseg reads uncompressed SEGs');
  const plane = R * C;
  const bitsAllocated = us(ds, 'x00280100') ?? 1;
  const need = type === 'BINARY' ? Math.ceil((nFrames * plane) / 8) : nFrames * plane;
  if (el.length < need) throw fail(`holds ${el.length} bytes of pixel data where ${need} are needed (truncated?)`);
  if (type === 'FRACTIONAL' && bitsAllocated !== 8) throw fail(`is FRACTIONAL with BitsAllocated ${bitsAllocated} (8 expected)`);
  const maxFraction = Number(txt(ds, 'x00620014') || '255');
  const px = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);

  const utf8 = /ISO_IR 192/.test(txt(ds, 'x00080005'));
  const segments = items(ds, 'x00620002').map((it) => ({
    number: us(it, 'x00620004') ?? 0,
    label: text(it, 'x00620005', utf8),
    category: codeOf(first(it, 'x00620003'), utf8),
    type: codeOf(first(it, 'x0062000f'), utf8),
  }));
  const known = new Set(segments.map((x) => x.number));

  // slice index of a referenced source image, or of a plane position
  const bySop = new Map<string, number>();
  meta.slices.forEach((ref, k) => bySop.set(`${ref.sopInstanceUID}#${ref.frameNumber ?? 0}`, k));
  const rowCos = meta.imageOrientationPatient.slice(0, 3);
  const colCos = meta.imageOrientationPatient.slice(3, 6);
  const normal = [rowCos[1] * colCos[2] - rowCos[2] * colCos[1], rowCos[2] * colCos[0] - rowCos[0] * colCos[2], rowCos[0] * colCos[1] - rowCos[1] * colCos[0]];
  const d0 = meta.slices[0].position.reduce((a, x, n) => a + x * normal[n], 0);
  const K = meta.slices.length;
  // the slice step along the normal (not |step|: on a gantry-tilted series the slices step off the normal)
  const gap = K > 1 ? (meta.slices[K - 1].position.reduce((a, x, n) => a + x * normal[n], 0) - d0) / (K - 1) : reference.spacing[2];
  const shared = first(ds, 'x52009229');
  const perFrame = items(ds, 'x52009230');
  if (perFrame.length !== nFrames) throw fail(`has ${perFrame.length} per-frame functional groups for ${nFrames} frames`);

  const out = new Int32Array(K * plane); // [K, R, C]
  for (let f = 0; f < nFrames; f++) {
    const g = perFrame[f];
    const segItem = first(g, 'x0062000a') ?? first(shared, 'x0062000a');
    const segNumber = segItem ? (us(segItem, 'x0062000b') ?? 0) : 0;
    if (!known.has(segNumber)) throw fail(`frame ${f + 1} refers to segment ${segNumber}, which the SegmentSequence does not describe`);
    let k: number | undefined;
    for (const der of items(g, 'x00089124')) {
      for (const src of items(der, 'x00082112')) {
        const uid = txt(src, 'x00081155');
        const frameNo = Number(txt(src, 'x00081160') || '0');
        k ??= bySop.get(`${uid}#${frameNo}`) ?? (frameNo === 1 ? bySop.get(`${uid}#0`) : undefined);
      }
    }
    if (k === undefined) {
      const pos = (txt(first(g, 'x00209113'), 'x00200032') || '').split('\\').map(Number);
      if (pos.length === 3 && pos.every(Number.isFinite)) {
        const at = (pos.reduce((a, x, n) => a + x * normal[n], 0) - d0) / gap;
        const r = Math.round(at);
        if (Math.abs(at - r) < 0.05 && r >= 0 && r < K) k = r;
      }
    }
    if (k === undefined) throw fail(`frame ${f + 1} references no image of the reference series ${meta.seriesInstanceUID} and lies on none of its slices`);
    const base = f * plane;
    for (let p = 0; p < plane; p++) {
      const on = type === 'BINARY' ? (px[(base + p) >> 3] >> ((base + p) & 7)) & 1 : px[base + p] * 2 > maxFraction;
      if (on) out[k * plane + p] = segNumber;
    }
  }
  const labels = tidy(() => tensor(out, { shape: [K, R, C], dtype: 'int64' }).permute([2, 1, 0]).contiguous());
  return { labels, segments, seriesInstanceUID: txt(ds, 'x0020000e'), sopInstanceUID: txt(ds, 'x00080018'), frames: nFrames };
}

/** {@link decodeDicomSeg} of a file. */
export async function readDicomSeg(path: string, reference: DicomImage): Promise<DecodedDicomSeg> {
  checkPath('readDicomSeg', path);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`readDicomSeg(): '${path}' cannot be read: ${(err as Error).message}`);
  }
  return decodeDicomSeg(bytes, reference, path);
}
