import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readTail } from './Ledger.js';

const dir = mkdtempSync(join(tmpdir(), 'dockside-tail-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readTail (reading a ledger from its end)', () => {
  it('gives the same lines as reading the whole file, for any lines, block splits and a torn end', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40000 }).map((x) => x.replace(/\n/g, ' ')), { maxLength: 12 }), fc.string({ maxLength: 30 }).map((x) => x.replace(/\n/g, '')), fc.integer({ min: 1, max: 20 }), (lines, torn, want) => {
        const path = join(dir, 'f.jsonl');
        const body = lines.map((l) => `${l}\n`).join('');
        writeFileSync(path, body + torn);
        const r = readTail(path, want);
        expect(r.lines).toEqual(lines.slice(-want));
        expect(r.end).toBe(Buffer.byteLength(body));
        expect(r.size).toBe(Buffer.byteLength(body + torn));
      }),
      { numRuns: 150 },
    );
  });

  it('stops at the first line (going back) that `stop` accepts', () => {
    const path = join(dir, 'g.jsonl');
    writeFileSync(path, [1, 2, 3, 4, 5].map((n) => `{"seq":${n}}\n`).join(''));
    const r = readTail(path, Number.MAX_SAFE_INTEGER, (l) => (JSON.parse(l) as { seq: number }).seq <= 3);
    expect(r.lines).toEqual(['{"seq":4}', '{"seq":5}']);
  });
});
