/**
 * semiseg checkpoints: weights, optimizer state, iteration, schedule, RNG state and the network's kind and
 * options, in one torch pickle (torch.load opens it; its "model" entry is a PyTorch state dict).
 * Writes are atomic, so a crash mid-save leaves the previous checkpoint intact.
 */
import { callSite, startNative } from '../call.js';
import { namedFromNative, namedToNative, type StateDict } from '../named.js';
import { native } from '../native.js';
import { Network } from '../nets/network.js';
import { dispose } from '../scope.js';
import { Tensor } from '../tensor.js';
import { Optimizer } from '../train/optimizer.js';
import { checkSchedule, type Schedule } from '../train/schedule.js';
import { checkBool, checkInt, checkObject, checkPath, relabel, typeError } from '../validate.js';
import { removeStaleTemporaries } from './atomic.js';

export interface CheckpointState {
  network: Network;
  optimizer?: Optimizer;
  iteration: number;
  schedule?: Schedule;
  /** Anything JSON-serialisable the caller wants back (best metric, recipe, ...). */
  extra?: Record<string, unknown>;
  /** Further networks of a method (a Mean Teacher's teacher, Co-DA's second network), by name. */
  networks?: Record<string, Network>;
  /** Further trainable tensors outside any network (the training-only modules of ICL), by name. */
  tensors?: StateDict;
}

const TENSOR_PREFIX = '@tensors/';

export interface CheckpointInfo {
  kind: 'UNet2D' | 'VNet3D' | 'VerSemi';
  options: Record<string, unknown>;
  iteration: number;
  schedule?: Schedule;
  extra?: Record<string, unknown>;
  /** The names of the further networks the checkpoint holds. */
  networks?: string[];
  savedAt: string;
  torchVersion: string;
}

export async function saveCheckpoint(path: string, state: CheckpointState): Promise<void> {
  const fn = 'saveCheckpoint';
  const p = checkPath(fn, path);
  const s = checkObject(fn, 'state', state);
  if (!(s.network instanceof Network)) throw typeError(fn, 'state.network', 'a Network', s.network);
  if (s.optimizer !== undefined && !(s.optimizer instanceof Optimizer)) throw typeError(fn, 'state.optimizer', 'an Optimizer', s.optimizer);
  const info: CheckpointInfo = {
    kind: s.network.kind,
    options: s.network.options,
    iteration: checkInt(fn, 'state.iteration', s.iteration, 0),
    schedule: s.schedule === undefined ? undefined : checkSchedule(s.schedule),
    extra: s.extra as Record<string, unknown> | undefined,
    networks: undefined,
    savedAt: new Date().toISOString(),
    torchVersion: native.buildInfo().torchVersion,
  };
  const others = checkObject(fn, 'state.networks', s.networks);
  const aux: StateDict = {};
  for (const [name, net] of Object.entries(others)) {
    if (!(net instanceof Network)) throw typeError(fn, `state.networks.${name}`, 'a Network', net);
    for (const [k, t] of Object.entries(net.stateDict())) aux[`${name}/${k}`] = t;
  }
  if (Object.keys(others).length > 0) info.networks = Object.keys(others);
  const extraTensors = checkObject(fn, 'state.tensors', s.tensors);
  const stored: StateDict = { ...aux };
  for (const [name, t] of Object.entries(extraTensors)) {
    if (!(t instanceof Tensor)) throw typeError(fn, `state.tensors.${name}`, 'a Tensor', t);
    stored[`${TENSOR_PREFIX}${name}`] = t; // the caller's: not disposed here
  }
  const model = s.network.stateDict();
  const opt: StateDict = s.optimizer ? (s.optimizer as Optimizer).stateDict() : {};
  const rng = new Tensor(native.rngState());
  try {
    const [mn, mh] = namedToNative(fn, 'model', model);
    const [on, oh] = namedToNative(fn, 'optimizer', opt);
    const [an, ah] = namedToNative(fn, 'networks', stored);
    await startNative(() => native.writeCheckpoint(p, mn, mh, on, oh, JSON.stringify(info), rng.handle(), an, ah), callSite(saveCheckpoint));
    await removeStaleTemporaries(p);
  } finally {
    dispose([model, opt, rng, aux]);
  }
}

interface Loaded {
  info: CheckpointInfo;
  model: StateDict;
  optimizer: StateDict;
  aux: StateDict;
  rng: Tensor | null;
}

