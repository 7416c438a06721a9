import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from './cobs.js';

describe('COBS', () => {
  it('matches the worked examples from the paper', () => {
    expect([...cobsEncode(Buffer.from([0x00]))]).toEqual([0x01, 0x01]);
    expect([...cobsEncode(Buffer.from([0x11, 0x22, 0x00, 0x33]))]).toEqual([0x03, 0x11, 0x22, 0x02, 0x33]);
    expect([...cobsEncode(Buffer.from([0x11, 0x00, 0x00, 0x00]))]).toEqual([0x02, 0x11, 0x01, 0x01, 0x01]);
    const run254 = Buffer.alloc(254, 0x01);
    const enc = cobsEncode(run254);
    expect(enc[0]).toBe(0xff);
    expect(enc.length).toBe(256);
  });

  it('round-trips any bytes, never emits 0x00, and stays within the overhead bound', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const enc = cobsEncode(bytes);
        expect(enc.includes(0)).toBe(false);
        expect(enc.length).toBeLessThanOrEqual(cobsMaxEncodedLength(bytes.length));
        expect(cobsDecode(enc)?.equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects a block whose code runs past its end', () => {
    expect(cobsDecode(Buffer.from([0x05, 0x11, 0x22]))).toBeUndefined();
    expect(cobsDecode(Buffer.from([0x02, 0x00]))).toBeUndefined();
  });
});
