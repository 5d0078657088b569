/**
 * DICOM series in: a folder (or a list of in-memory files) of single-frame images in any order, or an
 * enhanced multi-frame file, read into one volume with its geometry.
 *
 * Parsing is dicom-parser's (Cornerstone); compressed pixel data is decoded by dcmjs-codecs' WebAssembly
 * codecs (RLE, JPEG baseline / extended / lossless, JPEG-LS, JPEG 2000, HTJ2K). No DICOM parsing is done
 * here beyond reading attributes out of the parsed data sets.
 *
 * Geometry, as dcm2niix and nibabel have it:
 * - the volume is [I, J, K] with i the column index of a slice, j its row index and k the slice index, the
 *   slices sorted by ImagePositionPatient projected on the slice normal (row cosine x column cosine), not
 *   by file name or InstanceNumber;
 * - spacing is [column spacing, row spacing, slice step] = [PixelSpacing[1], PixelSpacing[0], |step|], the
 *   step from the actual slice positions ((last - first) / (K - 1)), not SliceThickness;
 * - the affine maps (i, j, k, 1) to RAS+ millimetres: the DICOM (LPS) matrix
 *   [rowCosine * PixelSpacing[1], columnCosine * PixelSpacing[0], step, ImagePositionPatient of slice 0]
 *   with its first two rows negated (LPS -> RAS). This is the DICOM row order; dcm2niix by default also
 *   reverses j (its `-y n` keeps it) and compensates in its affine, so every voxel has the same world
 *   position either way.
 * Voxel values are the stored values with RescaleSlope / RescaleIntercept applied (per slice), as float32.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import dicomParser from 'dicom-parser';
import type { DataSet, Element } from 'dicom-parser';
import type * as Codecs from 'dcmjs-codecs';

import { tensor } from '../create.js';
import { tidy } from '../scope.js';
import { checkKnownKeys, checkObject, rangeError, typeError } from '../validate.js';
import type { SpatialImage } from './image.js';

/** One DICOM file held in memory (an upload, an archive member). */
export interface DicomFile {
  /** Used in errors and as the slice's `source`. */
  name: string;
  bytes: Uint8Array;
}

/** The source image of one slice k of a volume: what a derived object (a SEG) references. */
export interface DicomSliceRef {
  sopClassUID: string;
  sopInstanceUID: string;
  /** 1-based frame number, for a frame of a multi-frame image; absent for single-frame images. */
  frameNumber?: number;
  /** ImagePositionPatient (LPS millimetres) of the slice's first voxel. */
  position: number[];
  /** File path or upload name it came from. */
  source: string;
}

/** The DICOM side of a volume read from a series: identifiers and geometry in DICOM terms. */
export interface DicomSeriesMeta {
  studyInstanceUID: string;
  seriesInstanceUID: string;
  frameOfReferenceUID: string;
  modality: string;
  seriesDescription: string;
  seriesNumber?: number;
  rows: number;
  columns: number;
  /** Row cosine then column cosine (LPS). */
  imageOrientationPatient: number[];
  /** [row spacing, column spacing] in mm, as DICOM orders them. */
  pixelSpacing: number[];
  sliceThickness?: number;
  /** The source of each slice k, in volume order. */
  slices: DicomSliceRef[];
  /** Patient and study attributes a derived object copies (DICOM keywords, string values, decoded text). */
  patientStudy: Record<string, string>;
  /** The transfer syntax of the first file. */
  transferSyntaxUID: string;
}

/** A volume read from a DICOM series: a {@link SpatialImage} (float32 [I, J, K]) plus its DICOM identity. */
export interface DicomImage extends SpatialImage {
  dicom: DicomSeriesMeta;
}

/** A series found in a folder or upload. */
export interface DicomSeriesInfo {
  seriesInstanceUID: string;
  modality: string;
  seriesDescription: string;
  seriesNumber?: number;
  /** Files of the series. */
  files: number;
  /** Image frames of the series (files x frames per file). */
  frames: number;
}

export interface DicomReadOptions {
  /** The series to read when several are present (otherwise several series are an error listing them). */
  seriesInstanceUID?: string;
  /**
   * How far, in mm, a slice gap may differ from the others, or a slice lie off the line through the first
   * and last slices (default: 1% of the slice step, at least 0.01 mm). Orientation cosines must agree to
   * 1e-4 and pixel spacings to 0.1% between slices.
   */
  positionTolerance?: number;
  /** Called after each slice is decoded (done, total): progress for long series. */
  onProgress?: (done: number, total: number) => void;
}

const FN = 'readDicomSeries';

/** Uncompressed transfer syntaxes (dicom-parser reads them, inflating the deflated one). */
const NATIVE_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
};

type Decoder = 'decodeRle' | 'decodeJpeg' | 'decodeJpegLs' | 'decodeJpeg2000' | 'decodeHtJpeg2000' | 'decodeJpegXl';

