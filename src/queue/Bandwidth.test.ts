import { getEventListeners } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isDockError } from '../errors.js';
import { BandwidthLimiter, formatRate, nextRateChange, parseBwTimetable, PIECE_BYTES, rateAt, type Timetable } from './Bandwidth.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const DAILY = '08:00,512k 12:00,10M 13:00,512k 18:00,30M 23:00,off';
const WEEKLY = 'Mon-00:00,512 Fri-23:59,10M Sat-10:00,1M Sun-20:00,off';

/** Local time in the week of Monday 2024-01-15 (Sunday is the 14th before it, the 21st after). */
function at(day: number, hh: number, mm: number, ss = 0, ms = 0): Date {
  return new Date(2024, 0, day, hh, mm, ss, ms);
}

function only(spec: string): number | null {
  const tt = parseBwTimetable(spec);
  expect(tt.entries).toHaveLength(1);
  return rateAt(tt, at(15, 12, 0));
}

function refusal(spec: string): { message: string; code: string } {
  try {
    parseBwTimetable(spec);
  } catch (err) {
    expect(isDockError(err, 'CONFIG_INVALID')).toBe(true);
    return { message: (err as Error).message, code: (err as { code: string }).code };
  }
  throw new Error(`"${spec}" was accepted`);
}

describe('parseBwTimetable', () => {
  it('reads a single rate: bare numbers are KiB/s, suffixes are binary and case-insensitive', () => {
    expect(only('10M')).toBe(10 * MiB);
    expect(only('10m')).toBe(10 * MiB);
    expect(only('512')).toBe(512 * KiB);
    expect(only('512k')).toBe(512 * KiB);
    expect(only('512K')).toBe(512 * KiB);
    expect(only('100B')).toBe(100);
    expect(only('100b')).toBe(100);
    expect(only('1G')).toBe(GiB);
    expect(only('2T')).toBe(2 * 1024 * GiB);
    expect(only('0.5M')).toBe(512 * KiB);
    expect(only('1.5k')).toBe(1536);
    expect(only('10Mi')).toBe(10 * MiB);
    expect(only('10MiB')).toBe(10 * MiB);
    expect(only('  10M  ')).toBe(10 * MiB);
  });

  it('reads off as unlimited', () => {
    expect(only('off')).toBeNull();
    expect(only('OFF')).toBeNull();
  });

  it('uses only the upload half of UP:DOWN', () => {
    expect(only('10M:100k')).toBe(10 * MiB);
    expect(only('off:1M')).toBeNull();
    expect(only('1M:off')).toBe(MiB);
    expect(rateAt(parseBwTimetable('08:00,1M:off 18:00,off:1M'), at(15, 9, 0))).toBe(MiB);
  });

  it('reads the daily timetable from the rclone docs', () => {
    expect(parseBwTimetable(DAILY).entries.map((e) => [e.day, e.minute, e.rate])).toEqual([
      [null, 8 * 60, 512 * KiB],
      [null, 12 * 60, 10 * MiB],
      [null, 13 * 60, 512 * KiB],
      [null, 18 * 60, 30 * MiB],
      [null, 23 * 60, null],
    ]);
  });

  it('reads the weekly timetable from the rclone docs', () => {
    expect(parseBwTimetable(WEEKLY).entries.map((e) => [e.day, e.minute, e.rate])).toEqual([
      [1, 0, 512 * KiB],
      [5, 23 * 60 + 59, 10 * MiB],
      [6, 10 * 60, MiB],
      [0, 20 * 60, null],
    ]);
    expect(parseBwTimetable('monday-08:00,1M SUNDAY-09:00,off').entries.map((e) => e.day)).toEqual([1, 0]);
  });

  it('accepts semicolons and runs of spaces between entries', () => {
    const entries = parseBwTimetable(' 08:00,512k;18:00,off ;  23:00,1M ').entries;
    expect(entries.map((e) => e.text)).toEqual(['08:00,512k', '18:00,off', '23:00,1M']);
  });

  it('refuses a bad time, naming the entry, the part and what is expected', () => {
    expect(refusal('25:00,1M').message).toBe('bandwidth timetable entry "25:00,1M": time must be HH:MM from 00:00 to 23:59');
    expect(refusal('08:60,1M').message).toBe('bandwidth timetable entry "08:60,1M": time must be HH:MM from 00:00 to 23:59');
    expect(refusal('8:00,1M').message).toContain('"8:00,1M": time must be HH:MM');
    expect(refusal('2401,666').message).toContain('time must be HH:MM');
    expect(refusal('Mon-bad,666').message).toContain('"Mon-bad,666": time must be HH:MM');
    expect(refusal('08:00,1M 24:00,off').message).toContain('"24:00,off": time');
  });

  it('refuses a bad day', () => {
    expect(refusal('Mom-08:00,1M').message).toBe('bandwidth timetable entry "Mom-08:00,1M": day must be Mon, Tue, Wed, Thu, Fri, Sat or Sun (or the full name) before -HH:MM');
    expect(refusal('Mon-Tue-08:00,1M').message).toContain('time must be HH:MM');
  });

  it('refuses a bad rate, saying which half of UP:DOWN', () => {
    expect(refusal('08:00,10X').message).toBe(
      'bandwidth timetable entry "08:00,10X": rate must be a number with an optional unit B, K, M, G, T or P (binary; a bare number is KiB/s), or off',
    );
    expect(refusal('1000X').message).toContain('bandwidth limit "1000X": rate must be');
    expect(refusal('10M:bad').message).toContain('download rate must be');
    expect(refusal('-1M:1M').message).toContain('upload rate must be');
    expect(refusal('10M:').message).toContain('download rate must be');
    expect(refusal('10MB').message).toContain('(10MB is ambiguous: write 10M or 10MiB)');
    expect(refusal('1e3').message).toContain('rate must be');
  });

  it('refuses rate 0, which rclone reads as off and a reader may read as paused', () => {
    expect(refusal('0').message).toBe('bandwidth limit "0": rate must be at least 1 byte/s; write off for no limit (rclone reads 0 as off)');
    expect(refusal('08:00,0 18:00,off').message).toContain('"08:00,0": rate must be at least 1 byte/s');
    expect(only('1M:0')).toBe(MiB); // the download half is never used
  });

  it('refuses entries that are not TIME,RATE', () => {
    expect(refusal('').message).toContain('bandwidth limit is empty');
    expect(refusal('   ').message).toContain('bandwidth limit is empty');
    expect(refusal('bad,bad').message).toContain('"bad,bad": time must be');
    expect(refusal('08:00,1M,2M').message).toBe('bandwidth timetable entry "08:00,1M,2M": must be TIME,RATE such as 08:00,512k or Mon-08:00,10M');
    expect(refusal('08:00,1M 18:00').message).toContain('"18:00": must be TIME,RATE');
  });

  it('refuses two entries at the same time, but lets a day override every day', () => {
    expect(refusal('08:00,1M 08:00,2M').message).toBe('bandwidth timetable entries "08:00,1M" and "08:00,2M" start at the same time: keep one');
    expect(refusal('Mon-08:00,1M monday-08:00,2M').message).toContain('start at the same time');
    expect(() => parseBwTimetable('08:00,1M Mon-08:00,2M')).not.toThrow();
  });
});

