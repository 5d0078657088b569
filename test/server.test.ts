// examples/inference-server.ts over loopback: the label map equals the library's own inference, concurrent
// requests queue (and are refused with 503 past the queue bound), corrupt / oversize / stalled uploads get
// clear 4xx replies, and neither live tensors nor RSS grow over 200 requests.
// Serial: liveTensors() is process-wide.
import test from 'ava';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { startInferenceServer, type InferenceServer } from '../examples/inference-server.js';
import { liveTensors, manualSeed, nets, parseNifti, saveCheckpoint, Segmenter, setNumThreads } from '../lib/index.js';
import { niftiImageBytes } from './helpers/nifti.js';

setNumThreads(1);
let dir = '';
let checkpoint = '';
let svc: InferenceServer;
let base = '';

function image(shape: number[], seed: number): Buffer {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let s = seed;
  for (let i = 0; i < values.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    values[i] = s / 2147483648;
  }
  return niftiImageBytes(shape, values, [1.5, 1.5, 5]);
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(path: string, body?: Buffer | ((req: ReturnType<typeof request>) => void), method = 'POST', url = base): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (typeof body === 'function') body(req);
    else req.end(body);
  });
}

const errorOf = (r: Reply) => (JSON.parse(r.body.toString()) as { error: string }).error;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-server-'));
  checkpoint = join(dir, 'model.ckpt');
  manualSeed(7);
  const net = nets.UNet2D({ inChannels: 1, outChannels: 4, features: [4, 8, 16, 32, 64] });
  await saveCheckpoint(checkpoint, { network: net, iteration: 0, extra: { config: { size: [32, 32], classes: 4, method: 'supervised' } } });
  net.dispose();
  svc = await startInferenceServer({ checkpoint, concurrency: 1, maxQueue: 2, maxBodyBytes: 256 * 1024, timeoutMs: 1500 });
  base = `http://127.0.0.1:${(svc.server.address() as AddressInfo).port}`;
});

test.after.always(async () => {
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.serial('POST /segment returns the label map of the library on the input grid', async (t) => {
  const body = image([40, 36, 3], 1);
  const r = await send('/segment', body);
  t.is(r.status, 200, r.body.toString().slice(0, 200));
  t.is(r.headers['content-type'], 'application/gzip');
  const labels = parseNifti(r.body, 'reply');
  t.deepEqual(labels.data.shape, [40, 36, 3]);
  t.deepEqual(labels.spacing, [1.5, 1.5, 5]);
  // the same checkpoint through the library directly
  const seg = await Segmenter.load(checkpoint);
  const input = parseNifti(body, 'input');
  const expected = await seg.segmentNifti(input);
  t.deepEqual(Array.from(labels.data.data() as BigInt64Array, Number), Array.from(expected.data() as BigInt64Array, Number));
  for (const x of [labels.data, input.data, expected]) x.dispose();
  seg.dispose();
});

test.serial('concurrent requests queue; past the queue bound they get 503 with Retry-After', async (t) => {
  // 1 running + 2 waiting fit
  const three = await Promise.all([1, 2, 3].map((s) => send('/segment', image([32, 32, 6], s))));
  t.deepEqual(three.map((r) => r.status), [200, 200, 200]);
  // 10 at once: some are refused, the others answered, nothing else
  const ten = await Promise.all(Array.from({ length: 10 }, (_, s) => send('/segment', image([32, 32, 12], s))));
  const statuses = ten.map((r) => r.status);
  t.true(statuses.filter((s) => s === 200).length >= 3, statuses.join(','));
  t.true(statuses.includes(503), statuses.join(','));
  t.true(statuses.every((s) => s === 200 || s === 503), statuses.join(','));
  const refused = ten.find((r) => r.status === 503)!;
  t.is(refused.headers['retry-after'], '5');
  t.regex(errorOf(refused), /job queue is full/);
  const health = JSON.parse((await send('/health', undefined, 'GET')).body.toString());
  t.like(health, { status: 'ok', model: 'UNet2D', classes: 4, running: 0, waiting: 0 });
});

test.serial('bad uploads get a 400 naming what is wrong', async (t) => {
  const good = gzipSync(Buffer.from(image([8, 8, 2], 3)));
  const raw = niftiImageBytes([8, 8, 2], new Float32Array(128), undefined, false);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /empty body/],
    ['random bytes', Buffer.from('this is not an image at all, but it is long enough to be read as a header'.repeat(8)), /is not a NIfTI file/],
    ['short', Buffer.from('tiny'), /too short for a NIfTI header/],
    ['truncated data', raw.subarray(0, 400), /truncated/],
    ['damaged gzip', Buffer.concat([good.subarray(0, 30), Buffer.alloc(40, 7)]), /damaged gzip/],
    ['2-D image', niftiImageBytes([8, 8], new Float32Array(64)), /2 dimensions; a 3-D image \(or a 4-D one of channels\) is needed/],
  ];
  for (const [what, body, message] of cases) {
    const r = await send('/segment', body);
    t.is(r.status, 400, what);
    t.regex(errorOf(r), message, what);
  }
  t.is((await send('/segment', undefined, 'GET')).status, 405);
  t.is((await send('/nothing', Buffer.alloc(1))).status, 404);
});

test.serial('oversize bodies get 413, declared or streamed; a stalled upload gets 408', async (t) => {
  const big = Buffer.alloc(300 * 1024, 1);
  const declared = await send('/segment', big);
  t.is(declared.status, 413);
  t.regex(errorOf(declared), /over the limit of 262144 bytes/);
  // chunked, no content-length: refused once the limit passes
  const streamed = await send('/segment', (req) => {
    req.setHeader('transfer-encoding', 'chunked');
    const chunk = Buffer.alloc(64 * 1024, 2);
    let n = 0;
    const pump = () => {
      if (n++ < 8 && !req.destroyed) req.write(chunk, () => setImmediate(pump));
      else req.end();
    };
    pump();
  });
  t.is(streamed.status, 413);
  // headers and half a body, then nothing: the time limit answers
  const stalled = await send('/segment', (req) => {
    req.setHeader('content-length', '1000');
    req.write(Buffer.alloc(500));
  });
  t.is(stalled.status, 408);
  t.regex(errorOf(stalled), /timed out while receiving the body/);
  // the service still answers afterwards
  t.is((await send('/segment', image([16, 16, 2], 9))).status, 200);
});

test.serial('200 requests: no live tensor and no RSS growth', async (t) => {
  const body = image([32, 32, 4], 5);
  for (let i = 0; i < 20; i++) t.is((await send('/segment', body)).status, 200); // warm-up
  global.gc?.();
  const live = liveTensors();
  const rss = process.memoryUsage().rss;
  for (let i = 0; i < 200; i++) {
    const r = await send('/segment', body);
    if (r.status !== 200) t.fail(`request ${i}: ${r.status}`);
  }
  global.gc?.();
  t.is(liveTensors(), live);
  const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
  t.true(grown < 24, `RSS grew by ${grown.toFixed(1)} MiB over 200 requests`);
});
