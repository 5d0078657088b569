/**
 * A small segmentation service on node:http: it loads a checkpoint once and answers `POST /segment` with a
 * NIfTI body (.nii or .nii.gz) or a DICOM series (a zip archive or a multipart/form-data body of .dcm
 * files, or one multi-frame .dcm) by returning the label map on the input's grid: a DICOM SEG referencing
 * the series (application/dicom) or a NIfTI (.nii.gz, application/gzip), as the Accept header asks (by
 * default a SEG for DICOM input, a NIfTI for NIfTI input). `?series=<uid>` picks one series of several.
 *
 *   node dist/examples/inference-server.js --checkpoint runs/bcp-acdc/best.ckpt [--port 8080]
 *   curl --data-binary @patient001_frame01.nii.gz http://localhost:8080/segment -o labels.nii.gz
 *   curl -H 'content-type: application/zip' --data-binary @series.zip http://localhost:8080/segment -o seg.dcm
 *   curl -F f1=@1.dcm -F f2=@2.dcm ... http://localhost:8080/segment -o seg.dcm
 *
 * Guards: a bounded queue of jobs (503 with Retry-After when full), a body size limit (413, and a limit on
 * what gzipped NIfTI uploads and archives expand to), a limit on the voxels an image may have on the
 * model's grid (413; `maxVoxels`), a per-request timeout (408 while uploading, 504 during inference, which
 * is cancelled), 400 for bodies that are not a NIfTI image or a readable DICOM series and for images the
 * model cannot take (wrong shape or channels, NaN intensities), naming what is wrong, 406 for an Accept
 * header the service cannot answer; 500 only for the service's own failures. `GET /health` reports the
 * model, the queue and the live tensor count.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

import { Command, CommanderError } from 'commander';

import {
  encodeDicomSeg,
  encodeNiftiLabels,
  liveTensors,
  niftiReference,
  parseDicomSeries,
  parseNiftiAsync,
  precisionWarning,
  Segmenter,
  setMaxConcurrentJobs,
  type DicomFile,
  type DicomImage,
  type NiftiImage,
  type Precision,
  type Tensor,
} from '../lib/index.js';
import { chooseReply, dicomFilesOf, UploadError, type Reply } from './dicom-upload.js';

const OPTION_KEYS = ['checkpoint', 'maxBodyBytes', 'concurrency', 'maxQueue', 'timeoutMs', 'maxExpandedBytes', 'maxVoxels', 'segmentNames', 'precision', 'task'];
/** setTimeout's largest delay; a longer one fires at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The options, checked: a wrong one is a TypeError / RangeError naming it, before anything loads. */
function checkServerOptions(options: InferenceServerOptions, port: unknown, host: unknown): void {
  const fn = 'startInferenceServer';
  if (typeof options !== 'object' || options === null) throw new TypeError(`${fn}(): argument 'options' must be an options object, got ${String(options)}`);
  for (const k of Object.keys(options)) if (!OPTION_KEYS.includes(k)) throw new RangeError(`${fn}(): unknown option '${k}' (expected one of ${OPTION_KEYS.join(', ')})`);
  if (typeof options.checkpoint !== 'string' || options.checkpoint === '') throw new TypeError(`${fn}(): option 'checkpoint' must be a file path, got ${String(options.checkpoint)}`);
  const check = (name: keyof InferenceServerOptions, min: number, max: number, integer: boolean) => {
    const v = options[name];
    if (v === undefined) return;
    if (typeof v !== 'number') throw new TypeError(`${fn}(): option '${name}' must be a number, got ${typeof v}`);
    if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v)))
      throw new RangeError(`${fn}(): option '${name}' must be ${integer ? 'an integer' : 'a number'} ${max === Infinity || max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}, got ${v}`);
  };
  check('maxBodyBytes', 1, Number.MAX_SAFE_INTEGER, true);
  check('maxExpandedBytes', 1, Number.MAX_SAFE_INTEGER, true);
  check('concurrency', 1, 1024, true);
  check('maxQueue', 0, Number.MAX_SAFE_INTEGER, true);
  check('timeoutMs', 1, MAX_TIMEOUT_MS, false);
  check('maxVoxels', 1, Number.MAX_SAFE_INTEGER, true);
  check('task', 0, Number.MAX_SAFE_INTEGER, true);
  if (options.segmentNames !== undefined && (!Array.isArray(options.segmentNames) || options.segmentNames.some((n) => typeof n !== 'string' || n === '')))
    throw new TypeError(`${fn}(): option 'segmentNames' must be an array of non-empty strings`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`${fn}(): argument 'port' must be an integer in [0, 65535], got ${String(port)}`);
  if (typeof host !== 'string' || host === '') throw new TypeError(`${fn}(): argument 'host' must be a host name or address, got ${String(host)}`);
}