/** Compressed transfer syntaxes with a decoder in dcmjs-codecs. */
const CODEC_SYNTAXES: Record<string, [string, Decoder]> = {
  '1.2.840.10008.1.2.5': ['RLE Lossless', 'decodeRle'],
  '1.2.840.10008.1.2.4.50': ['JPEG Baseline (Process 1)', 'decodeJpeg'],
  '1.2.840.10008.1.2.4.51': ['JPEG Extended (Process 2 & 4)', 'decodeJpeg'],
  '1.2.840.10008.1.2.4.57': ['JPEG Lossless, Non-Hierarchical (Process 14)', 'decodeJpeg'],
  '1.2.840.10008.1.2.4.70': ['JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 SV1)', 'decodeJpeg'],
  '1.2.840.10008.1.2.4.80': ['JPEG-LS Lossless', 'decodeJpegLs'],
  '1.2.840.10008.1.2.4.81': ['JPEG-LS Lossy (Near-Lossless)', 'decodeJpegLs'],
  '1.2.840.10008.1.2.4.90': ['JPEG 2000 (Lossless Only)', 'decodeJpeg2000'],
  '1.2.840.10008.1.2.4.91': ['JPEG 2000', 'decodeJpeg2000'],
  '1.2.840.10008.1.2.4.201': ['High-Throughput JPEG 2000 (Lossless Only)', 'decodeHtJpeg2000'],
  '1.2.840.10008.1.2.4.202': ['High-Throughput JPEG 2000 with RPCL Options (Lossless Only)', 'decodeHtJpeg2000'],
  '1.2.840.10008.1.2.4.203': ['High-Throughput JPEG 2000', 'decodeHtJpeg2000'],
  '1.2.840.10008.1.2.4.110': ['JPEG XL Lossless', 'decodeJpegXl'],
  '1.2.840.10008.1.2.4.112': ['JPEG XL', 'decodeJpegXl'],
};

/** Names of transfer syntaxes semiseg does not decode, for the error. */
const OTHER_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.101': 'MPEG2 Main Profile / High Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD-compatible High Profile',
  '1.2.840.10008.1.2.4.104': 'MPEG-4 AVC/H.264 High Profile For 2D Video',
  '1.2.840.10008.1.2.4.105': 'MPEG-4 AVC/H.264 High Profile For 3D Video',
  '1.2.840.10008.1.2.4.106': 'MPEG-4 AVC/H.264 Stereo High Profile',
  '1.2.840.10008.1.2.4.107': 'HEVC/H.265 Main Profile',
  '1.2.840.10008.1.2.4.108': 'HEVC/H.265 Main 10 Profile',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component (Lossless Only)',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component',
  '1.2.840.10008.1.2.4.94': 'JPIP Referenced',
  '1.2.840.10008.1.2.4.95': 'JPIP Referenced Deflate',
  '1.2.840.10008.1.2.4.111': 'JPEG XL JPEG Recompression',
  '1.2.840.10008.1.2.4.52': 'JPEG Extended (Process 3 & 5, retired)',
  '1.2.840.10008.1.2.4.53': 'JPEG Spectral Selection (retired)',
  '1.2.840.10008.1.2.4.55': 'JPEG Full Progression (retired)',
  '1.2.840.10008.1.2.4.58': 'JPEG Lossless, Hierarchical (retired)',
  '1.2.840.10008.1.2.6.1': 'RFC 2557 MIME encapsulation',
};

/** The transfer syntaxes readDicomSeries decodes: UID -> name. */
export const DICOM_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = Object.freeze({
  ...NATIVE_SYNTAXES,
  ...Object.fromEntries(Object.entries(CODEC_SYNTAXES).map(([uid, [name]]) => [uid, name])),
});

/** Segmentation, RT structure set / plan / dose, surface segmentation: derived from images, not images. */
const DERIVED_CLASS = /^1\.2\.840\.10008\.5\.1\.4\.1\.1\.(66(\.\d+)?|481\.\d+)$/;
/** A file that can be a slice of a volume: pixel data, and not a derived object (SEG, RT) or a report. */
const isImage = (f: ParsedFile) => Boolean(f.ds.elements.x7fe00010) && !DERIVED_CLASS.test(f.sopClassUID) && f.ds.string('x00080060') !== 'SEG';

/** Storage classes that hold no image (skipped in folders). */
const NON_IMAGE_CLASSES = new Set(['1.2.840.10008.1.3.10' /* Media Storage Directory (DICOMDIR) */]);

// dcmjs-codecs (and the dcmjs it loads) take ~0.3 s to load: only series with compressed pixel data need them
const require = createRequire(import.meta.url);
let codecsModule: typeof Codecs | undefined;
const codecsLib = (): typeof Codecs => (codecsModule ??= require('dcmjs-codecs') as typeof Codecs);

