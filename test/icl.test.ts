// ICL's training-only modules (SSPA / USCL) and its four losses against a torch.nn reference
// (benchmarks/reference/icl_reference.py): maps, updated queries (also against nn.MultiheadAttention),
// loss values and every gradient, at the spec's scales (128 / 64 / 32 channels, 8 / 4 / 2 heads).
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, manualSeed, randint, randn, readTorchStateDict, setNumThreads, trainers, writeTorchStateDict, type Tensor } from '../lib/index.js';
import { runPython } from './helpers/python.js';
import { assertClose, referencePython } from './helpers/reference.js';

setNumThreads(1);

test('SSPA, USCL and the ICL losses equal the torch.nn reference: maps, queries, losses and gradients', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  manualSeed(11);
  const C = 4;
  const B = 4;
  const L = 2;
  const size = [32, 32];
  const sspa = new trainers.IclAdaptor(C, { queries: true });
  const uscl = new trainers.IclAdaptor(C, { queries: false });
  const q0 = randn([C, 128]);
  sspa.params.queries.copyFrom(q0); // non-zero, so the classes differ from the first scale on
  const feats = trainers.ICL_SCALES.map((s, i) => randn([B, s.channels, 4 << i, 4 << i]).setRequiresGrad());
  const logits = randn([B, C, ...size]).setRequiresGrad();
  const labels = randint([B, ...size], 0, C);
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-icl-'));
  const input: Record<string, Tensor> = { logits, labels };
  feats.forEach((f, i) => (input[`feature${i}`] = f));
  for (const [k, v] of Object.entries(sspa.params)) input[`sspa.${k}`] = v;
  for (const [k, v] of Object.entries(uscl.params)) input[`uscl.${k}`] = v;
  await writeTorchStateDict(join(dir, 'icl_in.pt'), input);
  const dice = { squared: true, perSample: false, smooth: 1e-5, includeBackground: true };
  runPython('icl_reference.py', dir, JSON.stringify({ classes: C, scales: trainers.ICL_SCALES.map((s) => [s.channels, s.heads]), labeled: L, weight: 50, smooth: dice.smooth }));
  const ref = await readTorchStateDict(join(dir, 'icl_out.pt'));

  const labeled = feats.map((f) => f.narrow(0, 0, L));
  const unlabeled = feats.map((f) => f.narrow(0, L, B - L));
  const sl = sspa.forward(labeled);
  const su = sspa.forward(unlabeled);
  const guide = sl.queries.map((q) => q.mean(0));
  const uu = uscl.forward(unlabeled, guide);
  const r = trainers.iclLosses({ logits, labels, labeled: L, sspaLabeled: sl.maps, sspaUnlabeled: su.maps, usclUnlabeled: uu.maps }, { dice, iclConsistency: 50 });
  for (const k of ['seg', 'aux', 'pse', 'cons', 'total'] as const) assertClose(t, k, r[k], ref[k], 1e-6, 1e-5);
  t.true(Number(r.cons.item()) > 0 && Number(r.pse.item()) > 0, 'the unsupervised terms are not trivially zero');
  for (let i = 0; i < 3; i++) {
    assertClose(t, `SSPA labeled map ${i}`, sl.maps[i], ref[`sspa_l_map${i}`], 1e-5, 1e-4);
    assertClose(t, `SSPA labeled queries ${i}`, sl.queries[i], ref[`sspa_l_queries${i}`], 1e-5, 1e-4);
    assertClose(t, `SSPA labeled queries ${i} (nn.MultiheadAttention)`, sl.queries[i], ref[`sspa_l_mha${i}`], 1e-5, 1e-4);
    assertClose(t, `USCL map ${i}`, uu.maps[i], ref[`uscl_map${i}`], 1e-5, 1e-4);
  }
  r.total.backward();
  feats.forEach((f, i) => assertClose(t, `d/d feature ${i}`, f.grad!, ref[`grad_feature${i}`], 1e-6, 1e-3));
  assertClose(t, 'd/d logits', logits.grad!, ref.grad_logits, 1e-7, 1e-3);
  let checked = 0;
  for (const [name, mod] of [['sspa', sspa], ['uscl', uscl]] as const) {
    for (const [k, p] of Object.entries(mod.params)) {
      assertClose(t, `d/d ${name}.${k}`, p.grad!, ref[`grad_${name}.${k}`], 1e-6, 1e-3);
      checked++;
    }
  }
  t.is(checked, Object.keys(sspa.params).length + Object.keys(uscl.params).length);
  dispose([q0, ...feats, logits, labels, ...labeled, ...unlabeled, ...sl.maps, ...sl.queries, ...su.maps, ...su.queries, ...guide, ...uu.maps, ...uu.queries, ...Object.values(r), ...Object.values(ref)]);
  sspa.dispose();
  uscl.dispose();
});

test('ICL modules refuse features of the wrong width and a USCL without queries, naming them', (t) => {
  const sspa = new trainers.IclAdaptor(3, { queries: true });
  const uscl = new trainers.IclAdaptor(3, { queries: false });
  const wrong = [randn([1, 64, 4, 4]), randn([1, 64, 8, 8]), randn([1, 32, 16, 16])];
  t.throws(() => sspa.forward(wrong), { message: 'IclAdaptor: scale 0 expects 128 feature channels, got 64' });
  t.throws(() => sspa.forward(wrong.slice(1)), { message: 'IclAdaptor: expected 3 feature maps, got 2' });
  t.throws(() => uscl.forward(wrong), { message: "IclAdaptor: this module has no queries of its own; pass them" });
  t.throws(() => trainers.resolveConfig('icl-acdc', { network: 'VNet3D', size: [32, 32, 32] }), { message: /argument 'network' must be 'UNet2D' for icl/ });
  dispose(wrong);
  sspa.dispose();
  uscl.dispose();
});
