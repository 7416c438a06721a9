/**
 * Seeded pseudo-random numbers (sfc32), so that a simulated fleet, its clips and
 * its faults are the same for the same --seed. Not for anything secret.
 */
import { createHash } from 'node:crypto';

export class Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** `seed` and `stream` name an independent sequence (e.g. seed 7, stream "BC4-…/faults"). */
  constructor(seed: number | string, stream = '') {
    const h = createHash('sha256').update(`${seed}\0${stream}`).digest();
    this.#a = h.readUInt32LE(0);
    this.#b = h.readUInt32LE(4);
    this.#c = h.readUInt32LE(8);
    this.#d = h.readUInt32LE(12);
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  /** Number of trials up to and including the first success, for success probability p. */
  geometric(p: number): number {
    if (p >= 1) return 1;
    const u = 1 - this.next(); // (0, 1]
    return Math.max(1, Math.ceil(Math.log(u) / Math.log(1 - p)));
  }

  /** `k` distinct indices from [0, n), in ascending order. */
  pick(n: number, k: number): number[] {
    const idx = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    return idx.slice(0, Math.min(k, n)).sort((a, b) => a - b);
  }
}