let codecsReady: Promise<void> | undefined;
function initCodecs(): Promise<void> {
  codecsReady ??= codecsLib().NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false }).catch((err: unknown) => {
    codecsReady = undefined;
    throw new Error(`${FN}(): the DICOM image codecs (dcmjs-codecs WebAssembly) did not load: ${messageOf(err)}`);
  });
  return codecsReady;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  if (err && typeof err === 'object' && 'exception' in err) return String((err as { exception: unknown }).exception);
  return String(err);
}

function fail(name: string, why: string): Error {
  return new Error(`${FN}(): '${name}' ${why}`);
}

const str = (ds: DataSet, tag: string): string => (ds.elements[tag] ? (ds.string(tag) ?? '').trim() : '');
const num = (ds: DataSet, tag: string): number | undefined => {
  const s = str(ds, tag);
  if (s === '') return undefined;
  const v = Number(s.split('\\')[0]);
  return Number.isFinite(v) ? v : undefined;
};
const nums = (ds: DataSet, tag: string): number[] | undefined => {
  const s = str(ds, tag);
  if (s === '') return undefined;
  const v = s.split('\\').map((x) => Number(x.trim()));
  return v.every(Number.isFinite) ? v : undefined;
};
/** US value, read by VR when known (implicit VR files carry none: dicom-parser then reads as little endian). */
const us = (ds: DataSet, tag: string): number | undefined => (ds.elements[tag] && ds.elements[tag].length >= 2 ? ds.uint16(tag) : undefined);
/** First item of a sequence. */
const item = (ds: DataSet | undefined, tag: string): DataSet | undefined => ds?.elements[tag]?.items?.[0]?.dataSet;

/** One image frame of a parsed file, before its pixels are decoded. */
interface Frame {
  ref: DicomSliceRef;
  file: ParsedFile;
  /** 0-based frame index in the file */
  index: number;
  orientation: number[];
  pixelSpacing: number[];
  sliceThickness?: number;
  spacingBetweenSlices?: number;
  slope: number;
  intercept: number;
}

interface ParsedFile {
  name: string;
  ds: DataSet;
  transferSyntaxUID: string;
  sopClassUID: string;
  seriesInstanceUID: string;
  rows: number;
  columns: number;
  frames: number;
}

const VRS = new Set('AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(' '));
/** VRs whose explicit-VR header is 12 bytes (2 reserved bytes, then a 32-bit length). */
const LONG_VRS = new Set('OB OD OF OL OV OW SQ UC UN UR UT SV UV'.split(' '));
const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/**
 * How a file without the 128-byte preamble and 'DICM' marker starts, when it starts like a raw DICOM data
 * set (as older PACS export them, and as pydicom reads them with force=True): its first element is of group
 * 0002 (a file meta group, explicit VR little endian) or 0008, in implicit or explicit VR little endian,
 * with a length that fits the file. Undefined when it does not look like DICOM.
 */
function rawStart(bytes: Uint8Array): { meta: boolean; explicit: boolean } | undefined {
  if (bytes.length < 8) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const group = view.getUint16(0, true);
  if (group !== 0x0002 && group !== 0x0008) return undefined;
  const vr = String.fromCharCode(bytes[4], bytes[5]);
  const fits = (length: number, header: number) => length === 0xffffffff || header + length <= bytes.length;
  if (VRS.has(vr)) {
    const long = LONG_VRS.has(vr);
    if (long && (bytes.length < 12 || bytes[6] !== 0 || bytes[7] !== 0)) return undefined;
    if (long ? fits(view.getUint32(8, true), 12) : fits(view.getUint16(6, true), 8)) return { meta: group === 0x0002, explicit: true };
    return undefined;
  }
  // the file meta group is always explicit VR; an implicit element has a 32-bit even length
  const length = view.getUint32(4, true);
  if (group === 0x0008 && (length === 0xffffffff || length % 2 === 0) && fits(length, 8)) return { meta: false, explicit: false };
  return undefined;
}

/**
 * The bytes of a raw data set made a Part 10 file for dicom-parser: a zero preamble and 'DICM' before its
 * own meta group, or before a meta group naming its transfer syntax (implicit VR little endian unless the
 * first element is explicit VR).
 */
function asPart10(bytes: Uint8Array, start: { meta: boolean; explicit: boolean }): Uint8Array {
  let meta = new Uint8Array(0);
  if (!start.meta) {
    const uid = Buffer.from(start.explicit ? EXPLICIT_LE : IMPLICIT_LE, 'latin1');
    const value = uid.length % 2 ? Buffer.concat([uid, Buffer.from([0])]) : uid;
    meta = new Uint8Array(8 + value.length);
    meta.set([0x02, 0x00, 0x10, 0x00, 0x55, 0x49, value.length & 0xff, value.length >> 8]); // (0002,0010) UI
    meta.set(value, 8);
  }
  const out = Buffer.alloc(132 + meta.length + bytes.length); // a Buffer, as dicom-parser inflates Buffers
  out.set(Buffer.from('DICM', 'latin1'), 128);
  out.set(meta, 132);
  out.set(bytes, 132 + meta.length);
  return out;
}

/** Parses one file's data set (no pixel decoding); undefined for files to skip in a folder. */
function parseFile(file: DicomFile, inFolder: boolean): ParsedFile | undefined {
  const { name } = file;
  let { bytes } = file;
  if (bytes.length < 132 || Buffer.from(bytes.buffer, bytes.byteOffset + 128, 4).toString('latin1') !== 'DICM') {
    const start = rawStart(bytes);
    if (start) bytes = asPart10(bytes, start);
    else {
      if (inFolder && !/\.(dcm|dicom|ima)$/i.test(name)) return undefined; // README, .json, ... beside the images
      throw fail(name, `is not a DICOM file (no 'DICM' marker at byte 128${bytes.length < 132 ? `; it has ${bytes.length} bytes` : ''})`);
    }
  }
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes);
  } catch (err) {
    const m = messageOf(err);
    throw fail(name, /overrun|past end|greater than or equal/.test(m) ? `is truncated or damaged (${m})` : `is not a readable DICOM file (${m})`);
  }
  const transferSyntaxUID = str(ds, 'x00020010');
  const sopClassUID = str(ds, 'x00080016') || str(ds, 'x00020002');
  if (inFolder && NON_IMAGE_CLASSES.has(sopClassUID)) return undefined;
  if (!NATIVE_SYNTAXES[transferSyntaxUID] && !CODEC_SYNTAXES[transferSyntaxUID]) {
    const known = OTHER_SYNTAXES[transferSyntaxUID];
    throw fail(name, `uses transfer syntax ${transferSyntaxUID || '(none)'}${known ? ` (${known})` : ''}, which semiseg cannot decode; it reads ${supportedSyntaxesText()}`);
  }
  const seriesInstanceUID = str(ds, 'x0020000e');
  if (!seriesInstanceUID) throw fail(name, 'has no SeriesInstanceUID (0020,000E)');
  const frames = num(ds, 'x00280008') ?? 1;
  return { name, ds, transferSyntaxUID, sopClassUID, seriesInstanceUID, rows: us(ds, 'x00280010') ?? 0, columns: us(ds, 'x00280011') ?? 0, frames };
}

