// Checkpoints: a run killed (SIGKILL) while it saves a checkpoint every step resumes from the file on disk
// and ends with the same weights as an uninterrupted run; bad files fail clearly and touch nothing.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  SGD,
  dispose,
  loadCheckpoint,
  nets,
  randn,
  readCheckpointInfo,
  readSafetensors,
  readTorchStateDict,
  saveCheckpoint,
  tensor,
  writeSafetensors,
  writeTorchStateDict,
} from '../lib/index.js';
import { referencePython, repoRoot } from './helpers/reference.js';
import { maxAbsDiff, runPythonCode } from './helpers/python.js';

const child = join(repoRoot, 'dist/test/helpers/train-child.js');
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
let root = '';
test.before(() => {
  root = mkdtempSync(join(tmpdir(), 'semiseg-ckpt-'));
});
test.after.always(() => rmSync(root, { recursive: true, force: true }));

function runChild(dir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [child, dir, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`train-child failed: ${r.stderr}`);
  return r.stdout;
}

test.serial('a run killed while checkpointing resumes to the same weights as an uninterrupted run', async (t) => {
  const total = 10;
  const straight = join(root, 'straight');
  const killed = join(root, 'killed');
  for (const d of [straight, killed]) spawnSync('mkdir', ['-p', d]);
  runChild(straight, String(total), '5');
  // save every iteration; after iteration 4 the child rewrites its checkpoint in a loop, and is killed
  // (SIGKILL) 150 ms later, in all likelihood in the middle of a write
  const proc = spawn(process.execPath, [child, killed, String(total), '1', '--stall-after', '4'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/saved 4/.test(out)) setTimeout(() => (proc.kill('SIGKILL'), resolve()), 150);
    });
    proc.on('exit', (code) => (code === 0 ? reject(new Error('the child finished before it was killed')) : undefined));
  });
  const [, signal] = await new Promise<[number | null, string | null]>((r) => proc.once('close', (c, sig) => r([c, sig])));
  t.is(signal, 'SIGKILL');
  t.false(existsSync(join(killed, 'final.pt')), 'the run was cut short');
  const info = await readCheckpointInfo(join(killed, 'run.ckpt'));
  t.is(info.iteration, 4);
  t.deepEqual(info.schedule, { kind: 'poly', base: 0.05, maxIterations: total, power: 0.9 });
  runChild(killed, String(total), '1', '--resume');
  // the resumed run's saves removed what the killed writer left half-written
  t.deepEqual(readdirSync(killed).filter((f) => f.includes('.tmp-')), []);
  const a = await readTorchStateDict(join(straight, 'final.pt'));
  const b = await readTorchStateDict(join(killed, 'final.pt'));
  let worst = 0;
  for (const k of Object.keys(a)) worst = Math.max(worst, maxAbsDiff(Array.from(a[k].toArray() as ArrayLike<number | bigint>, Number), Array.from(b[k].toArray() as ArrayLike<number | bigint>, Number)));
  t.is(worst, 0, `resumed weights differ by ${worst}`);
  dispose([a, b]);
});

