// Every kind of bad input from a device gets a typed DockError or a counted discard,
// and the process (and the session, where it can) carries on. One test per kind.
import { describe, expect, it } from 'vitest';
import { Session } from '../src/protocol/Session.js';
import { LoopbackTransport } from '../src/hal/LoopbackTransport.js';
import { Endpoint } from '../src/protocol/Endpoint.js';
import { encodeFrame, PROTOCOL_MAX_PAYLOAD } from '../src/protocol/frame.js';
import { FrameDecoder } from '../src/protocol/FrameDecoder.js';
import { decodeStruct, encodeStruct } from '../src/protocol/codec.js';
import { MESSAGES, REMOTE_ERRORS } from '../src/protocol/messages.js';
import { answer, GOOD_HELLO, rawFrame, scriptedCamera, type Script } from './helpers/scriptedCamera.js';

const STATUS = { batteryPct: 50, charging: true, storageTotal: 100, storageUsed: 10, clipCount: 1, unreleasedCount: 1, temperatureMilliC: 30000, clockMs: 1_764_547_200_123, uptimeS: 5 }; // a fixed clock: the bytes flipped below must be the same in every run (with Date.now() a flip sometimes hit a COBS code byte: FRAME_BAD_COBS, not FRAME_CRC)

async function sessionWith(script: Script, options = {}): Promise<Session> {
  const { dock } = scriptedCamera(script);
  return Session.connect(dock, { timeoutMs: 100, retries: 3, ...options });
}

/** STATUS is answered badly the first time, correctly after that. */
const badThenGood =
  (bad: (seq: number) => Buffer): Script =>
  (name, f, attempt) =>
    name === 'STATUS' ? (attempt === 1 ? bad(f.seq) : answer('STATUS', f.seq, STATUS)) : null;