function supportedSyntaxesText(): string {
  return `uncompressed (implicit / explicit VR little endian, deflated, big endian), RLE, JPEG (baseline, extended, lossless), JPEG-LS, JPEG 2000, HTJ2K and JPEG XL`;
}

/** The image frames of a file with their geometry (single-frame attributes or enhanced functional groups). */
function framesOf(f: ParsedFile): Frame[] {
  const { ds, name } = f;
  if (!ds.elements.x7fe00010) {
    if (ds.elements.x7fe00008 || ds.elements.x7fe00009) throw fail(name, 'holds float pixel data (7FE0,0008/0009), which semiseg does not read');
    throw fail(name, 'has no pixel data (7FE0,0010)');
  }
  if (!f.rows || !f.columns) throw fail(name, 'has no Rows / Columns (0028,0010 / 0028,0011)');
  const samples = us(ds, 'x00280002') ?? 1;
  if (samples !== 1) throw fail(name, `has ${samples} samples per pixel (${str(ds, 'x00280004') || 'colour'}); semiseg reads grey-level images`);
  const sopInstanceUID = str(ds, 'x00080018') || str(ds, 'x00020003');
  if (!sopInstanceUID) throw fail(name, 'has no SOPInstanceUID (0008,0018)');
  const shared = item(ds, 'x52009229');
  const perFrame = ds.elements.x52009230?.items;
  const out: Frame[] = [];
  for (let n = 0; n < f.frames; n++) {
    const fg = perFrame?.[n]?.dataSet;
    // enhanced multi-frame: per-frame group, then shared group, then the top level
    const pick = <T>(seq: string, read: (d: DataSet) => T | undefined): T | undefined => {
      for (const d of [item(fg, seq), item(shared, seq)]) {
        const v = d ? read(d) : undefined;
        if (v !== undefined) return v;
      }
      return read(ds);
    };
    const where = f.frames > 1 ? ` (frame ${n + 1})` : '';
    const position = pick('x00209113', (d) => nums(d, 'x00200032'));
    const orientation = pick('x00209116', (d) => nums(d, 'x00200037'));
    const pixelSpacing = pick('x00289110', (d) => nums(d, 'x00280030')) ?? nums(ds, 'x00181164'); // ImagerPixelSpacing for projection images
    if (!position || position.length !== 3) throw fail(name, `has no valid ImagePositionPatient (0020,0032)${where}: it cannot be placed in a volume`);
    if (!orientation || orientation.length !== 6) throw fail(name, `has no valid ImageOrientationPatient (0020,0037)${where}: it cannot be placed in a volume`);
    if (!pixelSpacing || pixelSpacing.length !== 2 || pixelSpacing.some((s) => !(s > 0))) throw fail(name, `has no valid PixelSpacing (0028,0030)${where}`);
    out.push({
      ref: { sopClassUID: f.sopClassUID, sopInstanceUID, ...(f.frames > 1 ? { frameNumber: n + 1 } : {}), position, source: name },
      file: f,
      index: n,
      orientation,
      pixelSpacing,
      sliceThickness: pick('x00289110', (d) => num(d, 'x00180050')),
      spacingBetweenSlices: pick('x00289110', (d) => num(d, 'x00180088')),
      slope: pick('x00289145', (d) => num(d, 'x00281053')) ?? 1,
      intercept: pick('x00289145', (d) => num(d, 'x00281052')) ?? 0,
    });
  }
  return out;
}