test.serial('bad checkpoint files fail clearly and leave the network and the file on disk untouched', async (t) => {
  const u = nets.UNet2D({ features: [4, 8, 16, 32, 64] });
  const v = nets.VNet3D({ nFilters: 4 });
  const good = join(root, 'good.ckpt');
  const opt = SGD(u, { lr: 0.1 });
  await saveCheckpoint(good, { network: u, optimizer: opt, iteration: 7 });
  const goodHash = sha(good);
  const before = u.stateDict();
  const snapshot = Object.fromEntries(Object.entries(before).map(([k, x]) => [k, Array.from(x.toArray() as ArrayLike<number | bigint>, Number)]));
  const unchanged = () => {
    const now = u.stateDict();
    const same = Object.keys(snapshot).every((k) => maxAbsDiff(Array.from(now[k].toArray() as ArrayLike<number | bigint>, Number), snapshot[k]) === 0);
    dispose(now);
    return same;
  };

  // a checkpoint of the other network
  const vnetCkpt = join(root, 'vnet.ckpt');
  await saveCheckpoint(vnetCkpt, { network: v, iteration: 1 });
  await t.throwsAsync(loadCheckpoint(vnetCkpt, { network: u }), { message: /loadCheckpoint\(\): '.*vnet\.ckpt' holds a VNet3D .* but the network is a UNet2D/ });
  // a truncated file
  const truncated = join(root, 'truncated.ckpt');
  writeFileSync(truncated, readFileSync(good).subarray(0, 5000));
  await t.throwsAsync(loadCheckpoint(truncated, { network: u }), { message: /loadCheckpoint\(\): '.*truncated\.ckpt' is not a readable torch file/ });
  // a file that is not a checkpoint at all, and a state dict that is not a semiseg checkpoint
  const junk = join(root, 'junk.bin');
  writeFileSync(junk, 'this is not a checkpoint\n'.repeat(100));
  await t.throwsAsync(loadCheckpoint(junk, { network: u }), { message: /is not a readable torch file/ });
  const plain = join(root, 'plain.pt');
  await writeTorchStateDict(plain, before);
  await t.throwsAsync(loadCheckpoint(plain, { network: u }), { message: /is a torch file but not a semiseg checkpoint \(for PyTorch weights use readTorchStateDict\)/ });
  await t.throwsAsync(loadCheckpoint(join(root, 'missing.ckpt'), { network: u }), { message: /cannot open '.*missing\.ckpt'/ });
  await t.throwsAsync(readTorchStateDict(truncated), { message: /readTorchStateDict\(\): '.*truncated\.ckpt' is not a readable torch file/ });
  t.true(unchanged(), 'a failed load changed the network');

  // a save that fails leaves the previous checkpoint as it was
  const gone = nets.UNet2D({ features: [4, 8, 16, 32, 64] });
  gone.dispose();
  await t.throwsAsync(saveCheckpoint(good, { network: gone, iteration: 8 }), { message: /the network has been disposed/ });
  t.is(sha(good), goodHash);
  t.is((await readCheckpointInfo(good)).iteration, 7);

  // a state dict with the wrong keys or shapes names every offender and copies nothing
  const wrong = { ...before, 'encoder.extra.weight': tensor([1]), 'decoder.out_conv.bias': tensor([1, 2]) };
  delete (wrong as Record<string, unknown>)['decoder.out_conv.weight'];
  const err = t.throws(() => u.loadStateDict(wrong));
  t.regex(err!.message, /missing keys \(1\): decoder\.out_conv\.weight/);
  t.regex(err!.message, /unexpected keys \(1\): encoder\.extra\.weight/);
  t.regex(err!.message, /mis-shaped keys \(1\): decoder\.out_conv\.bias: expected \[4\], got \[2\]/);
  t.deepEqual(u.loadStateDict({ ...before, 'encoder.extra.weight': wrong['encoder.extra.weight'] }, { strict: false }), { missing: [], unexpected: ['encoder.extra.weight'] });
  t.true(unchanged());
  dispose([before, wrong]);
  u.dispose();
  v.dispose();
});

test.serial('truncated and corrupted checkpoints never crash the process', async (t) => {
  const u = nets.UNet2D({ features: [4, 8, 16, 32, 64] });
  const good = join(root, 'fuzz-source.ckpt');
  await saveCheckpoint(good, { network: u, iteration: 1 });
  const bytes = readFileSync(good);
  const bad = join(root, 'fuzz.ckpt');
  let rejected = 0;
  for (let i = 0; i < 120; i++) {
    const copy = Buffer.from(i < 60 ? bytes.subarray(0, Math.floor((bytes.length * i) / 60)) : bytes);
    if (i >= 60) for (let k = 0; k < 4; k++) copy[(i * 7919 + k * 104729) % copy.length] ^= 0x5a; // flip bytes
    writeFileSync(bad, copy);
    try {
      await loadCheckpoint(bad, { network: u });
    } catch (err) {
      t.regex((err as Error).message, /loadCheckpoint\(\)|not a semiseg checkpoint|does not fit|JSON/);
      rejected++;
    }
  }
  t.true(rejected >= 60, `${rejected} of 120 damaged files were rejected`);
  u.dispose();
});