describe('rateAt', () => {
  it('follows the daily timetable around each boundary', () => {
    const tt = parseBwTimetable(DAILY);
    expect(rateAt(tt, at(15, 7, 59, 59, 999))).toBeNull();
    expect(rateAt(tt, at(15, 8, 0))).toBe(512 * KiB);
    expect(rateAt(tt, at(15, 11, 59, 59, 999))).toBe(512 * KiB);
    expect(rateAt(tt, at(15, 12, 0))).toBe(10 * MiB);
    expect(rateAt(tt, at(15, 12, 59))).toBe(10 * MiB);
    expect(rateAt(tt, at(15, 13, 0))).toBe(512 * KiB);
    expect(rateAt(tt, at(15, 17, 59, 59, 999))).toBe(512 * KiB);
    expect(rateAt(tt, at(15, 18, 0))).toBe(30 * MiB);
    expect(rateAt(tt, at(15, 22, 59))).toBe(30 * MiB);
    expect(rateAt(tt, at(15, 23, 0))).toBeNull();
  });

  it('wraps past midnight to the last entry of the day before', () => {
    const tt = parseBwTimetable('22:00,1M 06:00,off');
    expect(rateAt(tt, at(15, 21, 59))).toBeNull();
    expect(rateAt(tt, at(15, 22, 0))).toBe(MiB);
    expect(rateAt(tt, at(16, 0, 0))).toBe(MiB);
    expect(rateAt(tt, at(16, 5, 59))).toBe(MiB);
    expect(rateAt(tt, at(16, 6, 0))).toBeNull();
    // Sunday early morning wraps to Saturday night, across the week's start.
    expect(rateAt(tt, at(14, 3, 0))).toBe(MiB);
  });

  it('follows the weekly timetable and wraps around the week', () => {
    const tt = parseBwTimetable(WEEKLY);
    expect(rateAt(tt, at(15, 0, 0))).toBe(512 * KiB); // Monday midnight
    expect(rateAt(tt, at(14, 23, 59))).toBeNull(); // the Sunday before
    expect(rateAt(tt, at(18, 12, 0))).toBe(512 * KiB); // Thursday
    expect(rateAt(tt, at(19, 23, 58))).toBe(512 * KiB); // Friday
    expect(rateAt(tt, at(19, 23, 59))).toBe(10 * MiB);
    expect(rateAt(tt, at(20, 9, 59))).toBe(10 * MiB); // Saturday
    expect(rateAt(tt, at(20, 10, 0))).toBe(MiB);
    expect(rateAt(tt, at(21, 19, 59))).toBe(MiB); // Sunday
    expect(rateAt(tt, at(21, 20, 0))).toBeNull();
  });

  it('regression: Sunday before its first entry keeps Saturday\'s rate, not the entry listed last (rclone does that)', () => {
    const tt = parseBwTimetable(WEEKLY);
    expect(rateAt(tt, at(21, 0, 0))).toBe(MiB);
    expect(rateAt(tt, at(21, 10, 0))).toBe(MiB);
    // Order as written does not matter.
    const shuffled = parseBwTimetable('Sun-20:00,off Sat-10:00,1M Mon-00:00,512 Fri-23:59,10M');
    for (const when of [at(21, 10, 0), at(15, 0, 0), at(19, 23, 59), at(20, 10, 0), at(21, 20, 0)]) expect(rateAt(shuffled, when)).toBe(rateAt(tt, when));
  });

  it('mixes day entries with every-day entries as rclone does (every-day recurs each day)', () => {
    const tt = parseBwTimetable('08:00,1M 18:00,off Sat-08:00,100k');
    expect(rateAt(tt, at(19, 9, 0))).toBe(MiB); // Friday
    expect(rateAt(tt, at(20, 9, 0))).toBe(100 * KiB); // Saturday: the day's entry wins at 08:00
    expect(rateAt(tt, at(20, 18, 0))).toBeNull(); // the every-day 18:00 still applies
    expect(rateAt(tt, at(21, 7, 0))).toBeNull(); // Sunday morning, from Saturday 18:00
    expect(rateAt(tt, at(21, 8, 0))).toBe(MiB);
  });

  it('applies a single rate at every time', () => {
    const tt = parseBwTimetable('2M');
    for (const when of [at(14, 0, 0), at(17, 13, 37), at(20, 23, 59)]) expect(rateAt(tt, when)).toBe(2 * MiB);
  });

  it('is unlimited for an empty timetable', () => {
    const empty: Timetable = { entries: [] };
    expect(rateAt(empty, at(15, 12, 0))).toBeNull();
    expect(nextRateChange(empty, at(15, 12, 0))).toBeNull();
  });
});

