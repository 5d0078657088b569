/**
 * Data-parallel training across processes and machines over LibTorch's c10d (a TCPStore rendezvous and
 * Gloo), with PyTorch's rendezvous conventions: `MASTER_ADDR`, `MASTER_PORT`, `RANK`, `WORLD_SIZE`,
 * `LOCAL_RANK`. A {@link ProcessGroup} carries the collectives the trainers use: tensors broadcast from
 * rank 0, the bucketed gradient all-reduce attached to an optimizer (overlapping the backward pass), and
 * SyncBatchNorm.
 */
import { native, type NativeGroupHandle } from './native.js';
import { Optimizer } from './train/optimizer.js';
import { Tensor, tensorArg } from './tensor.js';
import { tensor, zeros } from './create.js';
import { checkBool, checkInt, checkObject, rangeError, typeError } from './validate.js';

/**
 * Whether this build of semiseg has the distributed engine (and why not when it has not), and whether it
 * can all-reduce CUDA tensors over NCCL (CUDA builds with NCCL's header).
 */
export function distributedInfo(): { available: boolean; reason: string; nccl: boolean } {
  return native.distInfo();
}

/** Where a rank finds the group, as the PyTorch environment variables say. */
export interface Rendezvous {
  rank: number;
  worldSize: number;
  /** The rank within its machine (LOCAL_RANK; default: rank). */
  localRank: number;
  /** MASTER_ADDR (default 127.0.0.1): rank 0 serves the rendezvous store there. */
  masterAddr: string;
  /** MASTER_PORT (default 29500). */
  masterPort: number;
}

