/**
 * The two networks every method trains (spec 1.1), with the published defaults:
 * UNet2D (1 -> 4: 1,813,764 parameters) and VNet3D (1 -> 2: 9,448,866 parameters).
 */
import { native } from '../native.js';
import { checkBool, checkInt, checkIntList, checkKnownKeys, checkObject, checkOneOf, rangeError, typeError } from '../validate.js';
import { Network } from './network.js';
import { VerSemi, type VerSemiOptions } from './versemi.js';

export { Network, type ForwardOptions, type FeatureOutput } from './network.js';
export { VerSemi, networkTask, setNetworkTask, type VerSemiOptions } from './versemi.js';

export interface UNet2DOptions {
  inChannels?: number;
  outChannels?: number;
  /** Channels of the five encoder levels. Default [16, 32, 64, 128, 256]. */
  features?: number[];
  /** Encoder dropout per level. Default [0.05, 0.1, 0.2, 0.3, 0.5]. */
  dropout?: number[];
}

export interface VNet3DOptions {
  inChannels?: number;
  outChannels?: number;
  nFilters?: number;
  normalization?: 'batchnorm' | 'instancenorm' | 'groupnorm' | 'none';
  hasDropout?: boolean;
  /** false: VerSemi's backbone, without block_nine and the x8_up + x1 skip (default true). */
  lastBlock?: boolean;
}

const UNET_KEYS = ['inChannels', 'outChannels', 'features', 'dropout'];
const VNET_KEYS = ['inChannels', 'outChannels', 'nFilters', 'normalization', 'hasDropout', 'lastBlock'];

/**
 * The U-Net's options, checked and completed with the published defaults (what the native side takes).
 * `arg` names the options in errors: 'options' for the constructor, 'networkOptions' for a training config.
 */
function unet2dOptions(fn: string, options: unknown, arg = 'options') {
  const o = checkObject(fn, arg, options);
  const key = (k: string) => (arg === 'options' ? k : `${arg}.${k}`);
  checkKnownKeys(fn, arg, o, UNET_KEYS);
  const features = o.features === undefined ? [16, 32, 64, 128, 256] : checkIntList(fn, key('features'), o.features, 1);
  if (features.length !== 5) throw rangeError(fn, key('features'), 'an array of 5 channel counts', o.features);
  let dropout = [0.05, 0.1, 0.2, 0.3, 0.5];
  if (o.dropout !== undefined) {
    if (!Array.isArray(o.dropout) || o.dropout.length !== 5) throw typeError(fn, key('dropout'), 'an array of 5 rates', o.dropout);
    o.dropout.forEach((p, i) => {
      if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw rangeError(fn, `${key('dropout')}[${i}]`, 'a rate in [0, 1)', p);
    });
    dropout = o.dropout as number[];
  }
  return {
    inChannels: o.inChannels === undefined ? 1 : checkInt(fn, key('inChannels'), o.inChannels, 1),
    outChannels: o.outChannels === undefined ? 4 : checkInt(fn, key('outChannels'), o.outChannels, 1),
    features,
    dropout,
  };
}

/** The V-Net's options, checked and completed with the published defaults (`arg` as for the U-Net's). */
function vnet3dOptions(fn: string, options: unknown, arg = 'options') {
  const o = checkObject(fn, arg, options);
  const key = (k: string) => (arg === 'options' ? k : `${arg}.${k}`);
  checkKnownKeys(fn, arg, o, VNET_KEYS);
  const nFilters = o.nFilters === undefined ? 16 : checkInt(fn, key('nFilters'), o.nFilters, 1);
  const normalization =
    o.normalization === undefined ? 'batchnorm' : checkOneOf(fn, key('normalization'), o.normalization, ['batchnorm', 'instancenorm', 'groupnorm', 'none'] as const);
  if (normalization === 'groupnorm' && nFilters % 16 !== 0) throw rangeError(fn, key('nFilters'), "a multiple of 16 with 'groupnorm' (16 groups)", nFilters);
  return {
    inChannels: o.inChannels === undefined ? 1 : checkInt(fn, key('inChannels'), o.inChannels, 1),
    outChannels: o.outChannels === undefined ? 2 : checkInt(fn, key('outChannels'), o.outChannels, 1),
    nFilters,
    normalization,
    hasDropout: o.hasDropout === undefined ? true : checkBool(fn, key('hasDropout'), o.hasDropout),
    ...(o.lastBlock === undefined || checkBool(fn, key('lastBlock'), o.lastBlock) ? {} : { lastBlock: false }),
  };
}

/** The SSL4MIS 2D U-Net. */
export function UNet2D(options?: UNet2DOptions): Network {
  return new Network(native.createUNet2D(unet2dOptions('UNet2D', options)));
}

/** The UA-MT / BCP 3D V-Net. */
export function VNet3D(options?: VNet3DOptions): Network {
  return new Network(native.createVNet3D(vnet3dOptions('VNet3D', options)));
}

/**
 * Checks a training configuration's `networkOptions` for its network as the constructor would, without
 * building it (so a bad option fails before the run folder is created); errors name `networkOptions.<key>`.
 */
export function checkNetworkOptions(fn: string, kind: 'UNet2D' | 'VNet3D', options: unknown): void {
  if (kind === 'UNet2D') unet2dOptions(fn, options, 'networkOptions');
  else vnet3dOptions(fn, options, 'networkOptions');
}

/** The network kinds {@link fromOptions} builds. */
export const NETWORK_KINDS = ['UNet2D', 'VNet3D', 'VerSemi'] as const;

/**
 * Builds a network from its kind and options (as a checkpoint records them). A kind other than
 * UNet2D, VNet3D or VerSemi (a checkpoint of another program, or of a newer semiseg) is a RangeError naming it.
 */
export function fromOptions(kind: 'UNet2D' | 'VNet3D' | 'VerSemi', options: Record<string, unknown>): Network {
  const fn = 'nets.fromOptions';
  if (typeof kind !== 'string') throw typeError(fn, 'kind', `a network kind (one of ${NETWORK_KINDS.join(', ')})`, kind);
  if (!(NETWORK_KINDS as readonly string[]).includes(kind))
    throw new RangeError(`${fn}(): unknown network kind '${kind}' (expected one of ${NETWORK_KINDS.join(', ')})`);
  if (kind === 'VerSemi') return VerSemi(options as VerSemiOptions);
  return kind === 'UNet2D' ? UNet2D(options as UNet2DOptions) : VNet3D(options as VNet3DOptions);
}

export const nets = { UNet2D, VNet3D, VerSemi, fromOptions };