const cross = (a: number[], b: number[]) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const fmt = (v: number[]) => `[${v.map((x) => +x.toFixed(4)).join(', ')}]`;

/** Decodes frame `index` of a file into its rescaled values (rows x columns, row-major). */
function decodeFrame(frame: Frame): Float32Array {
  const { file: f, index } = frame;
  const { ds, name, rows, columns } = f;
  const bitsAllocated = us(ds, 'x00280100') ?? 16;
  const bitsStored = us(ds, 'x00280101') ?? bitsAllocated;
  const signed = (us(ds, 'x00280103') ?? 0) === 1;
  if (![8, 16, 32].includes(bitsAllocated)) throw fail(name, `has BitsAllocated ${bitsAllocated}; semiseg reads 8, 16 or 32-bit images`);
  const bytesPer = bitsAllocated / 8;
  const count = rows * columns;
  const el = ds.elements.x7fe00010;
  let raw: Uint8Array;
  let littleEndian = f.transferSyntaxUID !== '1.2.840.10008.1.2.2';
  const codec = CODEC_SYNTAXES[f.transferSyntaxUID];
  if (codec) {
    littleEndian = true;
    const encoded = encapsulatedFrame(ds, el, index, f);
    const codecs = codecsLib();
    const ctx = new codecs.Context({
      width: columns,
      height: rows,
      bitsAllocated,
      bitsStored,
      samplesPerPixel: 1,
      pixelRepresentation: signed ? 1 : 0,
      planarConfiguration: 0,
      photometricInterpretation: str(ds, 'x00280004') || 'MONOCHROME2',
      encodedBuffer: encoded,
    });
    try {
      raw = codecs.NativeCodecs[codec[1]](ctx).getDecodedBuffer() ?? new Uint8Array(0);
    } catch (err) {
      throw fail(name, `has ${codec[0]} pixel data that does not decode${f.frames > 1 ? ` (frame ${index + 1})` : ''}: ${messageOf(err)}`);
    }
    if (raw.length < count * bytesPer)
      throw fail(name, `decodes to ${raw.length} bytes of pixel data where ${count * bytesPer} are needed (${rows} x ${columns} x ${bitsAllocated} bits)`);
  } else {
    if (el.encapsulatedPixelData) throw fail(name, 'has encapsulated pixel data under an uncompressed transfer syntax');
    const need = count * bytesPer * f.frames;
    if (el.length < need) throw fail(name, `holds ${el.length} bytes of pixel data where ${need} are needed (${f.frames} x ${rows} x ${columns} x ${bitsAllocated} bits; truncated?)`);
    raw = ds.byteArray.subarray(el.dataOffset + index * count * bytesPer, el.dataOffset + (index + 1) * count * bytesPer);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, count * bytesPer);
  const out = new Float32Array(count);
  const shift = 32 - bitsStored;
  const mask = bitsStored >= 32 ? 0xffffffff : 2 ** bitsStored - 1;
  const { slope, intercept } = frame;
  const rescale = slope !== 1 || intercept !== 0;
  for (let p = 0; p < count; p++) {
    let v: number;
    if (bytesPer === 1) v = view.getUint8(p);
    else if (bytesPer === 2) v = view.getUint16(2 * p, littleEndian);
    else v = view.getUint32(4 * p, littleEndian);
    // bits above BitsStored are not part of the value; signed values are two's complement in BitsStored bits
    if (signed) v = bitsStored >= 32 ? v | 0 : (v << shift) >> shift;
    else if (bitsStored < 32) v = (v & mask) >>> 0;
    out[p] = rescale ? v * slope + intercept : v;
  }
  return out;
}

