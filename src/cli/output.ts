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
  if (e.code === 'HAL_NOT_FOUND' || e.code === 'CUSTODY_NOT_FOUND') return EXIT.NOT_FOUND;
  if (e.code === 'FIRMWARE_INVALID' || e.code === 'FIRMWARE_FAILED') return EXIT.CHECK_FAILED;
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

/** The dock data directory a command uses when --data-dir is not given. */
export const DEFAULT_DATA_DIR = process.env['DOCKSIDE_DATA_DIR'] || './var';

export function formatAgo(ms: number | null, now = Date.now()): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129_600) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}
