import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BaseTransport, type TransportKind } from '../hal/Transport.js';
import { ModeledLink, PERFECT_LINK, type LinkModel } from './ModeledLink.js';
import { Random } from './Random.js';

/** The far end of the modelled link: records what reaches it, and can send or vanish. */
class Wire extends BaseTransport {
  readonly kind: TransportKind = 'loopback';
  readonly path = 'wire:test';
  readonly written: Buffer[] = [];

  constructor() {
    super();
    this.markOpen();
  }

  async open(): Promise<void> {
    this.markOpen();
  }

  // Records even after close, so a test sees anything the link still delivers.
  async write(data: Buffer): Promise<void> {
    this.written.push(Buffer.from(data));
  }

  async close(): Promise<void> {
    this.markClosed();
  }

  send(data: Buffer): void {
    this.emit('data', data);
  }

  pull(): void {
    this.lost('pulled out');
  }
}

function link(model: Partial<LinkModel> = {}, seed = 1): { wire: Wire; link: ModeledLink; received: Buffer[] } {
  const wire = new Wire();
  const l = new ModeledLink(wire, { ...PERFECT_LINK, ...model }, new Random(seed, 'modeled-link-test'));
  const received: Buffer[] = [];
  l.on('data', (d) => received.push(Buffer.from(d)));
  return { wire, link: l, received };
}

/** Deterministic test bytes. */
function pattern(n: number, salt: string): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, block = 0; i < n; block++) {
    const h = createHash('sha256').update(`${salt}/${block}`).digest();
    i += h.copy(out, i);
  }
  return out;
}

function bitDifferences(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]! ^ b[i]!;
    while (x) {
      n += x & 1;
      x >>= 1;
    }
  }
  return n;
}

async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!done()) throw new Error(`gave up waiting for ${what}`);
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 60));

