import { describe, expect, it } from 'vitest';
import { FramePool } from './FramePool.js';

describe('FramePool', () => {
  it('hands a given-back buffer out again, from any view into it, once', () => {
    const pool = new FramePool(1024, 2);
    const a = pool.take(1000)!;
    expect(a.length).toBe(1024);
    pool.give(a.subarray(12, 500));
    pool.give(a); // twice: a no-op, not a second free entry
    expect(pool.free).toBe(1);
    expect(pool.take(10)).toBe(a);
    expect(pool.take(10)).not.toBe(a); // lent again: a fresh one
  });

  it('refuses a frame larger than its buffers, ignores memory that is not its own, and keeps at most `keep` free', () => {
    const pool = new FramePool(1024, 1);
    expect(pool.take(1025)).toBeUndefined();
    pool.give(Buffer.alloc(1024));
    expect(pool.free).toBe(0);
    const [a, b] = [pool.take(1)!, pool.take(1)!];
    pool.give(a);
    pool.give(b);
    expect(pool.free).toBe(1);
    pool.clear();
    expect(pool.free).toBe(0);
  });

  it('validates its options, naming them', () => {
    expect(() => new FramePool(0, 1)).toThrow(/capacity/);
    expect(() => new FramePool(10, -1)).toThrow(/keep/);
  });
});
