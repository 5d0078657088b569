/**
 * sin and cos of an angle in degrees, computed as cephes' sindg / cosdg (what scipy.special and so
 * scipy.ndimage.rotate use): reduction by octants of 45 degrees, then cephes' polynomials. Matching them
 * bit for bit matters: nearest-neighbour rotations round coordinates that can land on .5 exactly.
 */
// cephes' coefficients, written as the doubles they round to
const SIN = [1.5896230157221844e-10, -2.5050747762850355e-8, 0.0000027557313621385676, -0.0001984126982958954, 0.008333333333322118, -0.1666666666666663];
const COS = [1.1367817138204455e-11, -2.0875883375768363e-9, 2.7557315542981663e-7, -0.00002480158729361863, 0.0013888888888880667, -0.04166666666666664, 0.5];
const PI180 = 0.017453292519943295;

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
  const [octant, z] = reduce(x);
  let j = octant;
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
  const [octant, z] = reduce(Math.abs(angle));
  let j = octant;
  if (j > 3) {
    j -= 4;
    sign = -sign;
  }
  if (j > 1) sign = -sign;
  const zz = z * z;
  const y = j === 1 || j === 2 ? z + z * (zz * polevl(zz, SIN)) : 1 - zz * polevl(zz, COS);
  return sign < 0 ? -y : y;
}
