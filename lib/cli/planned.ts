/**
 * The command line's side of Decathlon / nnU-Net folders: `semiseg plan`, the recipe of a method on a
 * planned dataset, and the training data (plan.json written into the run folder, reused on --resume).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type Command, InvalidArgumentError } from 'commander';

import { isImageDataset, readImageDataset, type ImageDataset } from '../data/folders.js';
import { writeFileAtomic } from '../io/atomic.js';
import { fingerprintDataset } from '../plan/fingerprint.js';
import { checkPlan, describePlan, planFromFingerprint, type Plan } from '../plan/plan.js';
import { RECIPES, type TrainConfig } from '../trainers/recipes.js';
import { UsageError } from './options.js';

export { isImageDataset };

/** Method names of the command line and the trainers' names. */
export const CLI_METHODS: Record<string, string> = {
  supervised: 'supervised',
  mt: 'meanTeacher',
  meanTeacher: 'meanTeacher',
  bcp: 'bcp',
  coda: 'coda',
  icl: 'icl',
  action: 'action',
  versemi: 'versemi',
};

/**
 * The published recipe whose hyper-parameters a method uses on data of `network`'s dimensionality:
 * the ACDC recipes for 2-D, the LA ones for 3-D; Co-DA has only a 2-D recipe (its hyper-parameters then
 * drive the V-Net), ICL is 2-D only, VerSemi 3-D only.
 */
export function methodRecipe(method: string, network: 'UNet2D' | 'VNet3D'): string {
  const m = CLI_METHODS[method];
  if (!m) throw new UsageError(`--method: unknown method '${method}' (one of supervised, mt, bcp, coda, icl, action, versemi)`);
  const prefix = method === 'meanTeacher' ? 'mt' : method;
  if (network === 'UNet2D') {
    if (m === 'versemi') throw new UsageError("--method versemi trains the 3-D V-Net, but the plan chose the 2-D U-Net (set --set plan.network=VNet3D)");
    return `${prefix}-acdc`;
  }
  if (m === 'icl') throw new UsageError('--method icl trains the 2-D U-Net (its modules attach to its decoder), but the plan chose the 3-D V-Net (set --set plan.network=UNet2D)');
  if (m === 'coda') return 'coda-acdc';
  return `${prefix}-la`;
}

export interface PlanOptions {
  /** plan overrides (`--set plan.<key>=...`) */
  overrides?: Record<string, unknown>;
  /** --size */
  size?: number[];
  device?: string;
  /** progress of the fingerprint (a case read) */
  onCase?: (done: number, total: number) => void;
}

/** Reads a folder and plans it (fingerprint of every labeled case). */
export async function planDataset(dir: string, o: PlanOptions = {}): Promise<{ ds: ImageDataset; plan: Plan }> {
  const ds = readImageDataset(dir);
  const fp = await fingerprintDataset(ds, o.onCase);
  const overrides: Record<string, unknown> = { budget: o.device?.startsWith('cuda') ? 'gpu' : 'cpu', ...(o.overrides ?? {}) };
  if (o.size && o.size.length > 1) overrides.size = o.size;
  try {
    let plan = planFromFingerprint(fp, ds, overrides);
    if (o.size?.length === 1) plan = planFromFingerprint(fp, ds, { ...overrides, size: plan.size.map(() => o.size![0]) });
    return { ds, plan };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * A recipe's configuration on a planned dataset: the recipe's hyper-parameters; classes, network, sizes
 * and batch from the plan; `overrides` (the command line's) last.
 */
export function plannedConfig(recipe: string, plan: Plan, labeled: number, overrides: Partial<TrainConfig>): Partial<TrainConfig> {
  const r = RECIPES[recipe];
  const supervised = r.method === 'supervised';
  return {
    dataset: 'nifti',
    network: plan.network,
    channelsLast: plan.network === 'UNet2D' ? r.channelsLast : false,
    classes: plan.classes.length,
    size: plan.size,
    batchSize: supervised ? plan.labeledBatch : plan.batchSize,
    labeledBatch: plan.labeledBatch,
    labeled,
    valCases: undefined,
    ...overrides,
    plan,
  };
}

/** plan.json of a run folder, when there is one (a resumed run keeps its plan). */
export function readRunPlan(out: string): Plan | null {
  const path = join(out, 'plan.json');
  if (!existsSync(path)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`'${path}' is not valid JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  return checkPlan(json, path);
}

export function writeRunPlan(out: string, plan: Plan): Promise<void> {
  return writeFileAtomic(join(out, 'plan.json'), [Buffer.from(`${JSON.stringify(plan, null, 2)}\n`)]);
}

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('fingerprint a Decathlon / nnU-Net folder and print the plan training would use')
    .requiredOption('--data <dir>', 'dataset folder (dataset.json, imagesTr/, labelsTr/)')
    .option('--set <key=value>', 'override a plan setting, e.g. --set plan.spacing=[1,1,1] or --set plan.network=UNet2D (repeatable)', collectSet, {})
    .option('--size <s>', 'slice size or patch, e.g. 160 or 64x64x48')
    .option('--device <d>', 'plan for this device (cpu, cuda): sizes the patch for its budget', 'cpu')
    .option('--json', 'print the plan as JSON')
    .action(async (opts: { data: string; set: Record<string, unknown>; size?: string; device: string; json?: boolean }) => {
      if (!existsSync(opts.data)) throw new UsageError(`--data: '${opts.data}' does not exist`);
      if (!isImageDataset(opts.data)) throw new UsageError(`--data: '${opts.data}' is not a Decathlon or nnU-Net folder (dataset.json and imagesTr/ expected)`);
      const size = opts.size?.split(/[x,]/).map(Number);
      if (size && size.some((n) => !Number.isInteger(n) || n < 16)) throw new UsageError(`--size: expected sizes like 160 or 64x64x48 (each >= 16), got '${opts.size}'`);
      const tty = process.stderr.isTTY && !opts.json;
      const { plan } = await planDataset(opts.data, {
        overrides: opts.set,
        size,
        device: opts.device,
        onCase: tty ? (d, t) => process.stderr.write(`\rfingerprint: ${d}/${t} cases`) : undefined,
      });
      if (tty) process.stderr.write('\n');
      console.log(opts.json ? JSON.stringify(plan, null, 2) : describePlan(plan));
    });
}

/** `--set plan.key=value` (the plan command takes plan settings only; values are JSON or bare strings). */
function collectSet(value: string, previous: Record<string, unknown>): Record<string, unknown> {
  const eq = value.indexOf('=');
  const key = eq > 0 ? value.slice(0, eq).replace(/^plan\./, '') : '';
  if (!key) throw new InvalidArgumentError(`expected plan.key=value, got '${value}'`);
  let parsed: unknown = value.slice(eq + 1);
  try {
    parsed = JSON.parse(parsed as string);
  } catch {
    // a bare string, e.g. plan.network=UNet2D
  }
  return { ...previous, [key]: parsed };
}