/** The message of a library error for a client: without its `fn(): ` prefix. */
const clientMessage = (err: Error) => err.message.replace(/^[\w.]+\(\): /, '');

export interface InferenceServerOptions {
  /** A semiseg checkpoint (best.ckpt, final.ckpt). */
  checkpoint: string;
  /** Largest accepted body in bytes (default 256 MiB). */
  maxBodyBytes?: number;
  /** Segmentations running at once (default 1; each uses all of LibTorch's intra-op threads). */
  concurrency?: number;
  /** Requests allowed to wait for a slot beyond those running (default 8). */
  maxQueue?: number;
  /** Time limit of a request, upload and inference together, in ms (default 120 s). */
  timeoutMs?: number;
  /**
   * Largest size an upload may expand to (default 4 x maxBodyBytes): a gzipped NIfTI decompressed, or the
   * files of a zip / multipart DICOM upload together. Past it: 413.
   */
  maxExpandedBytes?: number;
  /**
   * Most voxels an image may have once cropped and resampled to the model's spacing (default 2^27, a
   * 512^3 volume; Segmenter.load's `maxVoxels`). Past it: 413, before any preprocessing.
   */
  maxVoxels?: number;
  /** DICOM SEG answers: the names of labels 1, 2, ... (default 'Segment n'). */
  segmentNames?: string[];
  /** Precision of the forwards (default 'auto': bfloat16 where the CPU or GPU runs it natively, else float32). */
  precision?: Precision;
  /** VerSemi checkpoints: the task (dataset) every request is segmented as, 0..T (default 0). */
  task?: number;
}

export interface InferenceServer {
  server: Server;
  segmenter: Segmenter;
  /** Stops accepting connections, waits for running jobs, frees the model. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** At most `concurrency` jobs run; up to `maxQueue` more wait in order; the rest are refused. */
class JobQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(
    private readonly concurrency: number,
    private readonly maxQueue: number,
  ) {}

  get stats() {
    return { running: this.running, waiting: this.waiting.length };
  }

  /** Resolves when a slot is free; throws 503 when the queue is full, or the signal's reason when aborted. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    if (this.running < this.concurrency) {
      this.running++;
      return () => this.release();
    }
    if (this.waiting.length >= this.maxQueue) throw new HttpError(503, 'busy: the job queue is full, try again later', { 'retry-after': '5' });
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(wake);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(wake);
    });
    this.running++;
    return () => this.release();
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.();
  }

  idle(): boolean {
    return this.running === 0 && this.waiting.length === 0;
  }
}

/** Reads the whole body, refusing it (413) as soon as it passes `limit` bytes. */
function readBody(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `body of ${declared} bytes is over the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onAbort = () => reject(new HttpError(408, 'timed out while receiving the body'));
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, `body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', reject);
  });
}

