/**
 * How commands speak: human text on a terminal, one JSON document with --json, and
 * exit codes that scripts can rely on.
 */
import { DockError } from '../errors.js';

export const EXIT = {
  OK: 0,
  ERROR: 1, // something failed; the message says what and what to do
  USAGE: 2, // bad arguments or config
  NOT_FOUND: 3, // no such camera / nothing reachable
  CHECK_FAILED: 4, // the command ran, and what it checked is not healthy
} as const;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatRate(bytesPerS: number): string {
  return `${formatBytes(bytesPerS)}/s`;
}

export function table(rows: string[][], header: string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Prints an error the user can act on and returns the exit code for it. */
export function reportError(err: unknown, json: boolean): number {
  const e =
    err instanceof DockError
      ? err
      : new DockError('INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}. This is a bug in dockside; please report it with the command you ran and DOCKSIDE_LOG_LEVEL=debug output`);
  if (json) printJson({ error: e.toJSON() });
  else process.stderr.write(`dockside: ${e.message} [${e.code}]\n`);
  if (e.code === 'CONFIG_INVALID' || e.code === 'CLI_USAGE' || e.code === 'SIM_BAD_FAULTS') return EXIT.USAGE;
  if (e.code === 'HAL_NOT_FOUND') return EXIT.NOT_FOUND;
  return EXIT.ERROR;
}

export function positiveInt(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new DockError('CLI_USAGE', `${name} must be a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
}

export function positiveNumber(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new DockError('CLI_USAGE', `${name} must be a non-negative number, got ${JSON.stringify(v)}`);
    return n;
  };
}