describe('nextRateChange', () => {
  it('finds the next entry that changes the rate, today, tomorrow or next week', () => {
    const daily = parseBwTimetable(DAILY);
    expect(nextRateChange(daily, at(15, 7, 30, 15))).toEqual(at(15, 8, 0));
    expect(nextRateChange(daily, at(15, 17, 59, 59, 999))).toEqual(at(15, 18, 0));
    expect(nextRateChange(daily, at(15, 23, 30))).toEqual(at(16, 8, 0));
    const weekly = parseBwTimetable(WEEKLY);
    expect(nextRateChange(weekly, at(20, 11, 0))).toEqual(at(21, 20, 0));
    expect(nextRateChange(weekly, at(21, 20, 0))).toEqual(at(22, 0, 0));
  });

  it('skips entries that keep the same rate, and is null when nothing changes', () => {
    expect(nextRateChange(parseBwTimetable('08:00,1M 12:00,1M 18:00,off'), at(15, 9, 0))).toEqual(at(15, 18, 0));
    expect(nextRateChange(parseBwTimetable('10M'), at(15, 9, 0))).toBeNull();
    expect(nextRateChange(parseBwTimetable('08:00,1M Tue-09:00,1M'), at(15, 9, 0))).toBeNull();
  });
});

describe('formatRate', () => {
  it('prints binary units with one decimal, or off', () => {
    expect(formatRate(null)).toBe('off');
    expect(formatRate(2 * MiB)).toBe('2.0 MiB/s');
    expect(formatRate(512)).toBe('512 B/s');
    expect(formatRate(512 * KiB)).toBe('512.0 KiB/s');
    expect(formatRate(1.5 * GiB)).toBe('1.5 GiB/s');
    expect(formatRate(MiB - 1)).toBe('1.0 MiB/s');
  });
});

