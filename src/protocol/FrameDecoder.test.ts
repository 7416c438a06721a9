import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeFrame, FRAME_OVERHEAD, type Frame } from './frame.js';
import { FrameDecoder, type DiscardReason } from './FrameDecoder.js';
import { cobsEncode } from './cobs.js';
import { crc32 } from 'node:zlib';

function collect(maxPayload?: number): { dec: FrameDecoder; frames: Frame[]; discards: DiscardReason[] } {
  const frames: Frame[] = [];
  const discards: DiscardReason[] = [];
  const dec = new FrameDecoder({ onFrame: (f) => frames.push(f), onDiscard: (r) => discards.push(r) }, maxPayload);
  return { dec, frames, discards };
}

const sample = (seq: number, payload = Buffer.from('hello camera')) => encodeFrame({ type: 0x06, flags: 1, seq, payload });

describe('FrameDecoder', () => {
  it('decodes frames however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }), (payloads, cuts) => {
        const wire = Buffer.concat(payloads.map((p, i) => encodeFrame({ type: 3, flags: 0, seq: i, payload: Buffer.from(p) })));
        const { dec, frames, discards } = collect();
        let pos = 0;
        for (let i = 0; pos < wire.length; i++) {
          const n = cuts[i % cuts.length]!;
          dec.push(wire.subarray(pos, pos + n));
          pos += n;
        }
        expect(discards).toEqual([]);
        expect(frames.map((f) => Buffer.from(f.payload).toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')));
        expect(frames.map((f) => f.seq)).toEqual(payloads.map((_, i) => i));
      }),
      { numRuns: 300 },
    );
  });

  it('discards a frame with a flipped bit at any position and resyncs on the next one', () => {
    const bad = sample(1);
    const good = sample(2);
    for (let byte = 0; byte < bad.length; byte++) {
      for (const bit of [0, 3, 7]) {
        const corrupted = Buffer.from(bad);
        corrupted[byte]! ^= 1 << bit;
        const { dec, frames } = collect();
        dec.push(Buffer.concat([corrupted, good]));
        // The corrupted frame never comes out as valid; the next frame always does.
        expect(frames.some((f) => f.seq === 1 && f.payload.equals(Buffer.from('hello camera')))).toBe(false);
        expect(frames.filter((f) => f.seq === 2)).toHaveLength(1);
        expect(dec.stats.discarded).toBeGreaterThanOrEqual(byte === 0 || byte === bad.length - 1 ? 0 : 1);
      }
    }
  });

  it('reports a truncated frame and keeps the one after it', () => {
    const first = sample(1);
    const { dec, frames, discards } = collect();
    dec.push(Buffer.concat([first.subarray(0, first.length - 6), Buffer.from([0]), sample(2)]));
    expect(frames.map((f) => f.seq)).toEqual([2]);
    expect(discards.length).toBe(1);
  });

  it('counts an oversized run without a delimiter and holds at most one maximum frame', () => {
    const { dec, frames, discards } = collect(4096);
    const noise = Buffer.alloc(1024 * 1024, 0x55);
    for (let i = 0; i < 16; i++) dec.push(noise);
    expect(dec.bufferedBytes).toBe(0);
    dec.push(sample(9));
    expect(discards).toEqual(['FRAME_OVERSIZED']);
    expect(frames.map((f) => f.seq)).toEqual([9]);
    expect(dec.stats.discardedBytes).toBe(16 * 1024 * 1024);
  });

  it('refuses a well-formed frame larger than the negotiated payload', () => {
    const { dec, frames, discards } = collect(4096);
    dec.push(encodeFrame({ type: 6, flags: 1, seq: 1, payload: Buffer.alloc(5000, 1) }));
    expect(frames).toEqual([]);
    expect(discards).toEqual(['FRAME_OVERSIZED']);
  });

  it('flags a length field that lies about a frame with a valid CRC', () => {
    const raw = Buffer.alloc(FRAME_OVERHEAD + 4);
    raw[0] = 1;
    raw[1] = 3;
    raw.writeUInt32LE(7, 4);
    raw.writeUInt32LE(100, 8); // claims 100 bytes, carries 4
    raw.writeUInt32LE(crc32(raw.subarray(0, raw.length - 4)), raw.length - 4);
    const { dec, frames, discards } = collect();
    dec.push(Buffer.concat([Buffer.from([0]), cobsEncode(raw), Buffer.from([0])]));
    expect(frames).toEqual([]);
    expect(discards).toEqual(['FRAME_BAD_LENGTH']);
  });

  it('delivers duplicated frames as they come (the session drops the stale copy)', () => {
    const f = sample(5);
    const { dec, frames } = collect();
    dec.push(Buffer.concat([f, f]));
    expect(frames.map((x) => x.seq)).toEqual([5, 5]);
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000 }), (bytes) => {
        const { dec } = collect(1024);
        dec.push(Buffer.from(bytes));
        dec.push(Buffer.from([0]));
      }),
      { numRuns: 2000 },
    );
  });
});
