/**
 * sin and cos of an angle in degrees, computed as cephes' sindg / cosdg (what scipy.special and so
 * scipy.ndimage.rotate use): reduction by octants of 45 degrees, then cephes' polynomials. Matching them
 * bit for bit matters: nearest-neighbour rotations round coordinates that can land on .5 exactly.
 */
const SIN = [1.58962301572218447952e-10, -2.50507477628503540135e-8, 2.75573136213856773549e-6, -1.98412698295895384658e-4, 8.33333333332211858862e-3, -1.66666666666666307295e-1];
const COS = [1.13678171382044553091e-11, -2.08758833757683644217e-9, 2.75573155429816611547e-7, -2.48015872936186303776e-5, 1.3888888888880666676e-3, -4.16666666666666348141e-2, 4.99999999999999999798e-1];
const PI180 = 1.74532925199432957692e-2;

function polevl(x: number, coef: number[]): number {
  let ans = coef[0];
  for (let i = 1; i < coef.length; i++) ans = ans * x + coef[i];
  return ans;
}

// octant j (after cephes' mapping) and the remainder z in radians
function reduce(x: number): [number, number] {
  let y = Math.floor(x / 45);
  let z = y - Math.floor(y / 16) * 16;
  let j = z;
  if (j & 1) {
    j += 1;
    y += 1;
  }
  j &= 7;
  z = (x - y * 45) * PI180;
  return [j, z];
}

export function sindg(angle: number): number {
  let sign = 1;
  let x = angle;
  if (x < 0) {
    x = -x;
    sign = -1;
  }
  let [j, z] = reduce(x);
  if (j > 3) {
    sign = -sign;
    j -= 4;
  }
  const zz = z * z;
  const y = j === 1 || j === 2 ? 1 - zz * polevl(zz, COS) : z + z * (zz * polevl(zz, SIN));
  return sign < 0 ? -y : y;
}

export function cosdg(angle: number): number {
  let sign = 1;
  let [j, z] = reduce(Math.abs(angle));
  if (j > 3) {
    j -= 4;
    sign = -sign;
  }
  if (j > 1) sign = -sign;
  const zz = z * z;
  const y = j === 1 || j === 2 ? z + z * (zz * polevl(zz, SIN)) : 1 - zz * polevl(zz, COS);
  return sign < 0 ? -y : y;
}
