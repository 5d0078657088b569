/**
 * Training augmentations of the reference code (spec 1.4), on tensors, matching numpy / scipy exactly:
 * rot90 and flip, rotation by an angle with nearest neighbour and a constant-0 border
 * (scipy.ndimage.rotate(order=0, reshape=False)), resizing with scipy's zoom(order=0) coordinate rule
 * (corner-aligned: in = round(out * (in_len - 1) / (out_len - 1))), and the random crop with UA-MT's padding
 * rule. Spatial dimensions are the last ones; leading dimensions (channels) are carried along.
 */
import { callOp } from '../call.js';
import { tensor } from '../create.js';
import { prng } from '../demo/synthetic.js';
import { cosdg, sindg } from './degrees.js';
import { tidy } from '../scope.js';
import { Tensor, tensorArg, wrap } from '../tensor.js';
import { checkFinite, checkInt, checkIntList } from '../validate.js';

export type Random = () => number;
export { prng };

/** numpy.random.randint(lo, hi) from a uniform [0, 1) source. */
export function randint(rand: Random, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo));
}


/** scipy.ndimage.rotate(x, angle, axes=(-2, -1) plane, order=0, reshape=False, mode='constant', cval=0). */
export function rotateNearest(x: Tensor, angle: number): Tensor {
  const fn = 'rotateNearest';
  tensorArg(fn, 'input', x);
  checkFinite(fn, 'angle', angle);
  const [h, w] = x.shape.slice(-2);
  const c = cosdg(angle);
  const s = sindg(angle);
  const center = [(h - 1) / 2, (w - 1) / 2];
  // input = M @ out + offset, offset = in_center - M @ out_center (numpy's matmul order)
  const m = [c, s, -s, c];
  const offset = [center[0] - (m[0] * center[0] + m[1] * center[1]), center[1] - (m[2] * center[0] + m[3] * center[1])];
  return tidy(() => wrap(callOp('affineNearest', [x.handle(), tensor(m, { dtype: 'float64' }).handle(), tensor(offset, { dtype: 'float64' }).handle(), [h, w]])));
}

/**
 * scipy.ndimage.zoom(order=0) to `size` (the last size.length dimensions), its corner-aligned rule:
 * in = floor(out * (in_len - 1) / (out_len - 1) + 0.5). As in scipy's default mode='constant', a coordinate
 * past the last voxel by floating-point error (49 * (63 / 49) = 63.00000000000001) reads 0, not the edge.
 */
export function zoomNearest(x: Tensor, size: number[]): Tensor {
  const fn = 'zoomNearest';
  tensorArg(fn, 'input', x);
  checkIntList(fn, 'size', size, 1);
  const first = x.rank - size.length;
  if (first < 0) throw new RangeError(`${fn}(): argument 'size' has ${size.length} entries for a ${x.rank}-D input`);
  return tidy(() => {
    let out = x;
    size.forEach((n, k) => {
      const dim = first + k;
      const len = x.shape[dim];
      const zoom = n > 1 ? (len - 1) / (n - 1) : 1;
      let outside = false;
      const index = BigInt64Array.from({ length: n }, (_, o) => {
        const c = o * zoom;
        if (c > len - 1) {
          outside = true;
          return BigInt(len); // the zero slice appended below
        }
        return BigInt(Math.floor(c + 0.5));
      });
      if (outside) out = padZeros(out, size.map(() => 0), size.map((_, j) => (j === k ? 1 : 0)));
      out = out.indexSelect(dim, tensor(index));
    });
    return out === x ? x.clone() : out;
  });
}

/**
 * UA-MT's RandomCrop: when any side is <= the patch, pad every side by max((patch - side) // 2 + 3, 0)
 * with zeros, then crop at randint(0, side - patch) per axis. Returns [image, label] crops.
 */
export function randomCrop(image: Tensor, label: Tensor, patch: number[], rand: Random): [Tensor, Tensor] {
  const fn = 'randomCrop';
  tensorArg(fn, 'image', image);
  tensorArg(fn, 'label', label);
  checkIntList(fn, 'patch', patch, 1);
  const shape = label.shape.slice(-patch.length);
  const pads = uaMtPads(shape, patch);
  const starts = shape.map((s, k) => randint(rand, 0, s + 2 * pads[k] - patch[k]));
  return cropBoth(image, label, pads, starts, patch);
}

/** UA-MT's padding rule: when any side is at most the patch, (patch - side) // 2 + 3 zeros on both ends of every side that needs them. */
function uaMtPads(shape: number[], patch: number[]): number[] {
  const needsPad = shape.some((s, k) => s <= patch[k]);
  return shape.map((s, k) => (needsPad ? Math.max(Math.floor((patch[k] - s) / 2) + 3, 0) : 0));
}

/** Image and label zero-padded by `pads`, then cut to `patch` from `starts` (the last patch.length dimensions). */
function cropBoth(image: Tensor, label: Tensor, pads: number[], starts: number[], patch: number[]): [Tensor, Tensor] {
  const d = patch.length;
  const crop = (t: Tensor) =>
    tidy(() => {
      let out = pads.some((p) => p > 0) ? padZeros(t, pads, pads) : t;
      starts.forEach((s0, k) => (out = out.narrow(t.rank - d + k, s0, patch[k])));
      return out.contiguous();
    });
  return [crop(image), crop(label)];
}