/** Takes one piece after another until stopped, counting what it was granted. */
function drain(limiter: BandwidthLimiter, signal?: AbortSignal): { bytes: number; done: Promise<void> } {
  const tally = { bytes: 0, done: Promise.resolve() };
  tally.done = (async () => {
    for (;;) {
      await limiter.take(PIECE_BYTES, signal);
      tally.bytes += PIECE_BYTES;
    }
  })().catch(() => undefined);
  return tally;
}

function settled(p: Promise<unknown>): { value: 'pending' | 'resolved' | 'rejected'; reason?: unknown } {
  const state: { value: 'pending' | 'resolved' | 'rejected'; reason?: unknown } = { value: 'pending' };
  p.then(
    () => (state.value = 'resolved'),
    (reason: unknown) => Object.assign(state, { value: 'rejected', reason }),
  );
  return state;
}

// 640 KiB/s: 100 ms of it is exactly one 64 KiB piece, so every count below is exact.
const PIECE_RATE = '640k';

describe('BandwidthLimiter (fake clock and timers)', () => {
  let stop: AbortController;

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(at(15, 12, 0));
    stop = new AbortController();
  });

  afterEach(() => {
    stop.abort();
    vi.useRealTimers();
  });

  function limiter(spec: string, opts: { burstMs?: number } = {}): BandwidthLimiter {
    return new BandwidthLimiter(parseBwTimetable(spec), { now: () => Date.now(), ...opts });
  }

  it('grants exactly the rate per interval after one burst', async () => {
    const lim = limiter(PIECE_RATE);
    const tally = drain(lim, stop.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(tally.bytes).toBe(PIECE_BYTES); // the burst: 100 ms of the rate
    await vi.advanceTimersByTimeAsync(1000);
    expect(tally.bytes).toBe(PIECE_BYTES + 640 * KiB);
    await vi.advanceTimersByTimeAsync(1000);
    expect(tally.bytes).toBe(PIECE_BYTES + 2 * 640 * KiB);
    await vi.advanceTimersByTimeAsync(99);
    expect(tally.bytes).toBe(PIECE_BYTES + 2 * 640 * KiB);
    await vi.advanceTimersByTimeAsync(1);
    expect(tally.bytes).toBe(2 * PIECE_BYTES + 2 * 640 * KiB);
  });

  it('keeps the burst to about 100 ms of the rate, and never below one piece', async () => {
    const fast = drain(limiter('10M'), stop.signal);
    const slow = drain(limiter('1'), stop.signal); // 1 KiB/s: a piece takes 64 s
    await vi.advanceTimersByTimeAsync(0);
    expect(fast.bytes).toBe(MiB); // 100 ms of 10 MiB/s
    expect(slow.bytes).toBe(PIECE_BYTES);
    await vi.advanceTimersByTimeAsync(63_999);
    expect(slow.bytes).toBe(PIECE_BYTES);
    await vi.advanceTimersByTimeAsync(1);
    expect(slow.bytes).toBe(2 * PIECE_BYTES);
  });

  it('honours burstMs', async () => {
    const tally = drain(limiter(PIECE_RATE, { burstMs: 500 }), stop.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(tally.bytes).toBe(5 * PIECE_BYTES);
    expect(() => limiter(PIECE_RATE, { burstMs: 0 })).toThrow(/burstMs must be a positive number/);
  });

  it('does not let an idle bucket save up more than its burst', async () => {
    const lim = limiter(PIECE_RATE);
    await vi.advanceTimersByTimeAsync(30_000);
    const tally = drain(lim, stop.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(tally.bytes).toBe(PIECE_BYTES);
  });

  it('setTimetable mid-stream changes the rate at once, for the waiter too', async () => {
    const lim = limiter(PIECE_RATE);
    const tally = drain(lim, stop.signal);
    await vi.advanceTimersByTimeAsync(1000);
    expect(tally.bytes).toBe(11 * PIECE_BYTES);
    lim.setTimetable(parseBwTimetable('1280k'));
    await vi.advanceTimersByTimeAsync(50);
    expect(tally.bytes).toBe(12 * PIECE_BYTES); // not at 100 ms, as the old rate would have it
    await vi.advanceTimersByTimeAsync(950);
    expect(tally.bytes).toBe(31 * PIECE_BYTES);
  });

  it('setTimetable to off releases every waiter at once', async () => {
    const lim = limiter('1'); // 1 KiB/s: each piece after the first waits 64 s
    await lim.take(PIECE_BYTES);
    const waiting = [settled(lim.take(PIECE_BYTES)), settled(lim.take(PIECE_BYTES))];
    await vi.advanceTimersByTimeAsync(10);
    expect(waiting.map((w) => w.value)).toEqual(['pending', 'pending']);
    lim.setTimetable(parseBwTimetable('off'));
    await vi.advanceTimersByTimeAsync(0);
    expect(waiting.map((w) => w.value)).toEqual(['resolved', 'resolved']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('re-reads the timetable as time passes: crossing 18:00 changes the rate without a restart', async () => {
    vi.setSystemTime(at(15, 17, 59, 59));
    const lim = limiter('08:00,640k 18:00,1280k');
    expect(lim.current()).toEqual({ rate: 640 * KiB, nextChange: at(15, 18, 0) });
    const tally = drain(lim, stop.signal);
    await vi.advanceTimersByTimeAsync(1000);
    expect(tally.bytes).toBe(11 * PIECE_BYTES);
    expect(lim.current()).toEqual({ rate: 1280 * KiB, nextChange: at(16, 8, 0) });
    await vi.advanceTimersByTimeAsync(1000);
    expect(tally.bytes).toBe(31 * PIECE_BYTES);
  });

  it('releases waiters when the timetable turns the limit off', async () => {
    vi.setSystemTime(at(15, 17, 59, 59));
    const lim = limiter('08:00,1 18:00,off');
    await lim.take(PIECE_BYTES);
    const second = settled(lim.take(PIECE_BYTES));
    const third = settled(lim.take(PIECE_BYTES));
    await vi.advanceTimersByTimeAsync(999);
    expect([second.value, third.value]).toEqual(['pending', 'pending']);
    await vi.advanceTimersByTimeAsync(1);
    expect([second.value, third.value]).toEqual(['resolved', 'resolved']);
  });

  it('serves waiters in arrival order: a small take does not overtake a large one', async () => {
    const lim = limiter(PIECE_RATE);
    await lim.take(PIECE_BYTES);
    const order: string[] = [];
    const big = lim.take(PIECE_BYTES).then(() => order.push('big'));
    const small = lim.take(1).then(() => order.push('small'));
    await vi.advanceTimersByTimeAsync(99);
    expect(order).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await vi.advanceTimersByTimeAsync(1);
    await Promise.all([big, small]);
    expect(order).toEqual(['big', 'small']);
  });

  it('shares the rate evenly between two concurrent uploads', async () => {
    const lim = limiter(PIECE_RATE);
    const a = drain(lim, stop.signal);
    const b = drain(lim, stop.signal);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(a.bytes + b.bytes).toBe(101 * PIECE_BYTES);
    expect(Math.abs(a.bytes - b.bytes)).toBeLessThanOrEqual(PIECE_BYTES);
  });

  it('does not pile abort listeners on a signal shared by many takes', async () => {
    const lim = limiter(PIECE_RATE);
    const tally = drain(lim, stop.signal);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(tally.bytes).toBe(51 * PIECE_BYTES);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(1); // the one pending take
  });

  it('lets an oversized take go once the bucket is full, and makes the others pay for it', async () => {
    const lim = limiter(PIECE_RATE);
    await lim.take(4 * PIECE_BYTES); // the bucket holds one piece, so this leaves 3 in debt
    const next = settled(lim.take(PIECE_BYTES));
    await vi.advanceTimersByTimeAsync(399);
    expect(next.value).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(next.value).toBe('resolved');
  });

  it('an abort rejects with the reason and hands the turn to the next waiter', async () => {
    const lim = limiter(PIECE_RATE);
    await lim.take(PIECE_BYTES);
    const ac = new AbortController();
    const first = settled(lim.take(PIECE_BYTES, ac.signal)); // due at 100 ms
    const second = settled(lim.take(KiB)); // due just after 100 ms while the first waits
    await vi.advanceTimersByTimeAsync(50);
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(first.value).toBe('rejected');
    expect((first.reason as Error).name).toBe('AbortError');
    expect(second.value).toBe('resolved'); // 50 ms has earned 32 KiB: enough for it, at once
  });

  it('an already aborted signal rejects at once and leaves nothing waiting', async () => {
    const lim = limiter(PIECE_RATE);
    await lim.take(PIECE_BYTES);
    const reason = new Error('upload cancelled');
    await expect(lim.take(PIECE_BYTES, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('holds a timer only while someone waits', async () => {
    const lim = limiter(PIECE_RATE);
    await lim.take(PIECE_BYTES);
    expect(vi.getTimerCount()).toBe(0);
    const pending = lim.take(PIECE_BYTES);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    await pending;
    expect(vi.getTimerCount()).toBe(0);
  });

  it('passes at once when unlimited', async () => {
    const lim = limiter('off');
    const takes = [settled(lim.take(GiB)), settled(lim.take(GiB))];
    await Promise.resolve();
    await Promise.resolve();
    expect(takes.map((t) => t.value)).toEqual(['resolved', 'resolved']);
    expect(vi.getTimerCount()).toBe(0);
    expect(lim.current()).toEqual({ rate: null, nextChange: null });
  });

  it('refuses a take that is not a whole number of bytes', async () => {
    const lim = limiter(PIECE_RATE);
    await expect(lim.take(-1)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(lim.take(1.5)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(lim.take(0)).resolves.toBeUndefined();
  });

  it('close() rejects pending takes and refuses new ones', async () => {
    const lim = limiter(PIECE_RATE);
    await lim.take(PIECE_BYTES);
    const pending = settled(lim.take(PIECE_BYTES));
    await lim.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(pending.value).toBe('rejected');
    expect((pending.reason as Error).name).toBe('AbortError');
    await expect(lim.take(1)).rejects.toMatchObject({ name: 'AbortError' });
    expect(vi.getTimerCount()).toBe(0);
  });
});

function counter(): Writable & { bytes: number; pieces: number[] } {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      sink.bytes += chunk.length;
      sink.pieces.push(chunk.length);
      done();
    },
  }) as Writable & { bytes: number; pieces: number[] };
  sink.bytes = 0;
  sink.pieces = [];
  return sink;
}

describe('BandwidthLimiter.throttle (real timers)', () => {
  it('passes data through unchanged, in pieces of at most 64 KiB', async () => {
    const lim = new BandwidthLimiter(parseBwTimetable('off'));
    const data = Buffer.alloc(3 * PIECE_BYTES + 8192);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    const out: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk);
        done();
      },
    });
    await pipeline(Readable.from([data]), lim.throttle(), sink);
    expect(out.map((b) => b.length)).toEqual([PIECE_BYTES, PIECE_BYTES, PIECE_BYTES, 8192]);
    expect(Buffer.concat(out).equals(data)).toBe(true);
  });

  it('fails the stream when its signal aborts', async () => {
    const lim = new BandwidthLimiter(parseBwTimetable('1')); // 1 KiB/s: the second piece waits 64 s
    const ac = new AbortController();
    const flow = pipeline(Readable.from([Buffer.alloc(2 * PIECE_BYTES)]), lim.throttle(ac.signal), counter());
    setTimeout(() => ac.abort(), 20);
    await expect(flow).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('a destroyed stream withdraws its wait, so it does not hold up other uploads', async () => {
    const lim = new BandwidthLimiter(parseBwTimetable('1')); // 1 KiB/s
    const throttled = lim.throttle();
    throttled.on('error', () => undefined);
    throttled.resume();
    throttled.write(Buffer.alloc(2 * PIECE_BYTES)); // the first piece goes, the second waits 64 s
    await new Promise((r) => setTimeout(r, 20));
    throttled.destroy();
    const started = performance.now();
    await lim.take(8); // 8 bytes at 1 KiB/s: about 8 ms, not 64 s behind the dead stream
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('holds two concurrent streams to 1 MiB/s in total, measured over about 3 s', async () => {
    const lim = new BandwidthLimiter(parseBwTimetable('1M'));
    const chunks = (): Buffer[] => Array.from({ length: 6 }, () => Buffer.alloc(256 * KiB)); // 1.5 MiB a stream
    const a = counter();
    const b = counter();
    const started = performance.now();
    let otherAtFirstFinish = -1;
    const finish = (other: { bytes: number }) => () => {
      if (otherAtFirstFinish < 0) otherAtFirstFinish = other.bytes;
    };
    await Promise.all([
      pipeline(Readable.from(chunks()), lim.throttle(), a).then(finish(b)),
      pipeline(Readable.from(chunks()), lim.throttle(), b).then(finish(a)),
    ]);
    const seconds = (performance.now() - started) / 1000;
    const rate = (a.bytes + b.bytes) / seconds;
    expect(a.bytes + b.bytes).toBe(3 * MiB);
    expect(rate).toBeGreaterThan(0.9 * MiB);
    expect(rate).toBeLessThan(1.1 * MiB);
    expect(Math.max(...a.pieces, ...b.pieces)).toBeLessThanOrEqual(PIECE_BYTES);
    // Fair shares: when one finished, the other had nearly all of its data through too.
    expect(otherAtFirstFinish).toBeGreaterThan(0.9 * 1.5 * MiB);
  });
});
