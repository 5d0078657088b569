/**
 * VerSemi's model (spec 4) as one native network (cpp/nets/versemi.h): the V-Net backbone (InstanceNorm, no
 * block_nine, no final skip), the controller and the task-prompted dynamic head. Its forward segments every
 * sample under the network's task ({@link setNetworkTask}), background / foreground logits, so the native
 * sliding window, Segmenter and `semiseg predict --task` serve it like any network. State-dict keys: the
 * backbone's, then `head.controller.bn.*`, `head.controller.conv.*`, `head.pre.bn.*`, `head.pre.conv.*`,
 * as the VerSemi trainer's checkpoints hold them (trainers.loadVerSemiNetwork reads those).
 */
import { native } from '../native.js';
import { checkBool, checkInt, checkKnownKeys, checkObject, checkOneOf, rangeError, typeError } from '../validate.js';
import { Network } from './network.js';

export interface VerSemiOptions {
  inChannels?: number;
  /** Always 2 (background / foreground of the task); accepted for options read back from a checkpoint. */
  outChannels?: 2;
  nFilters?: number;
  /** Default 'instancenorm', as VerSemi's backbone. */
  normalization?: 'batchnorm' | 'instancenorm' | 'groupnorm' | 'none';
  hasDropout?: boolean;
  /** Default false: VerSemi's backbone has no block_nine and no x8_up + x1 skip. */
  lastBlock?: boolean;
  /** Real tasks T (datasets); task ids 0..T, T being the synthetic CutMix task. Default 1. */
  tasks?: number;
}

const KEYS = ['inChannels', 'outChannels', 'nFilters', 'normalization', 'hasDropout', 'lastBlock', 'tasks'];

/** VerSemi's backbone, controller and dynamic head as one network (kind 'VerSemi'); its task starts at 0. */
export function VerSemi(options?: VerSemiOptions): Network {
  const fn = 'VerSemi';
  const o = checkObject(fn, 'options', options);
  checkKnownKeys(fn, 'options', o, KEYS);
  if (o.outChannels !== undefined && o.outChannels !== 2) throw rangeError(fn, 'outChannels', '2 (every task is binary)', o.outChannels);
  const nFilters = o.nFilters === undefined ? 16 : checkInt(fn, 'nFilters', o.nFilters, 1);
  return new Network(
    native.createVerSemi({
      inChannels: o.inChannels === undefined ? 1 : checkInt(fn, 'inChannels', o.inChannels, 1),
      nFilters,
      normalization:
        o.normalization === undefined
          ? 'instancenorm'
          : checkOneOf(fn, 'normalization', o.normalization, ['batchnorm', 'instancenorm', 'groupnorm', 'none'] as const),
      hasDropout: o.hasDropout === undefined ? true : checkBool(fn, 'hasDropout', o.hasDropout),
      lastBlock: o.lastBlock === undefined ? false : checkBool(fn, 'lastBlock', o.lastBlock),
      tasks: o.tasks === undefined ? 1 : checkInt(fn, 'tasks', o.tasks, 1),
    }),
  );
}

function taskNetwork(fn: string, net: unknown): Network {
  if (!(net instanceof Network)) throw typeError(fn, 'network', 'a Network', net);
  if (net.kind !== 'VerSemi') throw new TypeError(`${fn}(): a ${net.kind} has no task (only a VerSemi network has)`);
  return net;
}

/** The task a VerSemi network segments, and its number of real tasks T (task ids 0..T). */
export function networkTask(net: Network): { task: number; tasks: number } {
  const fn = 'networkTask';
  return native.networkTask(taskNetwork(fn, net).handle(fn));
}

/**
 * Makes a VerSemi network segment task `task` (0..T, T = the synthetic task) from its next forward on.
 * Refused while async calls use the network; a no-op when the task is already `task`.
 */
export function setNetworkTask(net: Network, task: number): void {
  const fn = 'setNetworkTask';
  const n = taskNetwork(fn, net);
  const { task: now, tasks } = native.networkTask(n.handle(fn));
  checkInt(fn, 'task', task, 0);
  if (task > tasks) throw rangeError(fn, 'task', `a task id in [0, ${tasks}] (${tasks} = the synthetic task)`, task);
  if (task !== now) native.networkSetTask(n.handle(fn), task);
}