/** Zero padding of the last before.length dimensions: before[k] zeros ahead of dimension k, after[k] behind. */
function padZeros(t: Tensor, before: number[], after: number[]): Tensor {
  const d = before.length;
  let out = t;
  before.forEach((b, k) => {
    const dim = t.rank - d + k;
    const zeros = (n: number) => {
      const shape = out.shape;
      shape[dim] = n;
      return wrap(callOp('zeros', [shape, out.dtype, out.device])).handle();
    };
    const parts = [...(b > 0 ? [zeros(b)] : []), out.handle(), ...(after[k] > 0 ? [zeros(after[k])] : [])];
    if (parts.length > 1) out = wrap(callOp('cat', [parts, dim]));
  });
  return out;
}

/** The ACDC training augmentation of BCP / ICL / ACTION, then the resize to `size` (spec 1.4). */
export function acdcAugment(image: Tensor, label: Tensor, rand: Random, size: [number, number] = [256, 256]): [Tensor, Tensor] {
  return tidy(() => {
    const [im, lb] = acdcRotateFlip(image, label, rand);
    return [zoomNearest(im, size), zoomNearest(lb, size)] as [Tensor, Tensor];
  });
}

/**
 * The draws of the ACDC augmentation without its resize: rot90 + flip, or a rotation by -20..20 degrees
 * (nearest, constant-0 border, same shape), or nothing.
 */
export function acdcRotateFlip(image: Tensor, label: Tensor, rand: Random): [Tensor, Tensor] {
  return tidy(() => {
    if (rand() > 0.5) {
      const k = randint(rand, 0, 4);
      const axis = randint(rand, 0, 2);
      return [image, label].map((t) => t.rot90(k, [t.rank - 2, t.rank - 1]).flip(t.rank - 2 + axis)) as [Tensor, Tensor];
    }
    const rotate = rand() > 0.5; // a second draw, as the reference code makes
    if (!rotate) return [image.clone(), label.clone()] as [Tensor, Tensor];
    const angle = randint(rand, -20, 20);
    return [rotateNearest(image, angle), rotateNearest(label, angle)] as [Tensor, Tensor];
  });
}

/**
 * A crop of `patch` (the last patch.length dimensions) centred on a foreground voxel (label > 0) drawn
 * uniformly, clamped inside, with UA-MT's padding rule when a side is too small; a random crop when the
 * label has no foreground.
 */
export function foregroundCrop(image: Tensor, label: Tensor, patch: number[], rand: Random): [Tensor, Tensor] {
  const d = patch.length;
  const mask = tidy(() => label.gt(0).to('uint8').contiguous().data() as Uint8Array);
  let count = 0;
  for (let i = 0; i < mask.length; i++) count += mask[i];
  if (count === 0) return randomCrop(image, label, patch, rand);
  let target = randint(rand, 0, count);
  let flat = 0;
  for (; flat < mask.length; flat++) if (mask[flat] && target-- === 0) break;
  const shape = label.shape.slice(-d);
  const centre: number[] = new Array<number>(d);
  for (let k = d - 1, rest = flat % shape.reduce((a, b) => a * b, 1); k >= 0; k--) {
    centre[k] = rest % shape[k];
    rest = Math.floor(rest / shape[k]);
  }
  const pads = uaMtPads(shape, patch);
  const starts = shape.map((s, k) => Math.min(Math.max(0, centre[k] + pads[k] - Math.floor(patch[k] / 2)), s + 2 * pads[k] - patch[k]));
  return cropBoth(image, label, pads, starts, patch);
}

/**
 * Slices kept at their spacing, made fit for a 2-D network of four halvings: the last two dimensions
 * zero-padded (centred) to at least `size` and to multiples of 16. `restore` cuts a result of the padded
 * shape back to the original one.
 */
export function padSlices(t: Tensor, size: number[]): { padded: Tensor; restore: (x: Tensor) => Tensor } {
  const hw = t.shape.slice(-2);
  const target = hw.map((s, k) => Math.ceil(Math.max(size[k], s) / 16) * 16);
  const before = hw.map((s, k) => Math.floor((target[k] - s) / 2));
  const after = hw.map((s, k) => target[k] - s - before[k]);
  const padded = tidy(() => (before.some((b) => b > 0) || after.some((a) => a > 0) ? padZeros(t, before, after) : t.clone()));
  const restore = (x: Tensor) => tidy(() => x.narrow(x.rank - 2, before[0], hw[0]).narrow(x.rank - 1, before[1], hw[1]).contiguous());
  return { padded, restore };
}

/** The LA training augmentation of UA-MT / BCP: rot90 in axes (0, 1), a flip on axis 0 or 1, a random crop. */
export function laAugment(image: Tensor, label: Tensor, rand: Random, patch: [number, number, number] = [112, 112, 80]): [Tensor, Tensor] {
  checkInt('laAugment', 'image rank', image.rank, 3);
  return tidy(() => {
    const k = randint(rand, 0, 4);
    const axis = randint(rand, 0, 2);
    const [im, lb] = [image, label].map((t) => t.rot90(k, [t.rank - 3, t.rank - 2]).flip(t.rank - 3 + axis));
    return randomCrop(im, lb, patch, rand);
  });
}