/** The compressed bytes of frame `index` (0-based) of an encapsulated pixel data element. */
function encapsulatedFrame(ds: DataSet, el: Element, index: number, f: ParsedFile): Uint8Array {
  if (!el.encapsulatedPixelData || !el.fragments?.length) throw fail(f.name, `declares a compressed transfer syntax (${f.transferSyntaxUID}) but its pixel data is not encapsulated`);
  try {
    if (el.basicOffsetTable?.length) return dicomParser.readEncapsulatedImageFrame(ds, el, index);
    if (f.frames === 1) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, el.fragments.length);
    if (el.fragments.length === f.frames) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, index, 1);
    if (CODEC_SYNTAXES[f.transferSyntaxUID][1] === 'decodeJpeg')
      return dicomParser.readEncapsulatedImageFrame(ds, el, index, dicomParser.createJPEGBasicOffsetTable(ds, el));
  } catch (err) {
    throw fail(f.name, `has damaged encapsulated pixel data (frame ${index + 1}): ${messageOf(err)}`);
  }
  throw fail(f.name, `has ${f.frames} frames in ${el.fragments.length} fragments and no offset table: the frames cannot be told apart`);
}

function seriesInfo(files: ParsedFile[]): DicomSeriesInfo[] {
  const by = new Map<string, ParsedFile[]>();
  for (const f of files) by.set(f.seriesInstanceUID, [...(by.get(f.seriesInstanceUID) ?? []), f]);
  return [...by.entries()].map(([uid, fs]) => {
    const seriesNumber = num(fs[0].ds, 'x00200011');
    return {
      seriesInstanceUID: uid,
      modality: str(fs[0].ds, 'x00080060'),
      seriesDescription: str(fs[0].ds, 'x0008103e'),
      ...(seriesNumber !== undefined ? { seriesNumber } : {}),
      files: fs.length,
      frames: fs.reduce((a, x) => a + x.frames, 0),
    };
  });
}

function describeSeries(s: DicomSeriesInfo): string {
  return `${s.seriesInstanceUID} (${[s.modality, s.seriesNumber !== undefined ? `#${s.seriesNumber}` : '', s.seriesDescription ? `'${s.seriesDescription}'` : ''].filter(Boolean).join(' ')}, ${s.files} file${s.files === 1 ? '' : 's'})`;
}

async function filesOfFolder(folder: string): Promise<DicomFile[]> {
  const out: DicomFile[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory() && depth < 8) await walk(p, depth + 1);
      else if (e.isFile()) out.push({ name: p, bytes: await readFile(p) });
    }
  };
  await walk(folder, 0);
  return out;
}

async function gather(input: string | string[], fn: string): Promise<{ files: DicomFile[]; folder: boolean; label: string }> {
  if (Array.isArray(input)) {
    const files: DicomFile[] = [];
    for (const p of input) {
      try {
        files.push({ name: p, bytes: await readFile(p) });
      } catch (err) {
        throw new Error(`${fn}(): '${p}' cannot be read: ${(err as Error).message}`);
      }
    }
    return { files, folder: false, label: `${input.length} files` };
  }
  if (typeof input !== 'string' || input === '') throw new TypeError(`${fn}(): argument 'input' must be a folder, a file or a list of files, got ${typeof input}`);
  let st;
  try {
    st = await stat(input);
  } catch (err) {
    throw new Error(`${fn}(): '${input}' cannot be read: ${(err as Error).message}`);
  }
  if (st.isDirectory()) return { files: await filesOfFolder(input), folder: true, label: input };
  return { files: [{ name: input, bytes: await readFile(input) }], folder: false, label: input };
}

function parseAll(files: DicomFile[], folder: boolean, label: string): ParsedFile[] {
  const parsed = files.map((f) => parseFile(f, folder)).filter((f): f is ParsedFile => f !== undefined);
  if (parsed.length === 0) throw new Error(`${FN}(): '${label}' holds no DICOM files${files.length ? ` (${files.length} other files)` : ''}`);
  return parsed;
}

/** The series in a folder (or a list of files), without decoding any pixels. */
export async function listDicomSeries(input: string | string[]): Promise<DicomSeriesInfo[]> {
  const { files, folder, label } = await gather(input, 'listDicomSeries');
  return seriesInfo(parseAll(files, folder, label));
}

/**
 * Reads a DICOM series into a volume: a folder (searched recursively; files that are not DICOM, with
 * neither the DICM marker nor a raw data set's first element, and not named *.dcm are skipped), one
 * multi-frame file, or a list of files. See the module comment for the
 * axis order, spacing and affine. Several series in the input need `options.seriesInstanceUID`; the error
 * lists them. Every problem (damaged file, mixed sizes, uneven spacing, unsupported compression, ...) is
 * an Error with a one-line message naming the file.
 */
export async function readDicomSeries(input: string | string[], options: DicomReadOptions = {}): Promise<DicomImage> {
  const o = checkOptions(FN, options);
  const { files, folder, label } = await gather(input, FN);
  return buildSeries(parseAll(files, folder, label), label, o);
}