/** The volume of an uploaded DICOM series; its problems are 400s naming the file. */
async function dicomSeries(files: DicomFile[], series: string | null): Promise<DicomImage> {
  try {
    return await parseDicomSeries(files, series ? { seriesInstanceUID: series } : {});
  } catch (err) {
    const m = (err as Error).message.replace(/^\w+\(\): /, '').replace('choose one by SeriesInstanceUID', 'choose one with ?series=<uid>');
    throw new HttpError(400, m);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  // an early reply (413) closes the connection so the client stops sending
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close', ...headers });
  res.end(text);
}

/** Starts the service on `port` (0: any free port) of `host`. */
export async function startInferenceServer(options: InferenceServerOptions, port = 0, host = '127.0.0.1'): Promise<InferenceServer> {
  checkServerOptions(options, port, host);
  const limit = options.maxBodyBytes ?? 256 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const concurrency = options.concurrency ?? 1;
  const queue = new JobQueue(concurrency, options.maxQueue ?? 8);
  setMaxConcurrentJobs(Math.max(1, concurrency));
  const segmenter = await Segmenter.load(options.checkpoint, {
    precision: options.precision ?? 'auto',
    ...(options.task !== undefined ? { task: options.task } : {}),
    ...(options.maxVoxels !== undefined ? { maxVoxels: options.maxVoxels } : {}),
  });
  const expandedLimit = options.maxExpandedBytes ?? 4 * limit;
  const segments = options.segmentNames?.map((label) => ({ label }));
  if (segments && segments.length < segmenter.settings.classes - 1) {
    segmenter.dispose();
    throw new RangeError(`startInferenceServer(): 'segmentNames' names ${segments.length} labels but the model has ${segmenter.settings.classes - 1} (classes 1..${segmenter.settings.classes - 1})`);
  }

  async function segment(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new HttpError(504, `timed out after ${timeoutMs} ms`)), timeoutMs);
    // the client went away: cancel its work
    res.on('close', () => {
      if (!res.writableFinished) controller.abort(new HttpError(499, 'client closed the connection'));
    });
    let image: NiftiImage | undefined;
    let dicom: DicomImage | undefined;
    let labels: Tensor | undefined;
    try {
      if (queue.stats.waiting >= (options.maxQueue ?? 8)) throw new HttpError(503, 'busy: the job queue is full, try again later', { 'retry-after': '5' });
      const body = await readBody(req, limit, controller.signal);
      if (body.length === 0) throw new HttpError(400, 'empty body: send a NIfTI image (.nii or .nii.gz) or a DICOM series (a zip or multipart/form-data of .dcm files)');
      let reply: Reply;
      let files: DicomFile[] | null;
      try {
        files = await dicomFilesOf(body, req.headers['content-type'], expandedLimit);
        reply = chooseReply(req.headers.accept, files !== null);
      } catch (err) {
        throw err instanceof UploadError ? new HttpError(err.status, err.message) : err;
      }
      if (files) {
        dicom = await dicomSeries(files, new URL(req.url ?? '/', 'http://localhost').searchParams.get('series'));
        image = niftiReference(dicom, 'upload');
      } else {
        try {
          // a gzipped body expands within the same budget as archives (a few KiB of gzip can hold GiBs of
          // zeros), off the event loop
          image = await parseNiftiAsync(body, 'upload', { maxBytes: expandedLimit });
        } catch (err) {
          const m = clientMessage(err as Error);
          throw new HttpError(err instanceof RangeError && /decompresses to more than/.test(m) ? 413 : 400, m);
        }
      }
      const rank = image.data.rank;
      if (rank !== 3 && rank !== 4) throw new HttpError(400, `upload has ${rank} dimensions; a 3-D image (or a 4-D one of channels) is needed`);
      const release = await queue.acquire(controller.signal);
      try {
        labels = await segmenter.segmentNifti(image, controller.signal);
      } catch (err) {
        // what segmentImage refuses up front is the client's image: its shape or channels, NaN voxels (400),
        // a size past maxVoxels on the model's grid (413); anything else stays an internal error
        if (err instanceof RangeError && !controller.signal.aborted)
          throw new HttpError((err as { code?: string }).code === 'ERR_IMAGE_TOO_LARGE' ? 413 : 400, clientMessage(err));
        throw err;
      } finally {
        release();
      }
      const seg = reply === 'seg' && dicom !== undefined;
      const out = seg ? encodeDicomSeg(labels, dicom!, segments ? { segments } : {}) : encodeNiftiLabels(labels, image, { gzip: true });
      res.writeHead(200, { 'content-type': seg ? 'application/dicom' : 'application/gzip', 'content-length': out.length, 'x-semiseg-shape': labels.shape.join('x'), vary: 'Accept' });
      res.end(out);
    } catch (err) {
      const e = controller.signal.aborted && controller.signal.reason instanceof HttpError && !(err instanceof HttpError) ? controller.signal.reason : err;
      if (e instanceof HttpError) sendJson(res, e.status, { error: e.message }, e.headers);
      else {
        console.error('inference-server: internal error:', e);
        sendJson(res, 500, { error: 'internal error' });
      }
    } finally {
      clearTimeout(timer);
      image?.data.dispose();
      labels?.dispose();
    }
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/health' && req.method === 'GET') {
      sendJson(res, 200, { status: 'ok', model: segmenter.network.kind, ...(segmenter.settings.task !== undefined ? { task: segmenter.settings.task } : {}), classes: segmenter.settings.classes, precision: segmenter.precision, ...queue.stats, liveTensors: liveTensors() });
    } else if (url.pathname === '/segment') {
      if (req.method !== 'POST') sendJson(res, 405, { error: `use POST for /segment, not ${req.method}` }, { allow: 'POST' });
      else void segment(req, res);
    } else {
      sendJson(res, 404, { error: `no route ${req.method} ${url.pathname}; use POST /segment or GET /health` });
    }
  });
  server.requestTimeout = timeoutMs + 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    segmenter,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      while (!queue.idle()) await new Promise((r) => setTimeout(r, 10));
      segmenter.dispose();
    },
  };
}

/** A bad command-line argument: one line, exit status 2, before the service starts. */
class UsageError extends Error {}

/**
 * `--flag <value>` as a number, or a UsageError naming the flag: an integer in [min, max] when `integer`,
 * else a finite number > 0 (and <= max). '1MB', '2m', 'ten', '' and NaN are refused, not turned into NaN.
 */
