// examples/inference-server.ts and what clients or operators get wrong: a gzipped NIfTI that expands past
// the expansion budget (413), an image too large on the model's grid (413, maxVoxels), NaN voxels and
// images of the wrong shape (400, not 500), 4-D single-channel images (accepted, labels on the 3-D grid),
// and options / command-line flags that are not valid numbers (refused before listening, exit status 2).
// Serial: liveTensors() is process-wide.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { serverOptionsFromArgs, startInferenceServer, type InferenceServer, type InferenceServerOptions } from '../examples/inference-server.js';
import { liveTensors, manualSeed, nets, parseNifti, saveCheckpoint, Segmenter, setNumThreads } from '../lib/index.js';
import { errorOf, post } from './helpers/http.js';
import { niftiImageBytes, testPlan, testValues } from './helpers/nifti.js';
import { repoRoot } from './helpers/reference.js';

setNumThreads(1);
let dir = '';
let checkpoint = ''; // UNet2D, no plan
let planned = ''; // VNet3D with a 1 mm plan
let svc: InferenceServer;
let base = '';

const send = (url: string, body: Buffer) => post(`${url}/segment`, body);
const urlOf = (s: InferenceServer) => `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;

const values = testValues;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-server-input-'));
  manualSeed(7);
  const net = nets.UNet2D({ inChannels: 1, outChannels: 4, features: [4, 8, 16, 32, 64] });
  checkpoint = join(dir, 'model.ckpt');
  await saveCheckpoint(checkpoint, { network: net, iteration: 0, extra: { config: { size: [32, 32], classes: 4, method: 'supervised' } } });
  net.dispose();
  const plan = testPlan();
  const v = nets.VNet3D({ inChannels: 1, outChannels: 2, nFilters: 2 });
  planned = join(dir, 'planned.ckpt');
  await saveCheckpoint(planned, { network: v, iteration: 0, extra: { config: { size: [16, 16, 16], classes: 2, method: 'supervised', plan } } });
  v.dispose();
  // 256 KiB bodies, expanding to at most 1 MiB (the default: 4 x the body limit)
  svc = await startInferenceServer({ checkpoint, maxBodyBytes: 256 * 1024, timeoutMs: 20_000 });
  base = urlOf(svc);
});

test.after.always(async () => {
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.serial('a gzipped NIfTI expanding past the expansion budget is a 413 naming the limit, and nothing is decoded', async (t) => {
  // 128^3 float32 zeros: 8 MiB + header, about 8 KiB gzipped, under the 256 KiB body limit
  const raw = niftiImageBytes([128, 128, 128], new Float32Array(128 ** 3), [1, 1, 1], false);
  const bomb = gzipSync(raw, { level: 9 });
  t.true(bomb.length < 256 * 1024, `${bomb.length} bytes`);
  const live = liveTensors();
  const r = await send(base, bomb);
  t.is(r.status, 413, r.body.toString());
  t.is(errorOf(r), "'upload' decompresses to more than 1048576 bytes, the limit");
  t.is(liveTensors(), live);
  // within the budget it is served
  const fine = await send(base, gzipSync(niftiImageBytes([32, 32, 4], values(32 * 32 * 4, 1), [1, 1, 1], false)));
  t.is(fine.status, 200, fine.body.toString());
  // the budget is the option's: 9 MiB lets the 8 MiB image through the parser
  const roomy = await startInferenceServer({ checkpoint, maxBodyBytes: 256 * 1024, maxExpandedBytes: 9 * 1024 * 1024, maxVoxels: 1000 });
  const r2 = await send(urlOf(roomy), bomb);
  t.is(r2.status, 413);
  t.regex(errorOf(r2), /^the image of shape 128x128x128 at spacing 1x1x1 mm is 128x128x128 \(2097152 voxels; the model does not resample\): more than the limit of 1000 voxels \(maxVoxels\)$/, 'past the parser: refused by maxVoxels');
  await roomy.close();
});

test.serial('maxVoxels: an image too large on the model\'s grid is a 413 before preprocessing; the rest are served', async (t) => {
  const s = await startInferenceServer({ checkpoint: planned, maxVoxels: 24 ** 3 - 1, timeoutMs: 20_000 });
  t.is(s.segmenter.maxVoxels, 24 ** 3 - 1);
  const url = urlOf(s);
  const small = (mm: number) => niftiImageBytes([12, 12, 12], values(12 ** 3, 2), [mm, mm, mm]);
  const big = await send(url, small(2));
  t.is(big.status, 413);
  t.is(errorOf(big), "the image of shape 12x12x12 at spacing 2x2x2 mm resamples to 24x24x24 (13824 voxels) at the model's spacing of 1x1x1 mm: more than the limit of 13823 voxels (maxVoxels)");
  const ok = await send(url, small(1.5));
  t.is(ok.status, 200, ok.body.toString());
  const reply = parseNifti(ok.body, 'reply');
  t.deepEqual(reply.data.shape, [12, 12, 12]);
  reply.data.dispose(); // left to the garbage collector, it changed the next test's live-tensor count whenever it ran
  await s.close();
  // the default is Segmenter's: 2^27 voxels (12^3 at 50 mm would be 600^3)
  const d = await startInferenceServer({ checkpoint: planned });
  t.is(d.segmenter.maxVoxels, 2 ** 27);
  const huge = await send(urlOf(d), small(50));
  t.is(huge.status, 413);
  t.regex(errorOf(huge), /resamples to 600x600x600 \(216000000 voxels\).*more than the limit of 134217728 voxels/);
  await d.close();
});

test.serial('a NaN voxel or an image the model cannot take is a 400 with the reason; internal failures stay 500', async (t) => {
  const live = liveTensors();
  const v = values(20 * 20 * 4, 3);
  v[3] = Number.NaN;
  const nan = await send(base, niftiImageBytes([20, 20, 4], v));
  t.is(nan.status, 400);
  t.is(errorOf(nan), 'the image holds NaN or infinite intensities');
  const w = values(20 * 20 * 4, 3);
  w[5] = Infinity;
  t.is((await send(base, niftiImageBytes([20, 20, 4], w))).status, 400);
  const three = await send(base, niftiImageBytes([8, 8, 4, 3], values(8 * 8 * 4 * 3, 4)));
  t.is(three.status, 400);
  t.is(errorOf(three), 'the image has shape 8x8x4x3; the model takes one channel: a 3-D image (I, J, K) is needed, or a 4-D one of shape (1, I, J, K) or (I, J, K, 1)');
  const five = await send(base, niftiImageBytes([8, 8, 4, 1, 2], values(8 * 8 * 4 * 2, 4)));
  t.is(five.status, 400);
  t.regex(errorOf(five), /upload has 5 dimensions; a 3-D image \(or a 4-D one of channels\) is needed/);
  t.is(liveTensors(), live);
  // a failure of the service's own (not the client's image) is still a 500 without details
  const original = svc.segmenter.segmentNifti.bind(svc.segmenter);
  const errors: unknown[] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => errors.push(args);
  try {
    for (const failure of [new Error('native failure'), new TypeError('a bug in the service')]) {
      svc.segmenter.segmentNifti = () => Promise.reject(failure);
      const r = await send(base, niftiImageBytes([20, 20, 4], values(1600, 5)));
      t.is(r.status, 500, failure.message);
      t.is(errorOf(r), 'internal error');
    }
  } finally {
    svc.segmenter.segmentNifti = original;
    console.error = consoleError;
  }
  t.is(errors.length, 2, 'internal errors are logged');
  t.is((await send(base, niftiImageBytes([20, 20, 4], values(1600, 5)))).status, 200);
});

test.serial('a 4-D single-channel upload (I, J, K, 1) is segmented; the reply is 3-D on its grid, equal to the 3-D upload\'s', async (t) => {
  const v = values(24 * 20 * 4, 6);
  const three = await send(base, niftiImageBytes([24, 20, 4], v, [1.5, 1.5, 5]));
  const four = await send(base, niftiImageBytes([24, 20, 4, 1], v, [1.5, 1.5, 5, 1]));
  t.is(three.status, 200, three.body.toString());
  t.is(four.status, 200, four.body.toString());
  t.is(four.headers['x-semiseg-shape'], '24x20x4');
  const a = parseNifti(three.body, 'three');
  const b = parseNifti(four.body, 'four');
  t.deepEqual(b.data.shape, [24, 20, 4]);
  t.deepEqual(b.spacing, [1.5, 1.5, 5]);
  t.deepEqual(Array.from(b.data.data() as BigInt64Array), Array.from(a.data.data() as BigInt64Array));
  // the library gives the same labels
  const seg = await Segmenter.load(checkpoint);
  const input = parseNifti(niftiImageBytes([24, 20, 4, 1], v, [1.5, 1.5, 5, 1]), 'input');
  const expected = await seg.segmentNifti(input);
  t.deepEqual(Array.from(b.data.data() as BigInt64Array), Array.from(expected.data() as BigInt64Array));
  t.true(new Set(Array.from(expected.data() as BigInt64Array)).size > 1, 'labels vary');
  for (const x of [a.data, b.data, input.data, expected]) x.dispose();
  seg.dispose();
});

test.serial('startInferenceServer refuses invalid options, naming them, before loading anything', async (t) => {
  const cases: Array<[Partial<InferenceServerOptions>, RegExp, (new (...a: never[]) => Error)?]> = [
    [{ maxBodyBytes: Number.NaN }, /option 'maxBodyBytes' must be an integer >= 1, got NaN/],
    [{ maxBodyBytes: 0 }, /option 'maxBodyBytes' must be an integer >= 1, got 0/],
    [{ maxBodyBytes: 1.5 }, /option 'maxBodyBytes'/],
    [{ maxExpandedBytes: -1 }, /option 'maxExpandedBytes' must be an integer >= 1, got -1/],
    [{ concurrency: 0 }, /option 'concurrency' must be an integer in \[1, 1024\], got 0/],
    [{ concurrency: 2.5 }, /option 'concurrency'/],
    [{ maxQueue: -1 }, /option 'maxQueue' must be an integer >= 0, got -1/],
    [{ maxQueue: Infinity }, /option 'maxQueue'/],
    [{ timeoutMs: 0 }, /option 'timeoutMs' must be a number in \[1, 2147483647\], got 0/],
    [{ timeoutMs: Number.NaN }, /option 'timeoutMs'/],
    [{ timeoutMs: 2 ** 31 }, /option 'timeoutMs'/],
    [{ maxVoxels: 0 }, /option 'maxVoxels' must be an integer >= 1, got 0/],
    [{ task: -1 }, /option 'task'/],
    [{ maxBodyBytes: '1MB' as never }, /option 'maxBodyBytes' must be a number, got string/, TypeError],
    [{ segmentNames: 'a,b' as never }, /option 'segmentNames' must be an array of non-empty strings/, TypeError],
    [{ maxBody: 5 } as never, /unknown option 'maxBody' \(expected one of checkpoint, maxBodyBytes/],
  ];
  for (const [o, message, type] of cases)
    await t.throwsAsync(() => startInferenceServer({ checkpoint, ...o }), { instanceOf: type ?? RangeError, message }, JSON.stringify(o));
  await t.throwsAsync(() => startInferenceServer({ checkpoint }, 70000), { instanceOf: RangeError, message: /argument 'port' must be an integer in \[0, 65535\], got 70000/ });
  await t.throwsAsync(() => startInferenceServer({ checkpoint }, 1.5), { instanceOf: RangeError, message: /argument 'port'/ });
  await t.throwsAsync(() => startInferenceServer({} as never), { instanceOf: TypeError, message: /option 'checkpoint' must be a file path/ });
});

test('serverOptionsFromArgs: numbers parse to the options; every malformed numeric flag is a one-line usage error', (t) => {
  const argv = (...a: string[]) => ['node', 'inference-server', '--checkpoint', checkpoint, ...a];
  const { options, port, host } = serverOptionsFromArgs(argv('--max-body-mb', '0.5', '--timeout-s', '2.5', '--max-queue', '0', '--concurrency', '2', '--max-voxels', '1000', '--port', '0', '--max-expanded-mb', '3', '--task', '1'));
  t.like(options, { maxBodyBytes: 512 * 1024, timeoutMs: 2500, maxQueue: 0, concurrency: 2, maxVoxels: 1000, maxExpandedBytes: 3 * 1024 * 1024, task: 1, precision: 'auto' });
  t.is(port, 0);
  t.is(host, '127.0.0.1');
  t.like(serverOptionsFromArgs(argv()).options, { maxBodyBytes: 256 * 1024 * 1024, timeoutMs: 120_000, maxQueue: 8, concurrency: 1, maxVoxels: 2 ** 27 });
  for (const [flag, value, message] of [
    ['--max-body-mb', '1MB', "--max-body-mb: expected a number > 0, got '1MB'"],
    ['--max-body-mb', 'NaN', "--max-body-mb: expected a number > 0, got 'NaN'"],
    ['--max-body-mb', '0', "--max-body-mb: expected a number > 0, got '0'"],
    ['--max-body-mb', '-3', "--max-body-mb: expected a number > 0, got '-3'"],
    ['--max-body-mb', 'Infinity', "--max-body-mb: expected a number > 0, got 'Infinity'"],
    ['--timeout-s', '2m', "--timeout-s: expected a number > 0 and at most 2147483, got '2m'"],
    ['--timeout-s', '1e9', "--timeout-s: expected a number > 0 and at most 2147483, got '1e9'"],
    ['--max-queue', 'ten', "--max-queue: expected an integer >= 0, got 'ten'"],
    ['--max-queue', '-1', "--max-queue: expected an integer >= 0, got '-1'"],
    ['--concurrency', '0', "--concurrency: expected an integer >= 1 and at most 1024, got '0'"],
    ['--concurrency', '1.5', "--concurrency: expected an integer >= 1 and at most 1024, got '1.5'"],
    ['--max-voxels', '', "--max-voxels: expected an integer >= 1, got ''"],
    ['--port', '99999', "--port: expected an integer >= 0 and at most 65535, got '99999'"],
    ['--task', 'x', "--task: expected an integer >= 0, got 'x'"],
    ['--max-expanded-mb', '0x10', "--max-expanded-mb: expected a number > 0, got '0x10'"],
    ['--precision', 'fp8', "--precision: expected float32, bfloat16, float16 or auto, got 'fp8'"],
  ])
    t.throws(() => serverOptionsFromArgs(argv(flag, value)), { message }, `${flag} ${value}`);
});

test('the command line: a malformed numeric flag exits with status 2 and one line, before listening', (t) => {
  const script = join(repoRoot, 'dist/examples/inference-server.js');
  for (const [flag, value, message] of [
    ['--max-body-mb', '1MB', /^inference-server: --max-body-mb: expected a number > 0, got '1MB'\n$/],
    ['--timeout-s', '2m', /--timeout-s: expected a number > 0 and at most 2147483, got '2m'/],
    ['--max-queue', 'ten', /--max-queue: expected an integer >= 0, got 'ten'/],
    ['--concurrency', '0', /--concurrency: expected an integer >= 1 and at most 1024, got '0'/],
    ['--max-voxels', '-5', /--max-voxels: expected an integer >= 1, got '-5'/],
  ] as Array<[string, string, RegExp]>) {
    const r = spawnSync(process.execPath, [script, '--checkpoint', checkpoint, '--port', '0', flag, value], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, SEMISEG_THREADS: '1' } });
    t.is(r.status, 2, `${flag} ${value}: ${r.stderr}`);
    t.regex(r.stderr, message);
    t.false(/on http:\/\//.test(r.stdout), 'never listened');
  }
  const unknown = spawnSync(process.execPath, [script, '--checkpoint', checkpoint, '--max-body', '5'], { encoding: 'utf8', timeout: 60_000 });
  t.is(unknown.status, 2);
  t.regex(unknown.stderr, /unknown option '--max-body'/);
});

test('the command line: valid flags start the service', async (t) => {
  const script = join(repoRoot, 'dist/examples/inference-server.js');
  const child = spawn(process.execPath, [script, '--checkpoint', checkpoint, '--port', '0', '--max-body-mb', '0.5', '--timeout-s', '30', '--max-voxels', '100000'], { env: { ...process.env, SEMISEG_THREADS: '1' } });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
  const r = await send(url, niftiImageBytes([20, 20, 4], values(1600, 8)));
  t.is(r.status, 200, r.body.toString());
  const big = await send(url, Buffer.alloc(600 * 1024, 1));
  t.is(big.status, 413, '--max-body-mb 0.5 is in force');
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
});