/** {@link readDicomSeries} for files held in memory (an upload, the members of a zip). */
export async function parseDicomSeries(files: DicomFile[], options: DicomReadOptions = {}): Promise<DicomImage> {
  if (!Array.isArray(files) || files.some((f) => typeof f?.name !== 'string' || !(f.bytes instanceof Uint8Array)))
    throw typeError('parseDicomSeries', 'files', 'an array of { name: string, bytes: Uint8Array }', files);
  const o = checkOptions('parseDicomSeries', options);
  return buildSeries(parseAll(files, true, `${files.length} uploaded files`), `${files.length} uploaded files`, o);
}

function checkOptions(fn: string, options: unknown): DicomReadOptions {
  const o = checkObject(fn, 'options', options);
  checkKnownKeys(fn, 'options', o, ['seriesInstanceUID', 'positionTolerance', 'onProgress']);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw typeError(fn, 'options.onProgress', 'a function', o.onProgress);
  if (o.seriesInstanceUID !== undefined && (typeof o.seriesInstanceUID !== 'string' || o.seriesInstanceUID === ''))
    throw typeError(fn, 'options.seriesInstanceUID', 'a non-empty string', o.seriesInstanceUID);
  if (o.positionTolerance !== undefined && !(typeof o.positionTolerance === 'number' && o.positionTolerance > 0 && Number.isFinite(o.positionTolerance)))
    throw rangeError(fn, 'options.positionTolerance', 'a number > 0 (millimetres)', o.positionTolerance);
  return o as DicomReadOptions;
}