// What the published codes save, written by PyTorch itself: torch.save(model.state_dict()) (an
// OrderedDict with _metadata) from a GPU (storages tagged 'cuda:0'), BCP's {'net': ..., 'opt': ...} with a
// numpy scalar beside it, parameters, views and shared storages; and crafted files that lie about their
// storages or name arbitrary globals, which must fail in one line without running anything or crashing.
const INTEROP_PY = String.raw`
import collections, io, json, os, pickle, sys, zipfile
import numpy as np, torch, torch.serialization as ser
torch.manual_seed(0)
D = sys.argv[1] if len(sys.argv) > 1 else ROOT
net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
sd = net.state_dict()
tag = ser.location_tag
ser.location_tag = lambda storage: 'cuda:0'
torch.save(sd, os.path.join(D, 'ordered-cuda.pth'))
ser.location_tag = tag
out = lambda d: {k: v.float().flatten().tolist() for k, v in d.items()}
saved = out(sd)  # state_dict() holds the live parameters: the step below changes them
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
net(torch.randn(2, 1, 6, 6)).sum().backward(); opt.step()
torch.save({'net': net.state_dict(), 'opt': opt.state_dict(), 'best': np.float64(0.8), 'epoch': 3}, os.path.join(D, 'bcp.pth'))
torch.save({'a': dict(sd), 'b': {'w': torch.arange(6.).reshape(2, 3)}}, os.path.join(D, 'two.pth'))
base = torch.arange(12.).reshape(3, 4)
torch.save({'t': base.t(), 'half': base[1:], 'p': torch.nn.Parameter(torch.ones(2)), 'h': base.half()}, os.path.join(D, 'views.pth'))
torch.save(dict(sd), os.path.join(D, 'legacy.pth'), _use_new_zipfile_serialization=False)
class St:
    def __init__(s, key, numel): s.key, s.numel = key, numel
class T:
    def __init__(s, st, size): s.a = (st, 0, (size,), (1,), False, collections.OrderedDict())
    def __reduce__(s): return (torch._utils._rebuild_tensor_v2, s.a)
class Evil:
    def __reduce__(s): return (os.system, ('touch ' + os.path.join(D, 'PWNED'),))
class P(pickle.Pickler):
    def persistent_id(s, o):
        return ('storage', torch.FloatStorage, o.key, 'cpu', o.numel) if isinstance(o, St) else None
def crafted(name, obj, records):
    b = io.BytesIO(); P(b, protocol=2).dump(obj)
    with zipfile.ZipFile(os.path.join(D, name), 'w') as z:
        z.writestr('archive/data.pkl', b.getvalue()); z.writestr('archive/byteorder', 'little')
        for k, v in records.items(): z.writestr('archive/data/' + k, v)
        z.writestr('archive/version', '3\n')
crafted('lying.pth', {'w': T(St('0', 2 ** 28), 2 ** 28)}, {'0': b'\0' * 16})
ck = {'format': 'semiseg-checkpoint', 'version': 1, 'model': {}, 'optimizer': {}, 'meta': '{bad', 'rng': None, 'aux': {}}
torch.save(ck, os.path.join(D, 'bad-meta.ckpt'))
del ck['version']; torch.save(ck, os.path.join(D, 'no-version.ckpt'))
crafted('evil.pth', {'w': Evil()}, {})
class V:  # a view of a view: legal bounds against the view, past its one-float storage
    def __init__(s, base, n): s.a = (base, 0, (n,), (1,), False, collections.OrderedDict())
    def __reduce__(s): return (torch._utils._rebuild_tensor_v2, s.a)
class Z:
    def __init__(s, st, n): s.a = (st, 0, (n,), (0,), False, collections.OrderedDict())
    def __reduce__(s): return (torch._utils._rebuild_tensor_v2, s.a)
crafted('view-of-view.pth', {'w': V(Z(St('0', 1), 4096), 4096)}, {'0': b'\0\0\x80\x3f'})
deep = ()
for _ in range(300): deep = (deep,)
crafted('deep.pth', {'w': deep}, {})
loop = []; loop.append(loop)
crafted('cycle.pth', {'w': loop}, {})
print(json.dumps({'sd': saved, 'net': out(net.state_dict()), 'views': out({'t': base.t(), 'half': base[1:], 'p': torch.ones(2), 'h': base.half()})}))
`;

