// ACTION's training-only pieces against the official code's / ReCo's way of writing them
// (benchmarks/reference/action_reference.py): the distillation KL over queue similarities, the local
// window head, the representation head and the anco InfoNCE with fixed draws (values and gradients);
// the queue's ring update; the draws' invariants; and the CutMix box.
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, manualSeed, rand, randint, randn, readTorchStateDict, setNumThreads, tensor, trainers, writeTorchStateDict, type Tensor } from '../lib/index.js';
import { runPython } from './helpers/python.js';
import { assertClose, referencePython } from './helpers/reference.js';
import { prng } from '../lib/demo/synthetic.js';

setNumThreads(1);

test('distillation, local head, representation head and anco equal the reference (values and gradients)', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  manualSeed(31);
  const C = 4;
  const student = randn([6, 512]).setRequiresGrad();
  const teacher = randn([6, 512]).setRequiresGrad();
  const queue = new trainers.ContrastQueue(36, 512);
  const temps = { studentTemperature: 0.1, teacherTemperature: 0.01 };
  const kl = trainers.distillationLoss(student, teacher, queue.keys, temps);
  kl.backward();

  const logits = randn([2, C, 96, 80]).setRequiresGrad();
  const local = new trainers.LocalHead(C, 2, { window: 64, stride: 32, pool: 8, predictor: true });
  const emb = local.forward(logits);
  t.deepEqual(emb.shape, [2 * 2 * 2, C * 64], 'windows at 0, 32 (and the last, 32) by 0, 16 (the last): 2 x 2 per image');
  const probe = randn(emb.shape);
  emb.mul(probe).sum().backward();

  const feats = [randn([2, 256, 4, 4]), randn([2, 128, 8, 8]), randn([2, 64, 16, 16])].map((f) => f.setRequiresGrad());
  const repHead = new trainers.RepresentationHead(448, 24, 2);
  const rep = repHead.forward(feats, [16, 16]);
  const labels = randint([2, 16, 16], 0, 3); // class 3 absent
  const valid = rand([2, 16, 16]).gt(0.2);
  const probs = randn([2, C, 16, 16]).mul(3).softmax(1);
  const o = { temperature: 0.5, queries: 8, negatives: 5, hardThreshold: 0.97 };
  const samples = trainers.ancoSample(rep, labels, valid, probs, o, prng(4));
  t.deepEqual(samples.present, [0, 1, 2]);
  t.is(samples.perClass.length, 3);
  const lab = Array.from(labels.reshape([-1]).toArray() as BigInt64Array, Number);
  const ok = Array.from(valid.reshape([-1]).toArray() as Uint8Array);
  for (const s of samples.perClass) {
    t.is(s.queries.length, 8);
    t.is(s.negatives.length, 40);
    t.true(s.queries.every((i) => lab[i] === s.cls && ok[i] === 1), 'queries: valid pixels of the class');
    t.true(s.negatives.every((i) => lab[i] !== s.cls && ok[i] === 1), 'negatives: valid pixels of other classes');
  }
  t.deepEqual(trainers.ancoSample(rep, labels, valid, probs, o, prng(4)), samples, 'the same seed draws the same pixels');
  t.notDeepEqual(trainers.ancoSample(rep, labels, valid, probs, o, prng(5)).perClass[0].queries, samples.perClass[0].queries);
  const anco = trainers.ancoLossWith(rep, labels, valid, samples, o);
  anco.backward();

  const dir = mkdtempSync(join(tmpdir(), 'semiseg-action-'));
  const input: Record<string, Tensor> = { student, teacher, queue: queue.keys, logits, local_probe: probe, labels, valid: valid.to('int64') };
  for (const [k, v] of Object.entries(local.params)) input[`local.${k}`] = v;
  for (const [k, v] of Object.entries(repHead.params)) input[`rep.${k}`] = v;
  feats.forEach((f, i) => (input[`feature${i}`] = f));
  const extra: Tensor[] = [];
  samples.perClass.forEach((s, k) => {
    input[`queries${k}`] = tensor(s.queries, { dtype: 'int64' });
    input[`negatives${k}`] = tensor(s.negatives, { dtype: 'int64' });
    extra.push(input[`queries${k}`], input[`negatives${k}`]);
  });
  await writeTorchStateDict(join(dir, 'action_in.pt'), input);
  const settings = { ts: 0.1, tt: 0.01, window: 64, stride: 32, pool: 8, features: 3, size: [16, 16], present: samples.present, sampled: samples.perClass.map((s) => s.cls), temperature: 0.5 };
  runPython('action_reference.py', dir, JSON.stringify(settings));
  const ref = await readTorchStateDict(join(dir, 'action_out.pt'));
  assertClose(t, 'KL', kl, ref.kl, 1e-6, 1e-5);
  assertClose(t, 'd KL / d student', student.grad, ref.grad_student, 1e-7, 1e-3);
  assertClose(t, 'd KL / d teacher (the target is not detached, as the official code)', teacher.grad, ref.grad_teacher, 1e-7, 1e-3);
  assertClose(t, 'local embeddings', emb, ref.local, 1e-5, 1e-4);
  assertClose(t, 'd / d logits through the windows', logits.grad, ref.grad_logits, 1e-7, 1e-3);
  assertClose(t, 'representation', rep, ref.rep, 1e-5, 1e-4);
  assertClose(t, 'anco', anco, ref.anco, 1e-6, 1e-5);
  feats.forEach((f, i) => assertClose(t, `d anco / d feature ${i}`, f.grad, ref[`grad_feature${i}`], 1e-8, 1e-3));
  dispose([student, teacher, kl, logits, emb, probe, ...feats, rep, labels, valid, probs, anco, input.valid, ...extra, ...Object.values(ref)]);
  queue.dispose();
  local.dispose();
  repHead.dispose();
});

test('the queue writes keys in place through a ring pointer', (t) => {
  const q = new trainers.ContrastQueue(5, 2);
  const rows = (from: number, n: number) => tensor(Array.from({ length: n * 2 }, (_, i) => from + Math.floor(i / 2)), { shape: [n, 2] });
  const a = rows(10, 3);
  q.enqueue(a);
  t.is(q.ptr, 3);
  const b = rows(20, 4); // wraps: rows 3, 4, then 0, 1
  q.enqueue(b);
  t.is(q.ptr, 2);
  t.deepEqual(Array.from(q.keys.toArray() as Float32Array).filter((_, i) => i % 2 === 0), [22, 23, 12, 20, 21]);
  const c = rows(30, 7); // larger than the queue: as if written one by one from the pointer (2), the last 5 survive
  q.enqueue(c);
  t.deepEqual(Array.from(q.keys.toArray() as Float32Array).filter((_, i) => i % 2 === 0), [33, 34, 35, 36, 32]);
  t.is(q.ptr, (2 + 7) % 5);
  t.throws(() => q.enqueue(tensor([1, 2, 3], { shape: [1, 3] })), { message: 'ContrastQueue: keys of 3 values, the queue holds 2' });
  dispose([a, b, c]);
  q.dispose();
});

test("stage 3's CutMix box covers half the image and lies inside it", (t) => {
  const like = randn([1]);
  for (let s = 0; s < 20; s++) {
    const m = trainers.actionBox([64, 48], prng(s), like);
    const area = Number(m.sum().item());
    t.true(Math.abs(area - (64 * 48) / 2) <= 64, `area ${area}`);
    t.deepEqual(m.shape, [64, 48]);
    m.dispose();
  }
  like.dispose();
});
