/**
 * Recycles the buffers that large answers are decoded into, while readRange() pulls.
 *
 *   FrameDecoder ── take() ──► READ answer ──► readRange sink ──► give() ──┐
 *        ▲                                                                  │
 *        └──────────────────────────── free list ◄─────────────────────────┘
 *
 * Without it every 64 KiB answer is a fresh allocation outside the JS heap. At 40 MB/s
 * that churn made V8 run a major GC every half second, each a 10-70 ms pause on a
 * loaded machine and each an idle gap on the link; fresh memory is also page-faulted
 * on first touch (copying 64 KiB into it costs ~20x copying into a warm buffer).
 *
 * Invariant: a buffer is either on the free list or lent (in the WeakMap), never both;
 * give() of anything else (a view of memory that is not ours, or given twice) is a
 * no-op, so a frame that is never given back is simply collected.
 */
export class FramePool {
  readonly #free: Buffer[] = [];
  readonly #lent = new WeakMap<ArrayBufferLike, Buffer>();
  readonly capacity: number; // bytes per buffer
  readonly keep: number; // most buffers on the free list

  constructor(capacity: number, keep: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`FramePool capacity must be a positive integer, got ${capacity}`);
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`FramePool keep must be a non-negative integer, got ${keep}`);
    this.capacity = capacity;
    this.keep = keep;
  }

  /** A buffer of `capacity` bytes for a frame of `bytes`, or undefined when it does not fit. */
  take(bytes: number): Buffer | undefined {
    if (bytes > this.capacity) return undefined;
    const buf = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.capacity);
    this.#lent.set(buf.buffer, buf);
    return buf;
  }

  /** Takes back the buffer behind `view` (any view into a lent buffer), once. */
  give(view: Uint8Array): void {
    const buf = this.#lent.get(view.buffer);
    if (!buf) return;
    this.#lent.delete(view.buffer);
    if (this.#free.length < this.keep) this.#free.push(buf);
  }

  /** Drops the free list (lent buffers stay valid and are collected when dropped). */
  clear(): void {
    this.#free.length = 0;
  }

  get free(): number {
    return this.#free.length;
  }
}