function numberOption(flag: string, value: string, o: { integer?: boolean; min?: number; max?: number } = {}): number {
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  const n = /^\s*\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(value) ? Number(value) : NaN;
  const bound = max === Number.MAX_SAFE_INTEGER ? '' : ` and at most ${max}`;
  if (o.integer) {
    const min = o.min ?? 1;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag}: expected an integer >= ${min}${bound}, got '${value}'`);
  } else if (!(Number.isFinite(n) && n > 0 && n <= max)) throw new UsageError(`${flag}: expected a number > 0${bound}, got '${value}'`);
  return n;
}

/** The command line, checked: every numeric flag is validated (a typo must not turn a limit off). */
export function serverOptionsFromArgs(argv: string[]): { options: InferenceServerOptions; port: number; host: string } {
  const program = new Command('inference-server')
    .exitOverride()
    .requiredOption('--checkpoint <file>', 'a semiseg checkpoint')
    .option('--port <n>', 'port (0: any free one)', '8080')
    .option('--host <h>', 'address to listen on', '127.0.0.1')
    .option('--concurrency <n>', 'segmentations at once (an integer >= 1)', '1')
    .option('--max-queue <n>', 'waiting requests allowed (an integer >= 0)', '8')
    .option('--max-body-mb <n>', 'largest upload in MiB', '256')
    .option('--timeout-s <n>', 'time limit of a request, in seconds', '120')
    .option('--max-expanded-mb <n>', 'largest size a .nii.gz or a zip / multipart DICOM upload may expand to, in MiB (default 4 x --max-body-mb)')
    .option('--max-voxels <n>', 'most voxels an image may have on the model\'s grid (after resampling to its spacing); past it: 413', String(2 ** 27))
    .option('--segment-names <names>', 'DICOM SEG answers: comma-separated names of labels 1, 2, ...')
    .option('--precision <p>', 'float32, bfloat16, float16 (CUDA) or auto', 'auto')
    .option('--task <id>', 'VerSemi checkpoints: the task (dataset) to segment, 0..T (default 0)')
    .parse(argv);
  const o = program.opts<Record<string, string | undefined>>();
  const mib = (flag: string, v: string) => {
    const bytes = Math.floor(numberOption(flag, v) * 1024 * 1024);
    if (bytes < 1 || !Number.isSafeInteger(bytes)) throw new UsageError(`${flag}: expected a size in MiB of at least one byte, got '${v}'`);
    return bytes;
  };
  const maxBodyBytes = mib('--max-body-mb', o.maxBodyMb!);
  const options: InferenceServerOptions = {
    checkpoint: o.checkpoint!,
    concurrency: numberOption('--concurrency', o.concurrency!, { integer: true, min: 1, max: 1024 }),
    maxQueue: numberOption('--max-queue', o.maxQueue!, { integer: true, min: 0 }),
    maxBodyBytes,
    timeoutMs: numberOption('--timeout-s', o.timeoutS!, { max: Math.floor(MAX_TIMEOUT_MS / 1000) }) * 1000,
    maxVoxels: numberOption('--max-voxels', o.maxVoxels!, { integer: true, min: 1 }),
    ...(o.maxExpandedMb !== undefined ? { maxExpandedBytes: mib('--max-expanded-mb', o.maxExpandedMb) } : {}),
    ...(o.segmentNames !== undefined ? { segmentNames: String(o.segmentNames).split(',').map((s) => s.trim()) } : {}),
    precision: o.precision as Precision,
    ...(o.task !== undefined ? { task: numberOption('--task', o.task, { integer: true, min: 0 }) } : {}),
  };
  if (options.segmentNames?.some((n) => n === '')) throw new UsageError(`--segment-names: empty name in '${o.segmentNames}'`);
  if (!['float32', 'bfloat16', 'float16', 'auto'].includes(o.precision!)) throw new UsageError(`--precision: expected float32, bfloat16, float16 or auto, got '${o.precision}'`);
  return { options, port: numberOption('--port', o.port!, { integer: true, min: 0, max: 65535 }), host: o.host! };
}

async function main(): Promise<void> {
  const { options, port, host } = serverOptionsFromArgs(process.argv);
  const s = await startInferenceServer(options, port, host);
  const a = s.server.address() as AddressInfo;
  console.log(`semiseg inference server (${s.segmenter.network.kind}${s.segmenter.settings.task !== undefined ? ` task ${s.segmenter.settings.task}` : ''}, ${s.segmenter.precision}) on http://${a.address}:${a.port}: POST /segment, GET /health`);
  const warning = precisionWarning(s.segmenter.precision, s.segmenter.network.device);
  if (warning) console.warn(`warning: ${warning}`);
  const stop = () => void s.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    // commander has printed its own line for its errors (unknown option, missing --checkpoint, --help)
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    console.error(`inference-server: ${err instanceof Error ? err.message : String(err)}`);
    // a bad flag, or an option startInferenceServer refuses (precision float16 on a CPU, a task id): 2
    process.exit(err instanceof UsageError || err instanceof RangeError ? 2 : 1);
  });
}
