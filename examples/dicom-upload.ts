/**
 * The DICOM side of the example service: the files of an upload (a zip archive, a multipart/form-data body
 * of .dcm files or archives, or one DICOM file), and which answer the request's Accept header asks for.
 */
import busboy from 'busboy';
import { unzipSync } from 'fflate';

import type { DicomFile } from '../lib/index.js';

/** An upload the service refuses: `status` is the HTTP status (400, 413, 406). */
export class UploadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const isZip = (b: Uint8Array) => b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && (b[2] === 3 || b[2] === 5) && (b[3] === 4 || b[3] === 6);
const isDicom = (b: Uint8Array) => b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d;

/** Tracks the bytes an upload expands to, refusing (413) past `limit`. */
class Budget {
  private used = 0;
  constructor(private readonly limit: number) {}
  take(bytes: number, what: string): void {
    this.used += bytes;
    if (this.used > this.limit) throw new UploadError(413, `${what} expands past the limit of ${this.limit} bytes`);
  }
}

/** The members of a zip archive (folders, hidden files and macOS resource forks left out). */
function unzip(bytes: Uint8Array, name: string, budget: Budget): DicomFile[] {
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(bytes, {
      // sizes come from the archive's directory; fflate never writes more than the declared size
      filter: (f) => {
        const keep = !f.name.endsWith('/') && !/(^|\/)(__MACOSX\/|\.)/.test(f.name);
        if (keep) budget.take(f.originalSize, `the zip archive '${name}'`);
        return keep;
      },
    });
  } catch (err) {
    if (err instanceof UploadError) throw err;
    throw new UploadError(400, `'${name}' is not a readable zip archive (${(err as Error).message})`);
  }
  const files = Object.entries(members).map(([n, b]) => ({ name: n, bytes: b }));
  if (files.length === 0) throw new UploadError(400, `the zip archive '${name}' holds no files`);
  return files;
}

/** The files of a multipart/form-data body (every file part; fields are ignored). */
function multipart(body: Buffer, contentType: string, budget: Budget): Promise<Array<{ name: string; bytes: Buffer }>> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: { 'content-type': contentType }, limits: { files: 100_000, parts: 100_000 } });
    } catch (err) {
      reject(new UploadError(400, `multipart body: ${(err as Error).message}`));
      return;
    }
    const files: Array<{ name: string; bytes: Buffer }> = [];
    let failed: Error | undefined;
    parser.on('file', (_field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => {
        try {
          budget.take(c.length, 'the multipart body');
          chunks.push(c);
        } catch (err) {
          failed ??= err as Error;
          stream.resume();
        }
      });
      stream.on('end', () => files.push({ name: info.filename || `part-${files.length + 1}`, bytes: Buffer.concat(chunks) }));
    });
    parser.on('error', (err: Error) => reject(new UploadError(400, `multipart body: ${err.message}`)));
    parser.on('close', () => (failed ? reject(failed) : resolve(files)));
    parser.end(body);
  });
}

/**
 * The DICOM files of an upload, or null when the body is not DICOM (then it is a NIfTI image): a zip
 * archive (application/zip, or a body starting with a zip signature), a multipart/form-data body whose
 * file parts are DICOM files or zip archives, or a single DICOM file (application/dicom, or the DICM
 * marker at byte 128). What archives expand to is limited to `maxExpandedBytes` (413 past it).
 */
export async function dicomFilesOf(body: Buffer, contentType: string | undefined, maxExpandedBytes: number): Promise<DicomFile[] | null> {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const budget = new Budget(maxExpandedBytes);
  if (type === 'multipart/form-data') {
    const parts = await multipart(body, contentType!, budget);
    if (parts.length === 0) throw new UploadError(400, 'the multipart body holds no file parts: send the .dcm files (or a .zip of them) as files');
    return parts.flatMap((p) => (isZip(p.bytes) ? unzip(p.bytes, p.name, budget) : [p]));
  }
  if (type.startsWith('multipart/')) throw new UploadError(400, `${type} bodies are not read here: send multipart/form-data, a zip archive, or one file`);
  if (type === 'application/zip' || type === 'application/x-zip-compressed' || isZip(body)) return unzip(body, 'upload', budget);
  if (type === 'application/dicom' || isDicom(body)) return [{ name: 'upload.dcm', bytes: body }];
  return null;
}

/** What the service answers with. */
export type Reply = 'seg' | 'nifti';

const SEG_TYPES = ['application/dicom'];
const NIFTI_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-nifti', 'application/nifti', 'application/octet-stream'];

/**
 * The answer an Accept header asks for (q-values honoured): a DICOM SEG (application/dicom) or a gzipped
 * NIfTI label map (application/gzip); no header or a wildcard gives a SEG for a DICOM upload and a NIfTI
 * otherwise. A SEG for a NIfTI upload, or no acceptable type, is a 406.
 */
export function chooseReply(accept: string | undefined, dicomUpload: boolean): Reply {
  const fallback: Reply = dicomUpload ? 'seg' : 'nifti';
  if (!accept || !accept.trim()) return fallback;
  const ranges = accept
    .split(',')
    .map((part, order) => {
      const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
      const q = params.map((p) => /^q=([0-9.]+)$/.exec(p)).find(Boolean);
      return { type, q: q ? Number(q[1]) : 1, order };
    })
    .filter((r) => r.type && r.q > 0)
    .sort((a, b) => b.q - a.q || a.order - b.order);
  for (const r of ranges) {
    if (r.type === '*/*' || r.type === 'application/*') return fallback;
    if (SEG_TYPES.includes(r.type)) {
      if (dicomUpload) return 'seg';
      continue;
    }
    if (NIFTI_TYPES.includes(r.type)) return 'nifti';
  }
  const wantsSeg = ranges.some((r) => SEG_TYPES.includes(r.type));
  throw new UploadError(
    406,
    wantsSeg && !dicomUpload
      ? 'a DICOM SEG answer references the source images: upload a DICOM series (zip or multipart of .dcm files) for Accept: application/dicom'
      : `Accept '${accept}' names nothing this service answers: application/dicom (a DICOM SEG, for DICOM uploads) or application/gzip (a NIfTI label map)`,
  );
}
