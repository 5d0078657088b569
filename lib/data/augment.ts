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
  const d = patch.length;
  const shape = label.shape.slice(-d);
  const needsPad = shape.some((s, k) => s <= patch[k]);
  const pads = shape.map((s, k) => (needsPad ? Math.max(Math.floor((patch[k] - s) / 2) + 3, 0) : 0));
  const starts = shape.map((s, k) => randint(rand, 0, s + 2 * pads[k] - patch[k]));
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
    let [im, lb] = [image, label];
    if (rand() > 0.5) {
      const k = randint(rand, 0, 4);
      const axis = randint(rand, 0, 2);
      [im, lb] = [im, lb].map((t) => t.rot90(k, [t.rank - 2, t.rank - 1]).flip(t.rank - 2 + axis)) as [Tensor, Tensor];
    } else {
      const rotate = rand() > 0.5; // a second draw, as the reference code makes
      if (rotate) {
        const angle = randint(rand, -20, 20);
        [im, lb] = [rotateNearest(im, angle), rotateNearest(lb, angle)];
      }
    }
    return [zoomNearest(im, size), zoomNearest(lb, size)] as [Tensor, Tensor];
  });
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