async function buildSeries(parsed: ParsedFile[], label: string, options: DicomReadOptions): Promise<DicomImage> {
  const series = seriesInfo(parsed);
  let chosen: ParsedFile[];
  if (options.seriesInstanceUID !== undefined) {
    chosen = parsed.filter((f) => f.seriesInstanceUID === options.seriesInstanceUID);
    if (chosen.length === 0) throw new Error(`${FN}(): '${label}' has no series ${options.seriesInstanceUID}; it holds ${series.map(describeSeries).join('; ')}`);
  } else if (series.length > 1) {
    // derived objects beside the images (a SEG written into the series folder, structured reports,
    // presentation states) are not candidates when exactly one image series remains
    const images = series.filter((s) => parsed.some((f) => f.seriesInstanceUID === s.seriesInstanceUID && isImage(f)));
    if (images.length !== 1)
      throw new Error(`${FN}(): '${label}' holds ${series.length} series; choose one by SeriesInstanceUID: ${series.map(describeSeries).join('; ')}`);
    chosen = parsed.filter((f) => f.seriesInstanceUID === images[0].seriesInstanceUID);
  } else chosen = parsed;

  const frames = chosen.flatMap(framesOf);
  const first = frames[0];
  const { rows, columns } = first.file;
  for (const fr of frames) {
    const f = fr.file;
    if (f.rows !== rows || f.columns !== columns)
      throw new Error(`${FN}(): slices differ in size: '${first.file.name}' is ${rows} x ${columns} but '${f.name}' is ${f.rows} x ${f.columns} (rows x columns)`);
    if (fr.orientation.some((x, n) => Math.abs(x - first.orientation[n]) > 1e-4))
      throw new Error(`${FN}(): inconsistent orientation between slices: '${first.ref.source}' has ImageOrientationPatient ${fmt(first.orientation)} but '${fr.ref.source}' ${fmt(fr.orientation)}`);
    if (fr.pixelSpacing.some((x, n) => Math.abs(x - first.pixelSpacing[n]) > 1e-3 * first.pixelSpacing[n]))
      throw new Error(`${FN}(): inconsistent pixel spacing between slices: '${first.ref.source}' has PixelSpacing ${fmt(first.pixelSpacing)} but '${fr.ref.source}' ${fmt(fr.pixelSpacing)}`);
  }
  const rowCos = first.orientation.slice(0, 3);
  const colCos = first.orientation.slice(3, 6);
  const normal = cross(rowCos, colCos);
  if (Math.abs(Math.hypot(...normal) - 1) > 1e-3 || Math.abs(dot(rowCos, colCos)) > 1e-3)
    throw fail(first.ref.source, `has an ImageOrientationPatient ${fmt(first.orientation)} whose cosines are not orthonormal`);
  const where = frames.map((fr) => dot(fr.ref.position, normal));
  const order = frames.map((_, n) => n).sort((a, b) => where[a] - where[b]);
  const sorted = order.map((n) => frames[n]);
  const K = sorted.length;
  for (let k = 1; k < K; k++) {
    if (Math.abs(where[order[k]] - where[order[k - 1]]) < 1e-4) {
      const [a, b] = [sorted[k - 1].ref, sorted[k].ref];
      throw new Error(
        `${FN}(): two slices at the same position ${fmt(a.position)}: '${a.source}'${a.frameNumber ? ` frame ${a.frameNumber}` : ''} and '${b.source}'${b.frameNumber ? ` frame ${b.frameNumber}` : ''} (several echoes, phases or acquisitions in one series?)`,
      );
    }
  }
  const p0 = sorted[0].ref.position;
  let step: number[];
  if (K > 1) step = sorted[K - 1].ref.position.map((x, n) => (x - p0[n]) / (K - 1));
  else step = normal.map((x) => x * (first.spacingBetweenSlices ?? first.sliceThickness ?? 1));
  const gap = Math.hypot(...step);
  const tol = options.positionTolerance ?? Math.max(0.01, 0.01 * gap);
  const name = (fr: Frame) => `'${fr.ref.source}'${fr.ref.frameNumber ? ` frame ${fr.ref.frameNumber}` : ''}`;
  if (K > 2) {
    const gaps = sorted.slice(1).map((_, m) => where[order[m + 1]] - where[order[m]]);
    const median = [...gaps].sort((a, b) => a - b)[gaps.length >> 1];
    let worst = 0;
    gaps.forEach((g, m) => {
      if (Math.abs(g - median) > Math.abs(gaps[worst] - median)) worst = m;
    });
    if (Math.abs(gaps[worst] - median) > tol)
      throw new Error(
        `${FN}(): inconsistent slice spacing: ${name(sorted[worst])} and ${name(sorted[worst + 1])} are ${gaps[worst].toFixed(3)} mm apart where the other slices are ${median.toFixed(3)} mm (gaps range from ${Math.min(...gaps).toFixed(3)} to ${Math.max(...gaps).toFixed(3)} mm; missing slices?)`,
      );
  }
  for (let k = 1; k < K - 1; k++) {
    const expected = p0.map((x, n) => x + k * step[n]);
    const off = Math.hypot(...sorted[k].ref.position.map((x, n) => x - expected[n]));
    if (off > tol)
      throw new Error(`${FN}(): slice positions do not lie on one line: ${name(sorted[k])} is ${off.toFixed(3)} mm off the line through the first and last slices`);
  }

  await (sorted.some((fr) => CODEC_SYNTAXES[fr.file.transferSyntaxUID]) ? initCodecs() : Promise.resolve());
  // [K, R, C] as stored, then nibabel's order [C, R, K] = [i, j, k]
  const plane = rows * columns;
  const values = new Float32Array(K * plane);
  sorted.forEach((fr, k) => {
    values.set(decodeFrame(fr), k * plane);
    options.onProgress?.(k + 1, K);
  });
  const data = tidy(() => tensor(values, { shape: [K, rows, columns] }).permute([2, 1, 0]).contiguous());

  const [rowSpacing, colSpacing] = first.pixelSpacing;
  const lps = [0, 1, 2].map((r) => [rowCos[r] * colSpacing, colCos[r] * rowSpacing, step[r], p0[r]]);
  const affine = [...lps.map((row, r) => (r < 2 ? row.map((x) => (x === 0 ? 0 : -x)) : row)), [0, 0, 0, 1]];
  const ds = first.file.ds;
  const patientStudy: Record<string, string> = {};
  const utf8 = /ISO_IR 192/.test(str(ds, 'x00080005'));
  for (const [kw, tag] of PATIENT_STUDY) {
    const v = str(ds, tag); // dicom-parser gives bytes as Latin-1 characters: right for ASCII and ISO_IR 100
    if (v) patientStudy[kw] = utf8 ? Buffer.from(v, 'latin1').toString('utf8') : v;
  }
  const seriesNumber = num(ds, 'x00200011');
  return {
    data,
    spacing: [colSpacing, rowSpacing, gap],
    affine,
    dicom: {
      studyInstanceUID: str(ds, 'x0020000d'),
      seriesInstanceUID: first.file.seriesInstanceUID,
      frameOfReferenceUID: str(ds, 'x00200052'),
      modality: str(ds, 'x00080060'),
      seriesDescription: str(ds, 'x0008103e'),
      ...(seriesNumber !== undefined ? { seriesNumber } : {}),
      rows,
      columns,
      imageOrientationPatient: first.orientation,
      pixelSpacing: first.pixelSpacing,
      ...(first.sliceThickness !== undefined ? { sliceThickness: first.sliceThickness } : {}),
      slices: sorted.map((fr) => fr.ref),
      patientStudy,
      transferSyntaxUID: first.file.transferSyntaxUID,
    },
  };
}

/** Patient / study attributes a derived object (SEG) copies from its source. */
const PATIENT_STUDY: Array<[string, string]> = [
  ['PatientName', 'x00100010'],
  ['PatientID', 'x00100020'],
  ['PatientBirthDate', 'x00100030'],
  ['PatientSex', 'x00100040'],
  ['StudyDate', 'x00080020'],
  ['StudyTime', 'x00080030'],
  ['StudyID', 'x00200010'],
  ['AccessionNumber', 'x00080050'],
  ['ReferringPhysicianName', 'x00080090'],
  ['StudyDescription', 'x00081030'],
];

