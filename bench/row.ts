// Building a BenchResult so that `ratio` and `pass` follow from the figures and
// the target string, never from a hand-set flag.
//
// Target strings (what a reader sees in the table):
//   ">= 0.90"        the ratio (or, with no baseline, the value) is at least 0.90
//   "<= 150 MB"      with a unit after the number: the value, not the ratio, is at most 150
//   "0.90..1.10"     the ratio lies within these bounds
// Anything else (e.g. "report") is not judged: such a row passes only if the suite
// says so.
import type { BenchResult } from './types.js';

export type RatioWay = 'value/baseline' | 'baseline/value';

export interface RowFields {
  name: string;
  value: number;
  unit: string;
  baseline?: number | null;
  way?: RatioWay; // how ratio is formed; default value/baseline (higher is better)
  target: string;
  note?: string;
}

const BOUND = /^(>=|<=|≥|≤)\s*(-?\d+(?:\.\d+)?)(?:\s*\S+)?$/;
const RANGE = /^(-?\d+(?:\.\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?)$/;

/**
 * What a target bounds: the value when the target names a unit or the row has no
 * baseline; otherwise the ratio (null when it could not be formed, which fails).
 */
export function subject(target: string, value: number, baseline: number | null, ratio: number | null): number | null {
  const t = target.trim();
  const hasUnit = BOUND.test(t) && !/\d$/.test(t);
  return hasUnit || baseline === null ? value : ratio;
}

/** Whether `x` meets `target`; undefined when the target is not one this file can judge. */
export function judge(target: string, x: number | null): boolean | undefined {
  const t = target.trim();
  const b = BOUND.exec(t);
  const r = RANGE.exec(t);
  if (!b && !r) return undefined;
  if (x === null || !Number.isFinite(x)) return false;
  if (b) return b[1] === '>=' || b[1] === '≥' ? x >= Number(b[2]) : x <= Number(b[2]);
  return x >= Number(r![1]) && x <= Number(r![2]);
}

export function row(f: RowFields): BenchResult {
  const baseline = f.baseline ?? null;
  let ratio: number | null = null;
  if (baseline !== null) ratio = (f.way ?? 'value/baseline') === 'value/baseline' ? f.value / baseline : baseline / f.value;
  if (ratio !== null && !Number.isFinite(ratio)) ratio = null;
  const pass = judge(f.target, subject(f.target, f.value, baseline, ratio)) ?? false;
  const out: BenchResult = { name: f.name, value: f.value, unit: f.unit, baseline, ratio, target: f.target, pass };
  if (f.note) out.note = f.note;
  return out;
}

/** A row for work that could not be measured: it fails, and says why. */
export function failedRow(name: string, why: string, target = 'runs'): BenchResult {
  return { name, value: 0, unit: '', baseline: null, ratio: null, target, pass: false, note: why };
}