test.serial('PyTorch files as the published codes save them: OrderedDict, GPU-saved, wrapped checkpoints; crafted files fail safely', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  const ref = JSON.parse(runPythonCode(`ROOT = ${JSON.stringify(root)}\n${INTEROP_PY}`)) as Record<string, Record<string, number[]>>;
  const same = (got: Record<string, import('../lib/index.js').Tensor>, want: Record<string, number[]>, what: string) => {
    t.deepEqual(Object.keys(got), Object.keys(want), what);
    for (const k of Object.keys(want)) t.deepEqual(Array.from(got[k].to('float32').contiguous().toArray() as Float32Array), want[k].map(Math.fround), `${what}: ${k}`);
    dispose(Object.values(got));
  };
  // torch.save(model.state_dict()) of a model on a GPU: an OrderedDict (its _metadata dropped), read onto the CPU
  const ordered = await readTorchStateDict(join(root, 'ordered-cuda.pth'));
  t.is(ordered['0.weight'].device, 'cpu');
  t.is(ordered['1.num_batches_tracked'].dtype, 'int64');
  same(ordered, ref.sd, 'OrderedDict from cuda:0');
  // BCP's save_net_opt: the only entry that is a state dict, beside an optimizer state and a numpy scalar
  same(await readTorchStateDict(join(root, 'bcp.pth')), ref.net, "{'net', 'opt'}");
  same(await readTorchStateDict(join(root, 'bcp.pth'), { key: 'net' }), ref.net, "key 'net'");
  await t.throwsAsync(readTorchStateDict(join(root, 'bcp.pth'), { key: 'opt' }), { message: /readTorchStateDict\(\): '.*bcp\.pth': entry 'opt' holds 'state', a dict, not a tensor/ });
  await t.throwsAsync(readTorchStateDict(join(root, 'bcp.pth'), { key: 'best' }), { message: /entry 'best' is a numpy\.core\.multiarray\.scalar, not a state dict|entry 'best' is a numpy\._core\.multiarray\.scalar, not a state dict/ });
  await t.throwsAsync(readTorchStateDict(join(root, 'two.pth')), { message: /readTorchStateDict\(\): '.*two\.pth' holds several state dicts \('a', 'b'\): pass the one to read as option 'key'/ });
  same(await readTorchStateDict(join(root, 'two.pth'), { key: 'b' }), { w: [0, 1, 2, 3, 4, 5] }, "key 'b'");
  await t.throwsAsync(readTorchStateDict(join(root, 'two.pth'), { key: 'c' }), { message: /has no entry 'c'/ });
  // views of one storage, a parameter, half precision
  const views = await readTorchStateDict(join(root, 'views.pth'));
  t.is(views.h.dtype, 'float16');
  same(views, ref.views, 'views');
  // the legacy format, a storage whose record is shorter than it claims, an arbitrary global
  await t.throwsAsync(readTorchStateDict(join(root, 'legacy.pth')), { message: /'.*legacy\.pth' is in the legacy torch\.save format \(PyTorch before 1\.6, or _use_new_zipfile_serialization=False\)/ });
  await t.throwsAsync(readTorchStateDict(join(root, 'lying.pth')), { message: /readTorchStateDict\(\): '.*lying\.pth' is not a readable torch file: storage '0' declares 1073741824 bytes but its record holds 16/ });
  await t.throwsAsync(readTorchStateDict(join(root, 'evil.pth')), { message: /readTorchStateDict\(\): '.*evil\.pth': the state dict holds 'w', a posix\.system, not a tensor/ });
  t.false(existsSync(join(root, 'PWNED')), 'nothing in the file ran');
  // a view built on a view (it grew the storage with uninitialised memory), deep nesting (its recursive
  // destruction overflowed the stack), a reference cycle (leaked on every read)
  await t.throwsAsync(readTorchStateDict(join(root, 'view-of-view.pth')), { message: /'.*view-of-view\.pth' is not a readable torch file: a tensor without its storage/ });
  await t.throwsAsync(readTorchStateDict(join(root, 'deep.pth')), { message: /'.*deep\.pth' is not a readable torch file: values nested more than 100 deep/ });
  await t.throwsAsync(readTorchStateDict(join(root, 'cycle.pth')), { message: /'.*cycle\.pth' is not a readable torch file: a list or dict is changed after it was used/ });
  // damaged semiseg checkpoints: one line naming the file and what is wrong
  await t.throwsAsync(readCheckpointInfo(join(root, 'bad-meta.ckpt')), { message: /^readCheckpointInfo\(\): '.*bad-meta\.ckpt' is a damaged semiseg checkpoint: its metadata is not JSON/ });
  await t.throwsAsync(readCheckpointInfo(join(root, 'no-version.ckpt')), { message: /^readCheckpointInfo\(\): '.*no-version\.ckpt' is a damaged semiseg checkpoint: it has no 'version'/ });
});