describe('bad input from a device', () => {
  it('malformed frame (invalid COBS): discarded, counted, retried, answered', async () => {
    const s = await sessionWith(badThenGood(() => Buffer.from([0, 0x09, 1, 2, 3, 0])));
    const discards: string[] = [];
    s.on('discarded', (r) => discards.push(r));
    expect((await s.status()).batteryPct).toBe(50);
    expect(discards).toEqual(['FRAME_BAD_COBS']);
    expect(s.stats.discardedByReason.FRAME_BAD_COBS).toBe(1);
    expect(s.stats.retries).toBe(1);
  });

  it('lying length (valid CRC, length field disagrees): FRAME_BAD_LENGTH, retried', async () => {
    const s = await sessionWith(badThenGood((seq) => rawFrame(MESSAGES.STATUS.type, seq, Buffer.alloc(8), 4000)));
    expect((await s.status()).batteryPct).toBe(50);
    expect(s.stats.discardedByReason.FRAME_BAD_LENGTH).toBe(1);
  });

  it('bad CRC: FRAME_CRC, retried', async () => {
    const s = await sessionWith(
      badThenGood((seq) => {
        const f = answer('STATUS', seq, STATUS);
        f[f.length - 3]! ^= 0x10;
        return f;
      }),
    );
    expect((await s.status()).batteryPct).toBe(50);
    expect(s.stats.discardedByReason.FRAME_CRC).toBe(1);
  });

  it('oversized payload: FRAME_OVERSIZED without buffering it, retried', async () => {
    const s = await sessionWith(badThenGood((seq) => rawFrame(MESSAGES.STATUS.type, seq, Buffer.alloc(300 * 1024, 1))), { maxPayload: 64 * 1024 });
    expect((await s.status()).batteryPct).toBe(50);
    expect(s.stats.discardedByReason.FRAME_OVERSIZED).toBe(1);
  });

  it('unknown message type in an answer: PROTO_UNEXPECTED for that request, the session goes on', async () => {
    const s = await sessionWith(badThenGood((seq) => rawFrame(0x55, seq, Buffer.alloc(3))));
    await expect(s.status()).rejects.toMatchObject({ code: 'PROTO_UNEXPECTED', message: expect.stringContaining('0x55') });
    expect(s.stats.unexpected).toBe(1);
    expect((await s.status()).batteryPct).toBe(50);
  });

  it('malformed payload behind a valid CRC: PROTO_BAD_PAYLOAD naming the field', async () => {
    const s = await sessionWith(badThenGood((seq) => rawFrame(MESSAGES.STATUS.type, seq, Buffer.from([50, 1, 0, 0]))));
    await expect(s.status()).rejects.toMatchObject({ code: 'PROTO_BAD_PAYLOAD', message: expect.stringContaining('"storageTotal"') });
    expect((await s.status()).batteryPct).toBe(50);
  });

  it('a bool that is neither 0 nor 1: PROTO_BAD_PAYLOAD', async () => {
    const payload = encodeStruct(MESSAGES.STATUS.res, STATUS);
    payload[1] = 7;
    const s = await sessionWith(badThenGood((seq) => rawFrame(MESSAGES.STATUS.type, seq, payload)));
    await expect(s.status()).rejects.toMatchObject({ code: 'PROTO_BAD_PAYLOAD', message: expect.stringContaining('"charging" must be 0 or 1') });
  });

  it('a device that stops answering: PROTO_TIMEOUT after the retries, counted', async () => {
    const s = await sessionWith((name) => (name === 'STATUS' ? [] : null), { timeoutMs: 30, retries: 2 });
    await expect(s.status()).rejects.toMatchObject({ code: 'PROTO_TIMEOUT', details: { attempts: 3 } });
    expect(s.stats.failed).toBe(1);
    expect(s.stats.timeouts).toBe(3);
  });

  it('a port that disappears: HAL_DISCONNECTED to what is pending and to what comes after', async () => {
    const { dock } = scriptedCamera((name) => (name === 'STATUS' ? [] : null));
    const s = await Session.connect(dock, { timeoutMs: 5000 });
    const pending = s.status();
    dock.unplug();
    await expect(pending).rejects.toMatchObject({ code: 'HAL_DISCONNECTED', message: expect.stringContaining('went away') });
    await expect(s.status()).rejects.toMatchObject({ code: 'HAL_DISCONNECTED' });
  });

  it('a READ answer at the wrong offset or length: PROTO_UNEXPECTED, nothing handed on', async () => {
    const s = await sessionWith((name, f) => {
      if (name !== 'READ') return null;
      const req = decodeStruct(MESSAGES.READ.req, f.payload);
      return answer('READ', f.seq, { offset: req.offset + 1, data: Buffer.alloc(req.length) });
    });
    const got: number[] = [];
    await expect(s.readRange('clip-1', 0, 5000, (o) => void got.push(o))).rejects.toMatchObject({ code: 'PROTO_UNEXPECTED' });
    expect(got).toEqual([]);
  });

  it('hostile clip ids: each refused on its own with PROTO_BAD_NAME, the rest listed', async () => {
    const entry = (id: string, seq: number) => ({ id, seq, size: 10, startMs: 0, durationMs: 1000, trigger: 0, released: false });
    const s = await sessionWith((name, f) =>
      name === 'LIST_CLIPS' ? answer('LIST_CLIPS', f.seq, { clips: [entry('good-1', 1), entry('../../etc/passwd', 2), entry('a\u0000b', 3), entry('x.mp4', 4), entry('good_2', 5)], more: false, next: 6 }) : null,
    );
    const { clips, refused } = await s.listClips();
    expect(clips.map((c) => c.id)).toEqual(['good-1', 'good_2']);
    expect(refused.map((r) => r.error.code)).toEqual(['PROTO_BAD_NAME', 'PROTO_BAD_NAME', 'PROTO_BAD_NAME']);
    expect(refused[0]!.error.message).toContain('left on the camera');
  });

  it('a 10 kB clip id: PROTO_BAD_PAYLOAD (longer than the field allows), no crash', async () => {
    const long = Buffer.alloc(2 + 2 + 10_000 + 30);
    long.writeUInt16LE(1, 0);
    long.writeUInt16LE(10_000, 2);
    long.fill(0x61, 4, 4 + 10_000);
    const s = await sessionWith((name, f) => (name === 'LIST_CLIPS' ? rawFrame(MESSAGES.LIST_CLIPS.type, f.seq, long) : null));
    await expect(s.listClips()).rejects.toMatchObject({ code: 'PROTO_BAD_PAYLOAD', message: expect.stringContaining('"id" claims 10000 bytes') });
  });

  it('a HELLO with an unusable serial, or a version the dock does not speak, is refused', async () => {
    const { dock: d1 } = scriptedCamera((name, f) => (name === 'HELLO' ? answer('HELLO', f.seq, { ...GOOD_HELLO, serial: '../cam' }) : null));
    await expect(Session.connect(d1)).rejects.toMatchObject({ code: 'PROTO_BAD_NAME' });
    const { dock: d2 } = scriptedCamera((name, f) => (name === 'HELLO' ? answer('HELLO', f.seq, { ...GOOD_HELLO, version: 9 }) : null));
    await expect(Session.connect(d2)).rejects.toMatchObject({ code: 'PROTO_VERSION' });
    const { dock: d3 } = scriptedCamera((name, f) => (name === 'HELLO' ? answer('HELLO', f.seq, { ...GOOD_HELLO, maxPayload: 100 }) : null));
    await expect(Session.connect(d3)).rejects.toMatchObject({ code: 'PROTO_UNEXPECTED' });
  });

  it('a corrupted byte at every position of an answer: discarded, resynchronised, retried, answered', async () => {
    const len = answer('STATUS', 1, STATUS).length;
    for (let pos = 0; pos < len; pos++) {
      const s = await sessionWith(
        badThenGood((seq) => {
          const f = answer('STATUS', seq, STATUS);
          f[pos]! ^= 0xa5;
          return f;
        }),
        { timeoutMs: 20, retries: 3 },
      );
      const st = await s.status();
      expect(st).toEqual(STATUS);
      expect(s.stats.retries).toBeGreaterThanOrEqual(1);
      await s.close();
    }
  });

  it('answers out of order (a camera breaking the ordering rule): both requests still complete, the late copy is stale', async () => {
    let held: Buffer | undefined;
    const s = await sessionWith((name, f) => {
      if (name !== 'STATUS') return null;
      const a = answer('STATUS', f.seq, STATUS);
      if (!held) {
        held = a; // keep the first answer back and send it after the second
        return [];
      }
      const out = [a, held];
      held = Buffer.alloc(0);
      return out;
    });
    const [a, b] = await Promise.all([s.status(), s.status()]);
    expect([a.batteryPct, b.batteryPct]).toEqual([50, 50]);
    expect(s.stats.gapResends).toBeGreaterThanOrEqual(1);
    expect(s.stats.stale).toBeGreaterThanOrEqual(1);
  });

  it('an answer to a sequence number nobody asked for is counted as stale and ignored', async () => {
    const s = await sessionWith((name, f) => (name === 'STATUS' ? [answer('STATUS', f.seq + 1000, STATUS), answer('STATUS', f.seq, STATUS)] : null));
    expect((await s.status()).batteryPct).toBe(50);
    expect(s.stats.stale).toBe(1);
  });
});

