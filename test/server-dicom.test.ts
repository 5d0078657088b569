// examples/inference-server.ts with DICOM: a series posted as a zip or a multipart/form-data body gets a DICOM
// SEG (or a NIfTI, by Accept) holding the library's label map; damaged files, mixed series, missing pixel
// data, uneven spacing or orientation and unsupported transfer syntaxes get a one-line 400 naming the file,
// archives that expand past the limit a 413, unanswerable Accept headers a 406, and the service lives on.
// Serial: liveTensors() is process-wide.
import test from 'ava';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { zipSync } from 'fflate';

import { startInferenceServer, type InferenceServer } from '../examples/inference-server.js';
import { decodeDicomSeg, dispose, liveTensors, listDicomSeries, manualSeed, nets, parseNifti, readDicomSeries, saveCheckpoint, Segmenter, setNumThreads, type Tensor } from '../lib/index.js';
import { copySeries, dicomDir, editDicom, SERIES } from './helpers/dicom.js';
import { errorOf, post } from './helpers/http.js';
import { niftiImageBytes } from './helpers/nifti.js';

setNumThreads(1);
let dir = '';
let checkpoint = '';
let svc: InferenceServer;
let base = '';

const send = (path: string, body: Buffer, headers: Record<string, string> = {}) => post(`${base}${path}`, body, headers);
const values = (t: Tensor) => Array.from(t.toArray() as BigInt64Array, Number);

function zipOf(folder: string, extra: Record<string, Uint8Array> = {}): Buffer {
  const files: Record<string, Uint8Array> = { ...extra };
  for (const n of readdirSync(folder)) files[`series/${n}`] = readFileSync(join(folder, n));
  return Buffer.from(zipSync(files));
}

function multipartOf(folder: string): { body: Buffer; type: string } {
  const boundary = '----semiseg-test-boundary';
  const parts: Buffer[] = [Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="patient"\r\n\r\nignored field\r\n`)];
  for (const n of readdirSync(folder)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${n}"\r\nContent-Type: application/dicom\r\n\r\n`));
    parts.push(readFileSync(join(folder, n)), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-server-dicom-'));
  checkpoint = join(dir, 'model.ckpt');
  manualSeed(5);
  const net = nets.UNet2D({ inChannels: 1, outChannels: 3, features: [4, 8, 16, 32, 64] });
  await saveCheckpoint(checkpoint, { network: net, iteration: 0, extra: { config: { size: [32, 32], classes: 3, method: 'supervised' } } });
  net.dispose();
  svc = await startInferenceServer({ checkpoint, concurrency: 1, maxQueue: 2, maxBodyBytes: 2 * 1024 * 1024, maxExpandedBytes: 4 * 1024 * 1024, timeoutMs: 20_000, segmentNames: ['Anterior', 'Posterior'] });
  base = `http://127.0.0.1:${(svc.server.address() as AddressInfo).port}`;
});

