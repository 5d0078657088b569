/**
 * PyTorch state-dict files: what torch.save(model.state_dict(), path) writes (an OrderedDict, or a plain
 * dict), from any device (tensors are read onto the CPU, as map_location='cpu'), and checkpoints that
 * hold a state dict under a key (BCP's {'net': ..., 'opt': ...}, {'state_dict': ...}).
 */
import { callSite, startNative } from '../call.js';
import { namedFromNative, namedToNative, type StateDict } from '../named.js';
import { native } from '../native.js';
import { checkObject, checkPath, typeError } from '../validate.js';

/**
 * Reads a torch.save file of a state dict. Only what weight files hold is read (dicts, lists, tuples,
 * numbers, strings and tensors, as torch.load(weights_only=True)); nothing in the file runs. A file that
 * holds a dict around the weights gives the entry `options.key`, or without it the only entry that is a
 * state dict (an error names the candidates when there are several). The legacy format of PyTorch
 * before 1.6 is refused with what to do.
 */
export async function readTorchStateDict(path: string, options?: { key?: string }): Promise<StateDict> {
  const fn = 'readTorchStateDict';
  const p = checkPath(fn, path);
  const o = checkObject(fn, 'options', options);
  if (o.key !== undefined && typeof o.key !== 'string') throw typeError(fn, 'key', 'a string', o.key);
  return namedFromNative(await startNative(() => native.readStateDict(p, o.key as string | undefined), callSite(readTorchStateDict)));
}

/** Writes atomically (temporary file, flush, rename); tensors are saved from the CPU. */
export async function writeTorchStateDict(path: string, dict: StateDict): Promise<void> {
  const p = checkPath('writeTorchStateDict', path);
  const [names, handles] = namedToNative('writeTorchStateDict', 'dict', dict);
  await startNative(() => native.writeStateDict(p, names, handles), callSite(writeTorchStateDict));
}