test.serial("a state dict saved from nn.DataParallel ('module.' prefixes) is refused with the reason", (t) => {
  const net = nets.UNet2D({ features: [2, 2, 2, 2, 2] });
  const sd = net.stateDict();
  const wrapped = Object.fromEntries(Object.entries(sd).map(([k, v]) => [`module.${k}`, v]));
  t.throws(() => net.loadStateDict(wrapped), { message: /unexpected keys \(\d+\): .*\(the given keys are this network's with the prefix 'module\.' that nn\.DataParallel and DistributedDataParallel add: remove it from the names first\)/ });
  dispose(Object.values(sd));
  net.dispose();
});

test.serial('safetensors round-trip every dtype and reject truncated files', async (t) => {
  const p = join(root, 'w.safetensors');
  const dict = {
    a: randn([3, 4]),
    h: tensor([1.5, -2.25], { dtype: 'float16' }),
    b: tensor([3.140625], { dtype: 'bfloat16' }),
    i: tensor(new BigInt64Array([1n, -(2n ** 40n)])),
    j: tensor(new Int32Array([7])),
    u: tensor(new Uint8Array([0, 255])),
    m: tensor([true, false, true]),
    d: tensor(new Float64Array([Math.PI])),
  };
  await writeSafetensors(p, dict, { producer: 'semiseg' });
  const back = await readSafetensors(p);
  t.deepEqual(back.metadata, { producer: 'semiseg' });
  for (const [k, v] of Object.entries(dict)) {
    t.is(back.tensors[k].dtype, v.dtype, k);
    t.deepEqual(back.tensors[k].shape, v.shape, k);
    t.deepEqual(back.tensors[k].toArray(), v.toArray(), k);
  }
  if (referencePython) {
    // PyTorch's safetensors package reads what semiseg wrote, and semiseg reads what it writes
    const fromPy = join(root, 'py.safetensors');
    const out = runPythonCode(`
import json, torch
from safetensors.torch import load_file, save_file
d = load_file(${JSON.stringify(p)})
print(json.dumps({k: [str(v.dtype), list(v.shape), v.float().flatten().tolist()] for k, v in d.items()}))
save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "h": torch.tensor([0.5, 2.0], dtype=torch.float16),
           "b": torch.tensor([True, False])}, ${JSON.stringify(fromPy)}, metadata={"by": "pytorch"})`);
    const parsed = JSON.parse(out) as Record<string, [string, number[], number[]]>;
    t.deepEqual(parsed.h, ['torch.float16', [2], [1.5, -2.25]]);
    t.deepEqual(parsed.b, ['torch.bfloat16', [1], [3.140625]]);
    t.deepEqual(parsed.i[2], [1, -(2 ** 40)]);
    t.deepEqual(parsed.a[1], [3, 4]);
    const py = await readSafetensors(fromPy);
    t.deepEqual(py.metadata, { by: 'pytorch' });
    t.deepEqual(Array.from(py.tensors.w.toArray() as Float32Array), [0, 1, 2, 3, 4, 5]);
    t.deepEqual(py.tensors.w.shape, [2, 3]);
    t.deepEqual(Array.from(py.tensors.h.toArray() as Float32Array), [0.5, 2]);
    t.is(py.tensors.b.dtype, 'bool');
    dispose(py.tensors);
  }
  const truncated = join(root, 'cut.safetensors');
  writeFileSync(truncated, readFileSync(p).subarray(0, readFileSync(p).length - 10));
  await t.throwsAsync(readSafetensors(truncated), { message: /readSafetensors\(\): '.*cut\.safetensors' is not a valid safetensors file: '.*' has data offsets .* outside the data \(truncated\?\)/ });
  writeFileSync(truncated, Buffer.from([1, 2, 3]));
  await t.throwsAsync(readSafetensors(truncated), { message: /3 bytes is too short/ });
  // headers that are JSON but not a safetensors header: one line naming the file, no TypeError
  const withHeader = (header: unknown, data = Buffer.alloc(8)) => {
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(truncated, Buffer.concat([len, json, data]));
    return readSafetensors(truncated);
  };
  const invalid = (why: string) => ({ message: new RegExp(`^readSafetensors\\(\\): '.*cut\\.safetensors' is not a valid safetensors file: ${why}`) });
  await t.throwsAsync(withHeader(null), invalid('its header is not a JSON object'));
  await t.throwsAsync(withHeader({ w: null }), invalid("the entry of 'w' is not an object"));
  await t.throwsAsync(withHeader({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }), invalid("'w' has shape \\[-2\\], not a list of sizes"));
  await t.throwsAsync(withHeader({ w: { dtype: 'F32', shape: [2], data_offsets: [0.5, 8] } }), invalid("'w' has data offsets \\[0\\.5,8\\], not two byte offsets"));
  await t.throwsAsync(withHeader({ w: { dtype: 'constructor', shape: [2], data_offsets: [0, 8] } }), invalid("'w' has dtype constructor, which semiseg does not read"));
  // a tensor named __proto__ is an entry like any other (it became the dict's prototype, never disposed)
  const proto = await withHeader(JSON.parse('{"__proto__": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'));
  t.deepEqual(Object.keys(proto.tensors), ['__proto__']);
  t.deepEqual(Array.from(proto.tensors.__proto__.toArray() as Float32Array), [0, 0]);
  dispose(Object.values(proto.tensors));
  dispose([dict, back.tensors]);
});

test.serial('trainable tensors outside a network round-trip in place, and a missing or reshaped one is named', async (t) => {
  const p = join(root, 'tensors.ckpt');
  const net = nets.UNet2D({ inChannels: 1, outChannels: 2, features: [2, 4, 4, 4, 4] });
  const queries = randn([3, 8]).setRequiresGrad();
  const bias = randn([5]);
  const saved = [Array.from(queries.toArray() as Float32Array), Array.from(bias.toArray() as Float32Array)];
  await saveCheckpoint(p, { network: net, iteration: 1, tensors: { 'sspa.queries': queries, 'sspa.s0.bias': bias } });
  t.is(queries.isDisposed, false, 'the caller keeps its tensors');
  // new values in the same tensors (the handles an optimizer would hold), then restore in place
  const q2 = randn([3, 8]);
  const b2 = randn([5]);
  queries.copyFrom(q2);
  bias.copyFrom(b2);
  t.true(maxAbsDiff(queries.toArray() as Float32Array, saved[0]) > 0);
  await loadCheckpoint(p, { network: net, tensors: { 'sspa.queries': queries, 'sspa.s0.bias': bias } });
  t.deepEqual(Array.from(queries.toArray() as Float32Array), saved[0]);
  t.deepEqual(Array.from(bias.toArray() as Float32Array), saved[1]);
  t.true(queries.requiresGrad, 'still a leaf that trains');
  const other = randn([4, 8]);
  await t.throwsAsync(loadCheckpoint(p, { network: net, tensors: { 'sspa.queries': other } }), {
    message: /loadCheckpoint\(\): '.*tensors.ckpt' holds tensor 'sspa.queries' of shape \[3, 8\], expected \[4, 8\]/,
  });
  await t.throwsAsync(loadCheckpoint(p, { network: net, tensors: { 'uscl.queries': other } }), {
    message: /loadCheckpoint\(\): '.*tensors.ckpt' holds no tensor 'uscl.queries'/,
  });
  t.throws(() => queries.copyFrom(other), { message: /copyFrom\(\): argument 'source' must have shape \[3, 8\], got \[4, 8\]/ });
  dispose([queries, bias, q2, b2, other]);
  net.dispose();
});
