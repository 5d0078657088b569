/** Option parsers shared by the commands: each throws commander's InvalidArgumentError (one line, exit 2). */
import { InvalidArgumentError } from 'commander';

export function intOption(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer between ${min} and ${max}, got '${value}'`);
    return n;
  };
}

/** A bad argument found after parsing (a recipe setting, a file): one line, exit status 2. */
export class UsageError extends Error {}

/** Exit with this status, having already said why (the launcher of worker processes). */
export class SilentExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