describe('bad input to a camera (the Endpoint)', () => {
  function endpointPair() {
    const [dock, camera] = LoopbackTransport.pair('ep');
    const ep = new Endpoint(camera, { STATUS: () => STATUS, READ: (r) => ({ offset: r.offset, data: Buffer.alloc(0) }) });
    const answers: { type: number; seq: number; code?: number }[] = [];
    const dec = new FrameDecoder({
      onFrame: (f) => answers.push({ type: f.type, seq: f.seq, code: f.type === MESSAGES.ERROR.type ? decodeStruct(MESSAGES.ERROR.res, f.payload).code : undefined }),
    });
    dock.on('data', (c) => dec.push(c));
    return { dock, ep, answers };
  }
  const until = async (cond: () => boolean): Promise<void> => {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  };

  it('answers an unknown type, an unknown version and a malformed payload with typed ERRORs', async () => {
    const { dock, answers } = endpointPair();
    await dock.write(encodeFrame({ type: 0x42, flags: 0, seq: 1, payload: Buffer.alloc(0) }));
    await dock.write(encodeFrame({ version: 7, type: MESSAGES.STATUS.type, flags: 0, seq: 2, payload: Buffer.alloc(0) }));
    await dock.write(encodeFrame({ type: MESSAGES.READ.type, flags: 0, seq: 3, payload: Buffer.from([1, 2]) }));
    await dock.write(encodeFrame({ type: MESSAGES.LIST_CLIPS.type, flags: 0, seq: 4, payload: Buffer.alloc(6) })); // no handler
    await dock.write(encodeFrame({ type: MESSAGES.STATUS.type, flags: 0, seq: 5, payload: Buffer.alloc(0) }));
    await until(() => answers.length >= 5);
    expect(answers).toEqual([
      { type: 0x7f, seq: 1, code: REMOTE_ERRORS.UNKNOWN_TYPE },
      { type: 0x7f, seq: 2, code: REMOTE_ERRORS.UNSUPPORTED_VERSION },
      { type: 0x7f, seq: 3, code: REMOTE_ERRORS.BAD_PAYLOAD },
      { type: 0x7f, seq: 4, code: REMOTE_ERRORS.UNKNOWN_TYPE },
      { type: MESSAGES.STATUS.type, seq: 5, code: undefined },
    ]);
  });

  it('survives 2 MB of random bytes and still answers the next request', async () => {
    const { dock, ep, answers } = endpointPair();
    let x = 12345;
    const noise = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < noise.length; i++) noise[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    await dock.write(noise);
    await dock.write(encodeFrame({ type: MESSAGES.STATUS.type, flags: 0, seq: 99, payload: Buffer.alloc(0) }));
    await until(() => answers.length >= 1);
    expect(answers.at(-1)).toEqual({ type: MESSAGES.STATUS.type, seq: 99, code: undefined });
    expect(ep.stats.discarded).toBeGreaterThan(0);
    expect(PROTOCOL_MAX_PAYLOAD).toBe(1024 * 1024);
  });
});
