// How a benchmark row's pass follows from its figures and target (bench/row.ts).
// No benchmark figure is asserted here: only the arithmetic that judges one.
import { describe, expect, it } from 'vitest';
import { failedRow, judge, row, subject } from '../bench/row.js';

describe('bench rows', () => {
  it('judges at-least, at-most and range targets, and nothing else', () => {
    expect(judge('>= 0.90', 0.9)).toBe(true);
    expect(judge('>= 0.90', 0.899)).toBe(false);
    expect(judge('≤ 150 MB', 150)).toBe(true);
    expect(judge('<= 150 MB', 150.1)).toBe(false);
    expect(judge('0.90..1.10', 1.1)).toBe(true);
    expect(judge('0.90..1.10', 0.89)).toBe(false);
    expect(judge('>= 0.5', null)).toBe(false);
    expect(judge('>= 0.5', Number.NaN)).toBe(false);
    expect(judge('report', 3)).toBeUndefined();
  });

  it('bounds the value when the target names a unit or there is no baseline, else the ratio', () => {
    expect(subject('<= 150 MB', 140, 70, 2)).toBe(140);
    expect(subject('<= 1 s', 0.4, null, null)).toBe(0.4);
    expect(subject('>= 0.95', 38, 40, 0.95)).toBe(0.95);
    expect(subject('>= 0.95', 38, null, null)).toBe(38);
    expect(subject('>= 0.95', 38, 0, null)).toBeNull(); // a baseline of 0 gives no ratio: not a pass
  });

  it('forms the ratio the way it is told and computes pass from it', () => {
    const higher = row({ name: 'x', value: 36, unit: 'MB/s', baseline: 40, target: '>= 0.95' });
    expect(higher.ratio).toBeCloseTo(0.9);
    expect(higher.pass).toBe(false);
    const lower = row({ name: 'y', value: 2, unit: 's', baseline: 4, way: 'baseline/value', target: '>= 1.5' });
    expect(lower.ratio).toBe(2);
    expect(lower.pass).toBe(true);
    const absolute = row({ name: 'z', value: 149, unit: 'MB', target: '<= 150 MB' });
    expect(absolute).toMatchObject({ baseline: null, ratio: null, pass: true });
    expect(row({ name: 'w', value: 1, unit: '', baseline: 0, target: '>= 1' })).toMatchObject({ ratio: null, pass: false });
  });

  it('makes a failing row, with its reason, for work that could not be measured', () => {
    expect(failedRow('upload', 'missing: bench/upload.ts')).toMatchObject({ name: 'upload', pass: false, note: 'missing: bench/upload.ts' });
  });
});
