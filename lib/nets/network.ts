/**
 * Network: a TypeScript handle on a native segmentation network (cpp/nets). Parameter and buffer names
 * equal the PyTorch reference modules' state-dict keys, so weights move both ways.
 * Tensors returned by parameters()/stateDict() share memory with the network; dispose them when done
 * (or call inside tidy()). Dispose the network itself with dispose().
 */
import { callSite, startNative } from '../call.js';
import { checkDevice, checkDType, type Device, type DType } from '../dtype.js';
import { namedFromNative, namedToNative, type StateDict } from '../named.js';
import { native, type NativeNetworkHandle } from '../native.js';
import { tidy } from '../scope.js';
import { Tensor, tensorArg, wrap } from '../tensor.js';
import { checkBool, checkObject, checkOneOf, typeError } from '../validate.js';

export interface ForwardOptions {
  /** Mixed precision for this call: 'bfloat16' (CPU or CUDA) or 'float16' (CUDA). */
  autocast?: 'bfloat16' | 'float16';
}

export interface FeatureOutput {
  logits: Tensor;
  /**
   * UNet2D: encoder x0..x4 then the decoder outputs of up1..up4 (9 maps).
   * VNet3D: encoder x1..x5 then decoder x6..x9 (9 maps).
   */
  features: Tensor[];
}

function autocastArg(fn: string, options: unknown): string | undefined {
  const o = checkObject(fn, 'options', options);
  return o.autocast === undefined ? undefined : checkOneOf(fn, 'autocast', o.autocast, ['bfloat16', 'float16'] as const);
}

export class Network {
  #handle: NativeNetworkHandle | null;
  readonly kind: 'UNet2D' | 'VNet3D' | 'VerSemi';

  /** @internal Use nets.UNet2D / nets.VNet3D. */
  constructor(handle: NativeNetworkHandle) {
    if (!(handle instanceof native.NetworkHandle)) throw typeError('Network', 'handle', 'a native network handle', handle);
    this.#handle = handle;
    this.kind = handle.kind();
  }

  /** @internal */
  handle(fn = 'Network'): NativeNetworkHandle {
    if (this.#handle === null) throw new Error(`${this.kind}.${fn}(): the network has been disposed`);
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** The full options the network was built with. */
  get options(): Record<string, unknown> {
    return JSON.parse(this.handle('options').optionsJson()) as Record<string, unknown>;
  }

  /** Logits, computed off the JS thread. */
  async forward(input: Tensor, options?: ForwardOptions): Promise<Tensor> {
    const h = this.handle('forward');
    const x = tensorArg(`${this.kind}.forward`, 'input', input);
    const autocast = autocastArg(`${this.kind}.forward`, options);
    return wrap(await startNative(() => h.forward(x, autocast), callSite(this.forward)));
  }

  /** Logits, computed on the JS thread (blocks the event loop: prefer forward()). */
  forwardSync(input: Tensor, options?: ForwardOptions): Tensor {
    const h = this.handle('forwardSync');
    const x = tensorArg(`${this.kind}.forwardSync`, 'input', input);
    return wrap(h.forwardSync(x, autocastArg(`${this.kind}.forwardSync`, options)));
  }

  /** Logits and intermediate features (see FeatureOutput). */
  async forwardFeatures(input: Tensor, options?: ForwardOptions): Promise<FeatureOutput> {
    const h = this.handle('forwardFeatures');
    const x = tensorArg(`${this.kind}.forwardFeatures`, 'input', input);
    const autocast = autocastArg(`${this.kind}.forwardFeatures`, options);
    const out = await startNative(() => h.forwardFeatures(x, autocast), callSite(this.forwardFeatures));
    const [logits, ...features] = out.map(wrap);
    return { logits, features };
  }

  /** Training mode (BatchNorm batch statistics, dropout on). */
  train(on = true): this {
    this.handle('train').setTraining(checkBool(`${this.kind}.train`, 'on', on));
    return this;
  }
  eval(): this {
    this.handle('eval').setTraining(false);
    return this;
  }
  get training(): boolean {
    return this.handle('training').isTraining();
  }

  namedParameters(): StateDict {
    return namedFromNative(this.handle('namedParameters').namedParameters());
  }
  parameters(): Tensor[] {
    return Object.values(this.namedParameters());
  }
  namedBuffers(): StateDict {
    return namedFromNative(this.handle('namedBuffers').namedBuffers());
  }
  buffers(): Tensor[] {
    return Object.values(this.namedBuffers());
  }
  parameterCount(): number {
    return this.handle('parameterCount').parameterCount();
  }

  get device(): Device {
    return this.handle('device').device() as Device;
  }
  get dtype(): DType {
    return this.handle('dtype').dtype() as DType;
  }

  /** Moves (and optionally casts) every parameter and buffer in place. */
  to(target: Device | { device?: Device; dtype?: DType }): this {
    const fn = `${this.kind}.to`;
    const o = typeof target === 'string' ? { device: target } : checkObject(fn, 'target', target);
    const device = o.device === undefined ? this.device : checkDevice(fn, o.device);
    const dtype = o.dtype === undefined ? undefined : checkDType(fn, o.dtype);
    this.handle('to').to(device, dtype);
    return this;
  }

  /** Channels-last memory format for weights and inputs (often faster for convolutions). */
  channelsLast(on = true): this {
    this.handle('channelsLast').setChannelsLast(checkBool(`${this.kind}.channelsLast`, 'on', on));
    return this;
  }
  get isChannelsLast(): boolean {
    return this.handle('isChannelsLast').channelsLast();
  }

  /** A deep copy (weights, buffers, mode, device): a Mean Teacher's teacher. */
  clone(): Network {
    return new Network(this.handle('clone').clone());
  }

  /** Parameters and buffers, detached, sharing memory with the network, in PyTorch's key order. */
  stateDict(): StateDict {
    const h = this.handle('stateDict');
    return tidy(() => {
      const out: StateDict = {};
      for (const [k, t] of Object.entries(namedFromNative(h.stateDict()))) out[k] = t.detach();
      return out;
    });
  }

  /**
   * Copies a state dict in (converting dtype and device). Mis-shaped keys always fail; missing or
   * unexpected keys fail when `strict` (default). The error lists every offending key; nothing is
   * copied when it fails.
   */
  loadStateDict(dict: StateDict | Map<string, Tensor>, options?: { strict?: boolean }): { missing: string[]; unexpected: string[] } {
    const fn = `${this.kind}.loadStateDict`;
    const o = checkObject(fn, 'options', options);
    const strict = o.strict === undefined ? true : checkBool(fn, 'strict', o.strict);
    const [names, handles] = namedToNative(fn, 'dict', dict);
    return this.handle('loadStateDict').loadState(names, handles, strict);
  }

  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }

  toString(): string {
    return this.isDisposed ? `${this.kind}(disposed)` : `${this.kind}(${this.parameterCount()} parameters, ${this.device})`;
  }
}
