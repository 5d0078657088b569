/** Where the real ACDC / LA data is: SEMISEG_DATA, else ../shared/data beside the checkout; null if absent. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { repoRoot } from './reference.js';

export const dataDir: string | null = [process.env.SEMISEG_DATA, join(repoRoot, '..', 'shared', 'data')]
  .filter((d): d is string => Boolean(d))
  .find((d) => existsSync(join(d, 'ACDC')) && existsSync(join(d, 'LA'))) ?? null;
