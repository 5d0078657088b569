/**
 * PyTorch state-dict files: what torch.save(dict(model.state_dict()), path) writes, and files that
 * torch.load reads back as a dict. (A plain OrderedDict state_dict pickle cannot be read: save dict(...).)
 */
import { callSite, startNative } from '../call.js';
import { namedFromNative, namedToNative, type StateDict } from '../named.js';
import { native } from '../native.js';
import { checkPath } from '../validate.js';

export async function readTorchStateDict(path: string): Promise<StateDict> {
  const p = checkPath('readTorchStateDict', path);
  return namedFromNative(await startNative(() => native.readStateDict(p), callSite(readTorchStateDict)));
}

/** Writes atomically (temporary file, flush, rename); tensors are saved from the CPU. */
export async function writeTorchStateDict(path: string, dict: StateDict): Promise<void> {
  const p = checkPath('writeTorchStateDict', path);
  const [names, handles] = namedToNative('writeTorchStateDict', 'dict', dict);
  await startNative(() => native.writeStateDict(p, names, handles), callSite(writeTorchStateDict));
}
