/**
 * The fault vocabulary, the same on the command line (--faults), in config and in
 * tests: a comma-separated list of `name=value` or bare `name`.
 *
 *   ber=<rate>     bit error rate on the link, both directions (0..0.01)
 *   drop=<p>       probability that a frame the camera sends is lost (0..1)
 *   stall=<p>      probability that a request goes unanswered (0..1)
 *   unplug=<p>     probability per clip transfer that the camera is pulled out mid-transfer
 *                  and docks again shortly after (0..1)
 *   corrupt=<n>    n clips whose stored bytes rot after hashing (record time)
 *   tamper=<n>     n clips altered after signing, with a recomputed plain hash (record time)
 *   gap=<n>        n clips removed from the chain (record time)
 *   rogue          the camera signs with a key other than the one the dock enrolled
 *   slow=<factor>  every latency multiplied, and the link rate divided, by factor (≥ 1)
 */
import { DockError } from '../errors.js';

export interface Faults {
  ber: number;
  drop: number;
  stall: number;
  unplug: number;
  corrupt: number;
  tamper: number;
  gap: number;
  rogue: boolean;
  slow: number;
}

export const NO_FAULTS: Readonly<Faults> = Object.freeze({ ber: 0, drop: 0, stall: 0, unplug: 0, corrupt: 0, tamper: 0, gap: 0, rogue: false, slow: 1 });

type Kind = { kind: 'rate'; max: number } | { kind: 'count' } | { kind: 'flag' } | { kind: 'factor' };
const SPEC: Record<keyof Faults, Kind> = {
  ber: { kind: 'rate', max: 0.01 },
  drop: { kind: 'rate', max: 1 },
  stall: { kind: 'rate', max: 1 },
  unplug: { kind: 'rate', max: 1 },
  corrupt: { kind: 'count' },
  tamper: { kind: 'count' },
  gap: { kind: 'count' },
  rogue: { kind: 'flag' },
  slow: { kind: 'factor' },
};

function badFaults(spec: string, why: string): DockError {
  return new DockError('SIM_BAD_FAULTS', `bad fault spec ${JSON.stringify(spec)}: ${why}. Expected e.g. "ber=1e-5,drop=0.01,stall=0.02,unplug=0.3,corrupt=1,tamper=1,gap=1,rogue,slow=4"`, { spec });
}

export function parseFaults(spec: string | undefined): Faults {
  const faults: Faults = { ...NO_FAULTS };
  if (!spec || spec.trim() === '' || spec.trim() === 'none') return faults;
  const seen = new Set<string>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim();
    const raw = eq < 0 ? undefined : part.slice(eq + 1).trim();
    if (!Object.hasOwn(SPEC, name)) throw badFaults(spec, `unknown fault "${name}" (known: ${Object.keys(SPEC).join(', ')})`);
    if (seen.has(name)) throw badFaults(spec, `"${name}" is given twice`);
    seen.add(name);
    const key = name as keyof Faults;
    const kind = SPEC[key];
    if (kind.kind === 'flag') {
      if (raw !== undefined && raw !== 'true' && raw !== '1') throw badFaults(spec, `"${name}" takes no value`);
      faults.rogue = true;
      continue;
    }
    if (raw === undefined || raw === '') throw badFaults(spec, `"${name}" needs a value`);
    const n = Number(raw);
    if (!Number.isFinite(n)) throw badFaults(spec, `"${name}=${raw}" is not a number`);
    if (kind.kind === 'rate' && (n < 0 || n > kind.max)) throw badFaults(spec, `"${name}" must be from 0 to ${kind.max}, got ${raw}`);
    if (kind.kind === 'count' && (!Number.isInteger(n) || n < 0 || n > 10000)) throw badFaults(spec, `"${name}" must be a whole number of clips, got ${raw}`);
    if (kind.kind === 'factor' && (n < 1 || n > 1000)) throw badFaults(spec, `"${name}" must be a factor from 1 to 1000, got ${raw}`);
    (faults as unknown as Record<string, number>)[key] = n;
  }
  return faults;
}

export function formatFaults(f: Faults): string {
  const parts: string[] = [];
  for (const key of Object.keys(SPEC) as (keyof Faults)[]) {
    const v = f[key];
    if (key === 'rogue') {
      if (v) parts.push('rogue');
    } else if (key === 'slow' ? v !== 1 : v !== 0) parts.push(`${key}=${String(v)}`);
  }
  return parts.join(',') || 'none';
}
