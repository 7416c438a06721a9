// The malformed-frame corpus (fixtures/frames) against the camera's receiver, and
// the message parsers against random input.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LoopbackTransport } from '../src/hal/LoopbackTransport.js';
import { Endpoint } from '../src/protocol/Endpoint.js';
import { FrameDecoder, type DiscardReason } from '../src/protocol/FrameDecoder.js';
import { decodeStruct } from '../src/protocol/codec.js';
import { MESSAGES, remoteErrorName } from '../src/protocol/messages.js';
import { DockError } from '../src/errors.js';

const dir = new URL('../fixtures/frames/', import.meta.url);
const corpus = JSON.parse(readFileSync(new URL('corpus.json', dir), 'utf8')) as { file: string; expect: string; why: string }[];

async function feed(bytes: Buffer): Promise<{ discards: DiscardReason[]; answers: string[] }> {
  const [dock, camera] = LoopbackTransport.pair('corpus');
  const discards: DiscardReason[] = [];
  const ep = new Endpoint(camera, { STATUS: () => ({ batteryPct: 1, charging: false, storageTotal: 1, storageUsed: 0, clipCount: 0, unreleasedCount: 0, temperatureMilliC: 0, clockMs: 0, uptimeS: 0 }), READ: () => ({ offset: 0, data: Buffer.alloc(0) }), GET_MANIFEST: () => ({ manifest: Buffer.alloc(0), signature: Buffer.alloc(64) }) }, { maxPayload: 65536 });
  ep.on('discarded', (r) => discards.push(r));
  const answers: string[] = [];
  const dec = new FrameDecoder({ onFrame: (f) => answers.push(f.type === 0x7f ? `ERROR:${remoteErrorName(decodeStruct(MESSAGES.ERROR.res, f.payload).code)}` : `OK:${f.seq}`) });
  dock.on('data', (c) => dec.push(c));
  await dock.write(bytes);
  for (let i = 0; i < 100 && discards.length + answers.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 10));
  ep.close();
  return { discards, answers };
}

describe('malformed-frame corpus', () => {
  it('has the cases it claims', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(13);
  });
  for (const c of corpus) {
    it(`${c.file}: ${c.why} → ${c.expect}`, async () => {
      const { discards, answers } = await feed(readFileSync(new URL(c.file, dir)));
      if (c.expect.startsWith('ERROR:') || c.expect.startsWith('OK:')) expect(answers).toEqual([c.expect]);
      else {
        expect(discards).toEqual([c.expect]);
        expect(answers).toEqual([]);
      }
    });
  }
});

describe('message parsers', () => {
  it('every request and answer parser gives a value or a PROTO_BAD_PAYLOAD DockError for any bytes', () => {
    const structs = Object.values(MESSAGES).flatMap((m) => [m.req, m.res]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: structs.length - 1 }), fc.uint8Array({ maxLength: 600 }), (i, bytes) => {
        try {
          decodeStruct(structs[i]!, Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(DockError);
          expect((err as DockError).code).toBe('PROTO_BAD_PAYLOAD');
        }
      }),
      { numRuns: 100_000 },
    );
  });
});