function envInt(env: NodeJS.ProcessEnv, name: string, min: number, max = Infinity): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min || v > max)
    throw new RangeError(`distributed: environment variable ${name} must be an integer ${max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`}, got '${raw}'`);
  return v;
}

/**
 * The rendezvous the environment describes, or null when it describes none (WORLD_SIZE unset). Errors
 * name the variable that is missing or wrong.
 */
export function rendezvousFromEnv(env: NodeJS.ProcessEnv = process.env): Rendezvous | null {
  const worldSize = envInt(env, 'WORLD_SIZE', 1);
  if (worldSize === undefined) return null;
  const rank = envInt(env, 'RANK', 0, worldSize - 1);
  if (rank === undefined) throw new Error(`distributed: WORLD_SIZE is ${worldSize} but RANK is not set`);
  return {
    rank,
    worldSize,
    localRank: envInt(env, 'LOCAL_RANK', 0) ?? rank,
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: envInt(env, 'MASTER_PORT', 1, 65535) ?? 29500,
  };
}

export interface ConnectOptions extends Partial<Rendezvous> {
  rank: number;
  worldSize: number;
  /**
   * Seconds a rank waits for the others, at the rendezvous and in every collective, before failing
   * (default: SEMISEG_DIST_TIMEOUT or 1800, as PyTorch). A rank that exits is noticed at once.
   */
  timeout?: number;
  /** Gloo's network interface for multi-machine runs (default: GLOO_SOCKET_IFNAME, else by host name). */
  interface?: string;
  /**
   * 'gloo' (default): every tensor over Gloo (CUDA ones through host memory). 'nccl': CUDA tensors over
   * NCCL, CPU ones over Gloo; each rank then works on its own GPU (`cuda:<localRank>`).
   */
  backend?: 'gloo' | 'nccl';
}

/** One rank's handle on the group. */
export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  /** @internal */
  readonly native: NativeGroupHandle;

  private constructor(handle: NativeGroupHandle, localRank: number) {
    this.native = handle;
    this.rank = handle.rank();
    this.worldSize = handle.size();
    this.localRank = localRank;
  }

  /** Joins the group (rank 0 serves the rendezvous); resolves when every rank has joined. */
  static async connect(options: ConnectOptions): Promise<ProcessGroup> {
    const fn = 'ProcessGroup.connect';
    const o = checkObject(fn, 'options', options);
    const info = distributedInfo();
    if (!info.available) throw new Error(`${fn}(): distributed training is not available in this build: ${info.reason}`);
    const worldSize = checkInt(fn, 'worldSize', o.worldSize, 1);
    const rank = checkInt(fn, 'rank', o.rank, 0, worldSize - 1);
    const port = o.masterPort === undefined ? 29500 : checkInt(fn, 'masterPort', o.masterPort, 1, 65535);
    const host = o.masterAddr === undefined ? '127.0.0.1' : o.masterAddr;
    if (typeof host !== 'string' || host === '') throw typeError(fn, 'masterAddr', 'a host name or address', host);
    const envTimeout = process.env.SEMISEG_DIST_TIMEOUT ? Number(process.env.SEMISEG_DIST_TIMEOUT) : undefined;
    const timeout = o.timeout ?? envTimeout ?? 1800;
    if (typeof timeout !== 'number' || !(timeout > 0) || !Number.isFinite(timeout)) throw rangeError(fn, 'timeout', 'a number of seconds > 0', timeout);
    const iface = o.interface ?? process.env.GLOO_SOCKET_IFNAME;
    if (iface !== undefined && typeof iface !== 'string') throw typeError(fn, 'interface', 'a network interface name', iface);
    const backend = o.backend ?? 'gloo';
    if (backend !== 'gloo' && backend !== 'nccl') throw typeError(fn, 'backend', "'gloo' or 'nccl'", backend);
    if (backend === 'nccl' && !info.nccl) throw new Error(`${fn}(): this build of semiseg has no NCCL (a CPU build, or no nccl.h when it was built); use backend 'gloo'`);
    const handle = await native.distConnect({ host, port, rank, worldSize, timeoutMs: Math.round(timeout * 1000), interface: iface || undefined, nccl: backend === 'nccl' });
    return new ProcessGroup(handle, o.localRank === undefined ? rank : checkInt(fn, 'localRank', o.localRank, 0));
  }

  /** connect() with the rendezvous of the environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK). */
  static async fromEnv(options: { timeout?: number; interface?: string; backend?: 'gloo' | 'nccl'; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessGroup> {
    const r = rendezvousFromEnv(options.env);
    if (!r) throw new Error('ProcessGroup.fromEnv(): WORLD_SIZE is not set (set MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE)');
    return ProcessGroup.connect({ ...r, timeout: options.timeout, interface: options.interface, backend: options.backend });
  }

  get isMain(): boolean {
    return this.rank === 0;
  }
  get closed(): boolean {
    return this.native.closed();
  }

  /** Sums (or averages) the tensors over the group, in place. */
  async allreduce(tensors: Tensor[], options: { op?: 'sum' | 'mean' } = {}): Promise<void> {
    const fn = 'ProcessGroup.allreduce';
    const handles = tensors.map((t, i) => tensorArg(fn, `tensors[${i}]`, t));
    await this.native.allreduce(handles);
    if ((options.op ?? 'sum') === 'mean')
      for (const t of tensors) {
        const mean = t.div(this.worldSize);
        t.copyFrom(mean);
        mean.dispose();
      }
  }

  /** Copies rank `root`'s values into the tensors of every other rank. */
  async broadcast(tensors: Tensor[], root = 0): Promise<void> {
    const fn = 'ProcessGroup.broadcast';
    checkInt(fn, 'root', root, 0, this.worldSize - 1);
    await this.native.broadcast(
      tensors.map((t, i) => tensorArg(fn, `tensors[${i}]`, t)),
      root,
    );
  }

  /** Sums (or averages) plain numbers over the group (float64). */
  async allreduceNumbers(values: number[], options: { op?: 'sum' | 'mean' } = {}): Promise<number[]> {
    if (values.length === 0) return [];
    const t = tensor(values, { dtype: 'float64' });
    try {
      await this.native.allreduce([t.handle('ProcessGroup.allreduceNumbers')]);
      const out = Array.from(t.data() as Float64Array);
      return (options.op ?? 'sum') === 'mean' ? out.map((v) => v / this.worldSize) : out;
    } finally {
      t.dispose();
    }
  }

  /** Every rank's `t` (the same shape on each) concatenated along dim 0 in rank order. */
  async allGather(t: Tensor): Promise<Tensor> {
    const n = t.shape[0];
    const out = zeros([this.worldSize * n, ...t.shape.slice(1)], { dtype: t.dtype, device: t.device });
    const slot = out.narrow(0, this.rank * n, n);
    slot.copyFrom(t);
    slot.dispose();
    try {
      await this.allreduce([out]);
    } catch (err) {
      out.dispose();
      throw err;
    }
    return out;
  }

  /** Every rank's `values` (the same length on each), by rank. */
  async allGatherNumbers(values: number[]): Promise<number[][]> {
    const mine = tensor(values, { dtype: 'float64' });
    try {
      const all = await this.allGather(mine);
      const flat = Array.from(all.data() as Float64Array);
      all.dispose();
      return Array.from({ length: this.worldSize }, (_, r) => flat.slice(r * values.length, (r + 1) * values.length));
    } finally {
      mine.dispose();
    }
  }

  /** Resolves when every rank has called it. */
  barrier(): Promise<void> {
    return this.native.barrier();
  }

  /**
   * Averages `optimizer`'s gradients over the group before each of its steps: gradients go into buckets of
   * `bucketMB` (default 25, as DistributedDataParallel) as the backward pass produces them, full buckets
   * are all-reduced while it goes on, and the step waits for the rest (use `optimizer.stepAsync()` to keep
   * that wait off the JS thread). A gradient no rank produced stays none.
   */
  attach(optimizer: Optimizer, options: { bucketMB?: number } = {}): void {
    if (!(optimizer instanceof Optimizer)) throw typeError('ProcessGroup.attach', 'optimizer', 'an Optimizer', optimizer);
    const mb = options.bucketMB ?? 25;
    if (typeof mb !== 'number' || !(mb > 0)) throw rangeError('ProcessGroup.attach', 'bucketMB', 'a number > 0', mb);
    optimizer.native.attachGradSync(this.native, Math.round(mb * 1024 * 1024));
    optimizer.group = this;
  }

  /** Removes the gradient all-reduce from `optimizer`. */
  detach(optimizer: Optimizer): void {
    optimizer.native.detachGradSync();
    optimizer.group = undefined;
  }

  /**
   * While on, every BatchNorm layer in training mode (of every network of this process) normalises with
   * the statistics of the whole group's batch, forward and backward (SyncBatchNorm).
   */
  syncBatchNorm(on: boolean): void {
    native.setSyncBatchNorm(checkBool('ProcessGroup.syncBatchNorm', 'on', on) ? this.native : null);
  }

  /** Closes the connections (other ranks' pending collectives then fail). Idempotent. */
  shutdown(): void {
    this.native.shutdown();
  }
}
