// The synthetic cardiac generator: deterministic, all four classes present, anatomy nested as intended.
import test from 'ava';

import { syntheticCardiac } from '../lib/demo/synthetic.js';

test('synthetic cardiac slices are deterministic and hold every class', (t) => {
  const a = syntheticCardiac({ n: 4, size: 48, seed: 3 });
  const b = syntheticCardiac({ n: 4, size: 48, seed: 3 });
  const c = syntheticCardiac({ n: 4, size: 48, seed: 4 });
  t.deepEqual(a.images, b.images);
  t.deepEqual(a.labels, b.labels);
  t.notDeepEqual(a.labels, c.labels);
  for (let s = 0; s < 4; s++) {
    const slice = a.labels.subarray(s * 48 * 48, (s + 1) * 48 * 48);
    const counts = [0, 0, 0, 0];
    for (const l of slice) counts[l]++;
    t.true(counts.every((n) => n > 0), `slice ${s} counts ${counts}`);
    // the LV blood pool is smaller than the image and surrounded by myocardium: its bright mean exceeds the wall's
    let lv = 0;
    let myo = 0;
    for (let i = 0; i < slice.length; i++) {
      if (slice[i] === 3) lv += a.images[s * 48 * 48 + i] / counts[3];
      if (slice[i] === 2) myo += a.images[s * 48 * 48 + i] / counts[2];
    }
    t.true(lv > myo + 0.3, `LV ${lv} vs myocardium ${myo}`);
  }
});
