import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { specCobsEncode } from '../../test/helpers/frameModel.js';
import { cobsDecode, cobsDecodeInto, cobsEncode, cobsEncodeWithin, cobsMaxEncodedLength } from './cobs.js';

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

  it("matches the spec's byte loop on long zero-free runs and sparse zeros (several blocks per run)", () => {
    const sparse = fc.array(fc.oneof({ arbitrary: fc.integer({ min: 1, max: 255 }), weight: 400 }, { arbitrary: fc.constant(0), weight: 1 }), { maxLength: 3000 });
    fc.assert(
      fc.property(sparse, (arr) => {
        const bytes = Uint8Array.from(arr);
        const ref = specCobsEncode(bytes);
        expect(cobsEncode(bytes).equals(ref)).toBe(true);
        expect(cobsDecode(ref)?.equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 300 },
    );
    for (const n of [253, 254, 255, 508, 509, 65536]) {
      const run = Buffer.alloc(n, 0x5a);
      expect(cobsEncode(run).equals(specCobsEncode(run))).toBe(true);
    }
  });

  it('encodes within one buffer from the room the bound gives, and refuses less room', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), fc.integer({ min: 0, max: 3 }), (bytes, extra) => {
        const room = cobsMaxEncodedLength(bytes.length) - bytes.length + extra;
        const buf = Buffer.alloc(1 + room + bytes.length, 0xee);
        buf.set(bytes, 1 + room);
        const n = cobsEncodeWithin(buf, 1 + room, bytes.length, 1);
        expect(buf.subarray(1, 1 + n).equals(specCobsEncode(bytes))).toBe(true);
      }),
      { numRuns: 300 },
    );
    const buf = Buffer.alloc(600);
    expect(() => cobsEncodeWithin(buf, 2, 508, 0)).toThrow(RangeError);
  });

  it('decodes in place and into a separate buffer alike', () => {
    const bytes = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 131 + 7) & 0xff));
    const enc = cobsEncode(bytes);
    const inPlace = Buffer.from(enc);
    expect(cobsDecodeInto(inPlace, inPlace)).toBe(bytes.length);
    expect(inPlace.subarray(0, bytes.length).equals(bytes)).toBe(true);
    expect(() => cobsDecodeInto(enc, Buffer.alloc(enc.length - 1))).toThrow(RangeError);
  });
});
