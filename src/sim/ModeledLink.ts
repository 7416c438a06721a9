/**
 * Wraps the camera's end of a transport so that the link behaves like a real one:
 * a byte rate and a one-way latency in each direction (a USB 2 hub, a 115200-baud
 * line), bit errors, and lost frames. Pseudo-terminals and the loopback pair are
 * infinitely fast and perfect, so the simulator imposes what the hardware would.
 *
 *   camera writes ─► [drop?] ─► [flip bits] ─► lane(rate, latency) ─► inner.write
 *   inner 'data'  ─► [flip bits] ─► lane(rate, latency) ─► 'data' to the camera
 *
 * A lane schedules each chunk at an absolute time (start = max(now, busyUntil),
 * departs after len/rate, arrives latency later), so timer lateness never adds up:
 * the long-run rate is the modelled rate. write() resolves once no more than a
 * transmit buffer's worth is queued ahead (like a UART FIFO, or the bulk transfers a
 * USB device controller has queued): the camera gets backpressure, and latency stays
 * hidden by pipelining. The buffer holds TX_BUFFER_MS of line time (at least
 * TX_BUFFER_MIN_BYTES), so the line does not idle each time the camera's event loop,
 * shared with the dock in a simulation, answers a few milliseconds late: with a fixed
 * 128 KiB (two 64 KiB frames, 3.3 ms at 40 MB/s) the line idled 13% of a pull even
 * with 32 reads in flight (2 MiB, well over the 0.8 MB a 20 ms round trip holds).
 * 10 ms was still short on a loaded 2-core machine: the shared loop stalls for 15-30
 * ms at a time (GC, a flash read-ahead that waits for the thread pool, the process
 * descheduled), a few times a second, and each stall past the buffer idled the line
 * (12% of a pull at 32 reads in flight). 20 ms (800 KB at 40 MB/s, the queued bulk
 * transfers of a camera with DMA) rides through most of them; the dock's window must
 * cover it as well as the round trip, which its 2 MiB default does.
 */
import { performance } from 'node:perf_hooks';
import { BaseTransport, type Transport, type TransportKind } from '../hal/Transport.js';
import type { Random } from './Random.js';

export interface LinkModel {
  rateBytesPerS: number; // per direction; 0 = unlimited
  latencyMs: number; // one way; default 0
  ber: number; // bit error rate, both directions
  drop: number; // probability that a frame the camera writes is lost
}

export const PERFECT_LINK: LinkModel = { rateBytesPerS: 0, latencyMs: 0, ber: 0, drop: 0 };

export interface LinkStats {
  framesDropped: number;
  bitsFlipped: number;
  bytesOut: number;
  bytesIn: number;
}

const TX_BUFFER_MIN_BYTES = 128 * 1024;
const TX_BUFFER_MS = 20;

class Lane {
  #busyUntil = 0;
  #queue: { at: number; data: Buffer }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    readonly model: LinkModel,
    readonly deliver: (data: Buffer) => void,
  ) {}

  /** Schedules `data`; resolves when it has left (its last byte is on the wire). */
  send(data: Buffer): Promise<void> {
    const now = performance.now();
    const start = Math.max(now, this.#busyUntil);
    const departs = start + (this.model.rateBytesPerS > 0 ? (data.length * 1000) / this.model.rateBytesPerS : 0);
    this.#busyUntil = departs;
    this.#queue.push({ at: departs + this.model.latencyMs, data });
    this.#pump();
    const bufferedMs = this.model.rateBytesPerS > 0 ? Math.max(TX_BUFFER_MS, (TX_BUFFER_MIN_BYTES * 1000) / this.model.rateBytesPerS) : 0;
    const wait = departs - now - bufferedMs;
    return wait > 1 ? new Promise((r) => setTimeout(r, wait)) : Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#queue = [];
  }

  #pump(): void {
    if (this.#timer || this.#closed) return;
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now + 0.5) this.deliver(this.#queue.shift()!.data);
    const head = this.#queue[0];
    if (head) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, head.at - now);
    }
  }
}

export class ModeledLink extends BaseTransport {
  readonly kind: TransportKind;
  readonly path: string;
  readonly stats: LinkStats = { framesDropped: 0, bitsFlipped: 0, bytesOut: 0, bytesIn: 0 };
  readonly #inner: Transport;
  readonly #model: LinkModel;
  readonly #random: Random;
  readonly #out: Lane;
  readonly #in: Lane;
  readonly #direct: boolean;
  #bitsToErrorOut: number;
  #bitsToErrorIn: number;
  readonly #onData = (chunk: Buffer): void => {
    this.stats.bytesIn += chunk.length;
    const data = this.#model.ber > 0 ? this.#flip(Buffer.from(chunk), 'in') : chunk;
    if (this.#direct) this.emit('data', data);
    else void this.#in.send(data);
  };
  readonly #onLost = (): void => this.lost('link lost');

  constructor(inner: Transport, model: LinkModel, random: Random) {
    super();
    this.kind = inner.kind;
    this.path = inner.path;
    this.#inner = inner;
    this.#model = model;
    this.#random = random;
    this.#direct = model.rateBytesPerS === 0 && model.latencyMs === 0;
    this.#out = new Lane(model, (d) => void inner.write(d).catch(() => undefined));
    this.#in = new Lane(model, (d) => this.emit('data', d));
    this.#bitsToErrorOut = model.ber > 0 ? random.geometric(model.ber) : Infinity;
    this.#bitsToErrorIn = model.ber > 0 ? random.geometric(model.ber) : Infinity;
    inner.on('data', this.#onData);
    inner.on('disconnected', this.#onLost);
    if (inner.isOpen) this.markOpen();
  }

  async open(): Promise<void> {
    await this.#inner.open();
    this.markOpen();
  }

  async write(data: Buffer): Promise<void> {
    if (!this.isOpen) throw this.notOpen();
    this.stats.bytesOut += data.length;
    if (this.#random.chance(this.#model.drop)) {
      this.stats.framesDropped++;
      return;
    }
    const out = this.#model.ber > 0 ? this.#flip(Buffer.from(data), 'out') : data;
    if (this.#direct) return this.#inner.write(out);
    return this.#out.send(out);
  }

  async close(): Promise<void> {
    this.markClosed();
    this.#out.close();
    this.#in.close();
    this.#inner.off('data', this.#onData);
    this.#inner.off('disconnected', this.#onLost);
    await this.#inner.close();
  }

  /** Flips bits in place at geometric gaps, carrying the gap across chunks. */
  #flip(buf: Buffer, dir: 'in' | 'out'): Buffer {
    const bits = buf.length * 8;
    let next = dir === 'out' ? this.#bitsToErrorOut : this.#bitsToErrorIn;
    let pos = next - 1;
    while (pos < bits) {
      buf[pos >> 3]! ^= 1 << (pos & 7);
      this.stats.bitsFlipped++;
      pos += this.#random.geometric(this.#model.ber);
    }
    next = pos - bits + 1;
    if (dir === 'out') this.#bitsToErrorOut = next;
    else this.#bitsToErrorIn = next;
    return buf;
  }
}