test.after.always(async () => {
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.serial('a DICOM series as a zip or a multipart body gets a SEG of the library label map; Accept: application/gzip a NIfTI', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data');
  const folder = join(dicomDir, SERIES[1]);
  const img = await readDicomSeries(folder);
  const seg = await Segmenter.load(checkpoint, { precision: 'auto' });
  const expected = await seg.segmentImage(img);
  seg.dispose();

  const zip = await send('/segment', zipOf(folder, { 'README.txt': Buffer.from('not an image') }), { 'content-type': 'application/zip' });
  t.is(zip.status, 200, zip.body.toString().slice(0, 300));
  t.is(zip.headers['content-type'], 'application/dicom');
  t.is(zip.headers['x-semiseg-shape'], img.data.shape.join('x'));
  const fromZip = decodeDicomSeg(zip.body, img, 'reply');
  t.deepEqual(values(fromZip.labels), values(expected));
  t.deepEqual(fromZip.segments.map((s) => s.label), ['Anterior', 'Posterior']);

  const mp = multipartOf(folder);
  const multi = await send('/segment', mp.body, { 'content-type': mp.type, accept: 'application/dicom' });
  t.is(multi.status, 200, multi.body.toString().slice(0, 300));
  const fromMultipart = decodeDicomSeg(multi.body, img, 'reply');
  t.deepEqual(values(fromMultipart.labels), values(expected));

  // no content-type: the zip signature is enough; NIfTI asked for by Accept (q-values honoured)
  const nifti = await send('/segment', zipOf(folder), { accept: 'application/dicom;q=0.5, application/gzip' });
  t.is(nifti.status, 200);
  t.is(nifti.headers['content-type'], 'application/gzip');
  const labels = parseNifti(nifti.body, 'reply');
  t.deepEqual(labels.data.shape, img.data.shape);
  t.deepEqual(values(labels.data), values(expected));
  t.true(labels.affine.every((row, i) => row.every((x, j) => Math.abs(x - img.affine[i][j]) < 1e-5)));
  dispose([img.data, expected, fromZip.labels, fromMultipart.labels, labels.data]);
});

test.serial('bad DICOM uploads get a one-line 4xx naming what is wrong, and the service lives on', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data');
  const src = join(dicomDir, SERIES[0]);
  let n = 0;
  const caseZip = (edit: (folder: string) => void): Buffer => {
    const d = join(dir, `bad-${n++}`);
    copySeries(src, d);
    edit(d);
    return zipOf(d);
  };
  // two series in one upload: the hippocampus crops of studies 1 and 2
  const [hippo] = await listDicomSeries(join(dicomDir, SERIES[1]));
  const mixed = (() => {
    const files: Record<string, Uint8Array> = {};
    for (const s of [SERIES[0], SERIES[1]]) for (const f of readdirSync(join(dicomDir!, s))) files[`${s}/${f}`] = readFileSync(join(dicomDir!, s, f));
    return Buffer.from(zipSync(files));
  })();
  const cases: Array<[string, Buffer, Record<string, string>, number, RegExp, string?]> = [
    ['corrupt file', caseZip((d) => writeFileSync(join(d, '7.dcm'), readFileSync(join(d, '7.dcm')).subarray(0, 1500))), {}, 400, /^'series\/7\.dcm' is truncated or damaged/],
    ['mixed series', mixed, {}, 400, /holds 2 series; choose one with \?series=<uid>: .*'HippoCrop', 32 files\).*'HippoCrop', 35 files\)$/],
    ['missing pixel data', caseZip((d) => editDicom(join(d, '5.dcm'), (_m, ds) => delete ds.PixelData)), {}, 400, /^'series\/5\.dcm' has no pixel data \(7FE0,0010\)$/],
    ['inconsistent spacing', caseZip((d) => unlinkSync(join(d, '12.dcm'))), {}, 400, /^inconsistent slice spacing: 'series\/11\.dcm' and 'series\/13\.dcm' are 2\.000 mm apart where the other slices are 1\.000 mm/],
    ['inconsistent orientation', caseZip((d) => editDicom(join(d, '9.dcm'), (_m, ds) => (ds.ImageOrientationPatient = [0.995, 0.0998749, 0, 0, 1, 0]))), {}, 400, /^inconsistent orientation between slices: .*'series\/9\.dcm'/],
    ['unsupported transfer syntax', caseZip((d) => editDicom(join(d, '2.dcm'), (m) => (m.TransferSyntaxUID = '1.2.840.10008.1.2.4.102'))), {}, 400, /^'series\/2\.dcm' uses transfer syntax 1\.2\.840\.10008\.1\.2\.4\.102 \(MPEG-4 AVC\/H\.264 High Profile\), which semiseg cannot decode/],
    ['not a zip', Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(200, 9)]), {}, 400, /^'upload' is not a readable zip archive/],
    ['empty zip', Buffer.from(zipSync({})), {}, 400, /holds no files/],
    ['no DICOM in the zip', Buffer.from(zipSync({ 'a.txt': Buffer.from('hello') })), {}, 400, /holds no DICOM files \(1 other files\)/],
    ['expands past the limit', Buffer.from(zipSync({ 'big.dcm': new Uint8Array(5 * 1024 * 1024) })), {}, 413, /the zip archive 'upload' expands past the limit of 4194304 bytes/],
    ['empty multipart', Buffer.from('------b--\r\n'), { 'content-type': 'multipart/form-data; boundary=----b' }, 400, /holds no file parts/],
    ['multipart/related', Buffer.from('x'), { 'content-type': 'multipart/related; boundary=x' }, 400, /multipart\/related bodies are not read here/],
    ['NIfTI for a SEG', niftiImageBytes([8, 8, 4], new Float32Array(256)), { accept: 'application/dicom' }, 406, /a DICOM SEG answer references the source images/],
    ['unanswerable Accept', zipOf(src), { accept: 'text/html' }, 406, /Accept 'text\/html' names nothing this service answers/],
    ['unknown series', zipOf(src), {}, 400, /has no series 1\.2\.3; it holds /, '?series=1.2.3'],
  ];
  for (const [what, body, headers, status, message, query] of cases) {
    const r = await send(`/segment${query ?? ''}`, body, headers);
    t.is(r.status, status, `${what}: ${r.body.toString().slice(0, 200)}`);
    t.regex(errorOf(r), message, what);
    t.false(errorOf(r).includes('\n'), `${what}: one line`);
  }
  // the series named in the query is read out of several
  const chosen = await send(`/segment?series=${hippo.seriesInstanceUID}`, mixed);
  t.is(chosen.status, 200, chosen.body.toString().slice(0, 200));
  // and the service still answers, with nothing left behind
  const live = liveTensors();
  t.is((await send('/segment', zipOf(src))).status, 200);
  t.is(liveTensors(), live);
});