async function read(path: string, fn = 'loadCheckpoint'): Promise<Loaded> {
  let c;
  try {
    c = await startNative(() => native.readCheckpoint(path), callSite(read));
  } catch (err) {
    throw relabel(err, fn, ['loadCheckpoint']);
  }
  const loaded = { model: namedFromNative(c.model), optimizer: namedFromNative(c.optimizer), aux: namedFromNative(c.aux), rng: c.rng ? new Tensor(c.rng) : null };
  let info: CheckpointInfo;
  try {
    info = JSON.parse(c.meta) as CheckpointInfo;
  } catch (err) {
    dispose([...Object.values(loaded.model), ...Object.values(loaded.optimizer), ...Object.values(loaded.aux), ...(loaded.rng ? [loaded.rng] : [])]);
    throw new Error(`${fn}(): '${path}' is a damaged semiseg checkpoint: its metadata is not JSON (${(err as Error).message})`);
  }
  return { info, ...loaded };
}

/** What a checkpoint holds, without applying it (e.g. to build the right network with nets.fromOptions). */
export async function readCheckpointInfo(path: string): Promise<CheckpointInfo> {
  const l = await read(checkPath('readCheckpointInfo', path), 'readCheckpointInfo');
  dispose([l.model, l.optimizer, l.aux, l.rng]);
  return l.info;
}

export interface LoadCheckpointOptions {
  network: Network;
  optimizer?: Optimizer;
  /** Restore the CPU random generator (default true), so a resumed run draws the same numbers. */
  restoreRng?: boolean;
  /** Further networks to restore by name (each must be in the checkpoint). */
  networks?: Record<string, Network>;
  /** Further tensors to restore in place by name (each must be in the checkpoint, with its shape). */
  tensors?: StateDict;
}

/**
 * Restores a checkpoint into `network` (and `optimizer`): a checkpoint of another network kind or shape,
 * a truncated file or a file that is not a checkpoint fails with a message naming the path, and leaves
 * the network as it was.
 */
export async function loadCheckpoint(path: string, options: LoadCheckpointOptions): Promise<CheckpointInfo> {
  const fn = 'loadCheckpoint';
  const p = checkPath(fn, path);
  const o = checkObject(fn, 'options', options);
  if (!(o.network instanceof Network)) throw typeError(fn, 'options.network', 'a Network', o.network);
  if (o.optimizer !== undefined && !(o.optimizer instanceof Optimizer)) throw typeError(fn, 'options.optimizer', 'an Optimizer', o.optimizer);
  const restoreRng = o.restoreRng === undefined ? true : checkBool(fn, 'restoreRng', o.restoreRng);
  const network = o.network;
  const l = await read(p);
  try {
    const mine = JSON.stringify(network.options);
    const theirs = JSON.stringify(l.info.options);
    if (l.info.kind !== network.kind || mine !== theirs)
      throw new Error(`${fn}(): '${p}' holds a ${l.info.kind} ${theirs}, but the network is a ${network.kind} ${mine}`);
    const others = Object.entries(checkObject(fn, 'options.networks', o.networks));
    const parts = others.map(([name, net]) => {
      if (!(net instanceof Network)) throw typeError(fn, `options.networks.${name}`, 'a Network', net);
      const part: StateDict = {};
      for (const [k, t] of Object.entries(l.aux)) if (k.startsWith(`${name}/`)) part[k.slice(name.length + 1)] = t;
      if (Object.keys(part).length === 0) throw new Error(`${fn}(): '${p}' holds no network '${name}' (it holds: ${(l.info.networks ?? []).join(', ') || 'none'})`);
      return [net, part] as const;
    });
    const tensors = Object.entries(checkObject(fn, 'options.tensors', o.tensors)).map(([name, t]) => {
      if (!(t instanceof Tensor)) throw typeError(fn, `options.tensors.${name}`, 'a Tensor', t);
      const saved = l.aux[`${TENSOR_PREFIX}${name}`];
      if (!saved) throw new Error(`${fn}(): '${p}' holds no tensor '${name}'`);
      if (saved.shape.join() !== t.shape.join())
        throw new Error(`${fn}(): '${p}' holds tensor '${name}' of shape [${saved.shape.join(', ')}], expected [${t.shape.join(', ')}]`);
      return [t, saved] as const;
    });
    network.loadStateDict(l.model, { strict: true });
    for (const [net, part] of parts) net.loadStateDict(part, { strict: true });
    for (const [t, saved] of tensors) t.copyFrom(saved);
    if (o.optimizer) (o.optimizer as Optimizer).loadStateDict(l.optimizer);
    if (restoreRng && l.rng) native.setRngState(l.rng.handle());
    return l.info;
  } finally {
    dispose([l.model, l.optimizer, l.aux, l.rng]);
  }
}