describe('ModeledLink', () => {
  it('passes bytes unchanged both ways on a perfect link, and counts them', async () => {
    const { wire, link: l, received } = link();
    expect(l.isOpen).toBe(true);
    expect(l.kind).toBe('loopback');
    expect(l.path).toBe('wire:test');
    const out = [pattern(100, 'a'), pattern(5000, 'b'), Buffer.alloc(0), pattern(1, 'c')];
    for (const b of out) await l.write(b);
    expect(Buffer.concat(wire.written).equals(Buffer.concat(out))).toBe(true);
    const inbound = [pattern(300, 'd'), pattern(7, 'e')];
    for (const b of inbound) wire.send(b);
    expect(Buffer.concat(received).equals(Buffer.concat(inbound))).toBe(true);
    expect(l.stats).toEqual({ framesDropped: 0, bitsFlipped: 0, bytesOut: 5101, bytesIn: 307 });
  });

  it('flips about N·8·ber bits of what the camera writes, without touching the caller’s buffer', async () => {
    const ber = 1e-3;
    const { wire, link: l } = link({ ber });
    const sent: Buffer[] = [];
    for (let i = 0; i < 64; i++) {
      const chunk = pattern(16 * 1024, `out/${i}`);
      const copy = Buffer.from(chunk);
      await l.write(chunk);
      expect(chunk.equals(copy)).toBe(true);
      sent.push(chunk);
    }
    const all = Buffer.concat(sent);
    const flipped = bitDifferences(all, Buffer.concat(wire.written));
    const expected = all.length * 8 * ber; // ≈ 8389
    expect(flipped).toBe(l.stats.bitsFlipped);
    expect(flipped).toBeGreaterThan(expected * 0.8);
    expect(flipped).toBeLessThan(expected * 1.2);
    // Errors are spread over the whole stream, not bunched at the start.
    const half = all.length / 2;
    expect(bitDifferences(all.subarray(half), Buffer.concat(wire.written).subarray(half))).toBeGreaterThan(expected * 0.3);
  });

  it('flips about N·8·ber bits of what the camera receives', () => {
    const ber = 2e-4;
    const { wire, link: l, received } = link({ ber }, 2);
    const sent: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      const chunk = pattern(10_000, `in/${i}`);
      wire.send(chunk);
      sent.push(chunk);
    }
    const all = Buffer.concat(sent);
    const flipped = bitDifferences(all, Buffer.concat(received));
    const expected = all.length * 8 * ber; // 1600
    expect(flipped).toBe(l.stats.bitsFlipped);
    expect(flipped).toBeGreaterThan(expected * 0.75);
    expect(flipped).toBeLessThan(expected * 1.25);
    expect(l.stats.bytesIn).toBe(all.length);
  });

  it('flips the same bits for the same seed', async () => {
    const runs = [1, 2].map(async () => {
      const { wire, link: l } = link({ ber: 1e-3 }, 77);
      for (let i = 0; i < 8; i++) await l.write(pattern(4096, `same/${i}`));
      return Buffer.concat(wire.written).toString('hex');
    });
    const [a, b] = await Promise.all(runs);
    expect(a).toBe(b);
  });

  it('drops every frame with drop=1, and counts each one', async () => {
    const { wire, link: l } = link({ drop: 1 });
    for (let i = 0; i < 10; i++) await l.write(pattern(64, `drop/${i}`));
    expect(wire.written).toEqual([]);
    expect(l.stats.framesDropped).toBe(10);
    expect(l.stats.bytesOut).toBe(640);
    // Only what the camera sends is lost; what it receives arrives.
    const { link: l2, wire: w2, received } = link({ drop: 1 });
    w2.send(Buffer.from('to the camera'));
    expect(Buffer.concat(received).toString()).toBe('to the camera');
    expect(l2.stats.framesDropped).toBe(0);
  });

  it('drops about the given share of frames with drop=0.3', async () => {
    const { wire, link: l } = link({ drop: 0.3 }, 5);
    for (let i = 0; i < 400; i++) await l.write(Buffer.from([i & 0xff]));
    expect(l.stats.framesDropped + wire.written.length).toBe(400);
    expect(l.stats.framesDropped).toBeGreaterThan(80);
    expect(l.stats.framesDropped).toBeLessThan(160);
  });

  it('delivers everything intact and in order through a rate- and latency-limited lane', async () => {
    const { wire, link: l, received } = link({ rateBytesPerS: 2_000_000, latencyMs: 3 });
    const out = Array.from({ length: 20 }, (_, i) => pattern(1000 + i, `lane-out/${i}`));
    await Promise.all(out.map((b) => l.write(b)));
    const inbound = Array.from({ length: 20 }, (_, i) => pattern(500 + i, `lane-in/${i}`));
    for (const b of inbound) wire.send(b);
    const total = (bufs: Buffer[]): number => bufs.reduce((n, b) => n + b.length, 0);
    await until(() => total(wire.written) === total(out) && total(received) === total(inbound), 'the lanes to drain');
    expect(Buffer.concat(wire.written).equals(Buffer.concat(out))).toBe(true);
    expect(Buffer.concat(received).equals(Buffer.concat(inbound))).toBe(true);
  });

  it('lets the camera queue about 20 ms of a fast line before write() waits (a 40 MB/s pull idled behind a two-frame buffer, and behind 10 ms on a loaded host)', async () => {
    // 64 KiB frames at 40 MB/s leave every 1.6 ms: twenty milliseconds is twelve of them.
    const { link: l } = link({ rateBytesPerS: 40_000_000, latencyMs: 10 });
    const frame = pattern(64 * 1024, 'tx-buffer');
    let resolved = 0;
    for (let i = 0; i < 16; i++) void l.write(frame).then(() => resolved++);
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBeGreaterThanOrEqual(12);
    expect(resolved).toBeLessThan(16);
    // A slow line keeps its 128 KiB floor: two 64 KiB frames, then backpressure.
    const slow = link({ rateBytesPerS: 300_000 }).link;
    let slowResolved = 0;
    for (let i = 0; i < 4; i++) void slow.write(frame).then(() => slowResolved++);
    await new Promise((r) => setImmediate(r));
    expect(slowResolved).toBe(2);
    await Promise.all([l.close(), slow.close()]);
  });

  it('close() stops delivery of what is still in the lanes, and refuses writes after', async () => {
    const { wire, link: l, received } = link({ latencyMs: 20 });
    await l.write(Buffer.from('in flight to the dock'));
    wire.send(Buffer.from('in flight to the camera'));
    await l.close();
    expect(l.isOpen).toBe(false);
    expect(wire.isOpen).toBe(false);
    await settle();
    expect(wire.written).toEqual([]);
    expect(received).toEqual([]);
    wire.send(Buffer.from('after close'));
    expect(received).toEqual([]);
    await expect(l.write(Buffer.from('x'))).rejects.toMatchObject({ code: 'HAL_DISCONNECTED' });
  });

  it('close() stops delivery on a direct (unlimited) link too', async () => {
    const { wire, link: l, received } = link();
    await l.close();
    wire.send(Buffer.from('after close'));
    expect(received).toEqual([]);
  });

  it('reports the far end vanishing as disconnected, once', () => {
    const { wire, link: l } = link({ latencyMs: 5 });
    const events: string[] = [];
    l.on('disconnected', (e) => events.push(e.code));
    wire.pull();
    wire.pull();
    expect(events).toEqual(['HAL_DISCONNECTED']);
    expect(l.isOpen).toBe(false);
  });
});
