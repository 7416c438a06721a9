/**
 * The upload bandwidth limit: one token bucket shared by every upload, whose rate comes
 * from a timetable written as rclone's `--bwlimit` is, and changes while the dock runs.
 *
 *   "08:00,512k 18:00,30M 23:00,off" ─parseBwTimetable─► Timetable ─rateAt(now)─► bytes/s | null
 *                                                                        │
 *   upload A ─throttle()─┐                                               ▼
 *   upload B ─throttle()─┼─► take(n) ─► FIFO of waiters ─► token bucket ─► one timer: until the
 *   upload C ─throttle()─┘                                                 head fits or the rate changes
 *
 * Timetable syntax (rclone's): a single rate ("10M", "off", "10M:100k"), or entries
 * `TIME,RATE` separated by spaces or semicolons, where TIME is `HH:MM` (every day) or
 * `Day-HH:MM` (Mon…Sun or the full name). A bare number is KiB/s; B K M G T P are binary
 * units in any case, also written Ki/KiB; "off" is no limit. Of `UP:DOWN` only UP is used
 * (DOWN is still checked). The entry in force is the one whose local time passed most
 * recently, wrapping around the week; a plain `HH:MM` entry recurs on every day, as rclone
 * expands it, so the two kinds mix.
 *
 * Where we differ from rclone, on purpose:
 * - Before the week's first entry (Sunday 00:00 on), rclone falls back to the entry listed
 *   last; we take the one that passed last, which is what its documentation describes.
 * - Rate 0 is refused (rclone reads it as unlimited, a reader may read it as paused).
 * - Two entries at the same time are refused; a day's entry beats an every-day one there.
 */
import { Transform } from 'node:stream';
import { DockError } from '../errors.js';

/** The largest piece `throttle()` sends at once, and the smallest burst. */
export const PIECE_BYTES = 64 * 1024;

const DEFAULTS = {
  burstMs: 100, // ms of the current rate the bucket may hold; never less than one piece
};

const DAY_MINUTES = 24 * 60;
const WEEK_MINUTES = 7 * DAY_MINUTES;
/** A cached rate is re-read at least this often: clock steps, DST gaps, a changed TZ. */
const RATE_RECHECK_MS = 60_000;
/** Tokens are fractional bytes; this absorbs floating-point dust at the boundary. */
const TOKEN_EPSILON = 1e-6;

const DAYS: Readonly<Record<string, number>> = {
  sun: 0, sunday: 0, mon: 1, monday: 1, tue: 2, tuesday: 2, wed: 3, wednesday: 3,
  thu: 4, thursday: 4, fri: 5, friday: 5, sat: 6, saturday: 6,
};
const UNIT_BYTES: Readonly<Record<string, number>> = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };
const RATE_SYNTAX = /^(\d+(?:\.\d*)?|\.\d+)([bkmgtp]|[kmgtp]ib?)?$/i;
const CLOCK_SYNTAX = /^(\d\d):(\d\d)$/;

export interface TimetableEntry {
  readonly text: string; // as written, for messages and status
  readonly day: number | null; // 0 = Sunday … 6 = Saturday; null = every day
  readonly minute: number; // minutes after local midnight, 0 to 1439
  readonly rate: number | null; // upload bytes per second; null = unlimited
}

export type Timetable = { readonly entries: readonly TimetableEntry[] };

// ── parsing ──────────────────────────────────────────────────────────────────────

export function parseBwTimetable(spec: string): Timetable {
  const text = spec.trim();
  if (text === '') throw invalid('bandwidth limit is empty: give a rate such as 10M, off, or a timetable such as "08:00,512k 18:00,off"', { spec });
  if (!/[\s;,]/.test(text)) {
    return { entries: [{ text, day: null, minute: 0, rate: parseRatePair(text, `bandwidth limit "${text}"`, spec) }] };
  }
  const entries = text.split(/[\s;]+/).filter((token) => token !== '').map((token) => parseEntry(token, spec));
  refuseSameTime(entries, spec);
  return { entries };
}

function parseEntry(token: string, spec: string): TimetableEntry {
  const where = `bandwidth timetable entry "${token}"`;
  const parts = token.split(',');
  if (parts.length !== 2) throw invalid(`${where}: must be TIME,RATE such as 08:00,512k or Mon-08:00,10M`, { spec, entry: token });
  const [time = '', rate = ''] = parts;
  const dash = time.indexOf('-');
  const day = dash < 0 ? null : parseDay(time.slice(0, dash), where, spec);
  const minute = parseClock(dash < 0 ? time : time.slice(dash + 1), where, spec);
  return { text: token, day, minute, rate: parseRatePair(rate, where, spec) };
}

function parseDay(text: string, where: string, spec: string): number {
  const day = DAYS[text.toLowerCase()];
  if (day === undefined) throw invalid(`${where}: day must be Mon, Tue, Wed, Thu, Fri, Sat or Sun (or the full name) before -HH:MM`, { spec, part: 'day', value: text });
  return day;
}

function parseClock(text: string, where: string, spec: string): number {
  const m = CLOCK_SYNTAX.exec(text);
  const hours = Number(m?.[1]);
  const minutes = Number(m?.[2]);
  if (!m || hours > 23 || minutes > 59) throw invalid(`${where}: time must be HH:MM from 00:00 to 23:59`, { spec, part: 'time', value: text });
  return hours * 60 + minutes;
}

/** `UP` or `UP:DOWN`; returns the upload rate. The download rate is checked, then dropped. */
function parseRatePair(text: string, where: string, spec: string): number | null {
  const colon = text.indexOf(':');
  if (colon < 0) return parseUploadRate(text, 'rate', where, spec);
  parseRate(text.slice(colon + 1), 'download rate', where, spec);
  return parseUploadRate(text.slice(0, colon), 'upload rate', where, spec);
}

function parseUploadRate(text: string, part: string, where: string, spec: string): number | null {
  const rate = parseRate(text, part, where, spec);
  if (rate !== null && rate < 1) throw invalid(`${where}: ${part} must be at least 1 byte/s; write off for no limit (rclone reads 0 as off)`, { spec, part, value: text });
  return rate;
}

function parseRate(text: string, part: string, where: string, spec: string): number | null {
  if (text.toLowerCase() === 'off') return null;
  const m = RATE_SYNTAX.exec(text);
  if (!m) {
    const hint = /^[\d.]+[kmgtp]b$/i.test(text) ? ` (${text} is ambiguous: write ${text.slice(0, -1)} or ${text.slice(0, -1)}iB)` : '';
    throw invalid(`${where}: ${part} must be a number with an optional unit B, K, M, G, T or P (binary; a bare number is KiB/s), or off${hint}`, { spec, part, value: text });
  }
  const unit = (m[2]?.[0] ?? 'k').toLowerCase();
  return Math.floor(Number(m[1]) * (UNIT_BYTES[unit] ?? 1024));
}

function refuseSameTime(entries: readonly TimetableEntry[], spec: string): void {
  const seen = new Map<string, TimetableEntry>();
  for (const entry of entries) {
    const key = `${entry.day ?? '*'}@${entry.minute}`;
    const earlier = seen.get(key);
    if (earlier) throw invalid(`bandwidth timetable entries "${earlier.text}" and "${entry.text}" start at the same time: keep one`, { spec, entry: entry.text });
    seen.set(key, entry);
  }
}

function invalid(message: string, details: Record<string, unknown>): DockError {
  return new DockError('CONFIG_INVALID', message, details);
}

// ── reading the timetable ────────────────────────────────────────────────────────

/** One moment in the week when a rate starts; `at` is minutes after Sunday 00:00. */
interface WeekSlot {
  readonly at: number;
  readonly rate: number | null;
}

/** Every entry placed in the week, sorted; a day's entry overrides an every-day one at the same minute. */
function weekSlots(tt: Timetable): WeekSlot[] {
  const byMinute = new Map<number, { rate: number | null; dayOnly: boolean }>();
  for (const entry of tt.entries) {
    const days = entry.day === null ? [0, 1, 2, 3, 4, 5, 6] : [entry.day];
    for (const day of days) {
      const at = day * DAY_MINUTES + entry.minute;
      const held = byMinute.get(at);
      if (!held || (entry.day !== null && !held.dayOnly)) byMinute.set(at, { rate: entry.rate, dayOnly: entry.day !== null });
    }
  }
  return [...byMinute].map(([at, { rate }]) => ({ at, rate })).sort((a, b) => a.at - b.at);
}

function weekMinuteOf(when: Date): number {
  return when.getDay() * DAY_MINUTES + when.getHours() * 60 + when.getMinutes();
}

/** The slot that passed most recently; before the week's first slot, the week's last. */
function slotIndexAt(slots: readonly WeekSlot[], weekMinute: number): number {
  let index = slots.length - 1;
  for (let i = 0; i < slots.length && (slots[i]?.at ?? Infinity) <= weekMinute; i++) index = i;
  return index;
}

/** Upload bytes per second in force at `when` (local time); null = unlimited. */
export function rateAt(tt: Timetable, when: Date): number | null {
  const slots = weekSlots(tt);
  return slots[slotIndexAt(slots, weekMinuteOf(when))]?.rate ?? null;
}

/** When the rate next becomes different from the one at `when`; null if it never does. */
export function nextRateChange(tt: Timetable, when: Date): Date | null {
  const slots = weekSlots(tt);
  const current = slotIndexAt(slots, weekMinuteOf(when));
  const rate = slots[current]?.rate ?? null;
  for (let k = 1; k < slots.length; k++) {
    const slot = slots[(current + k) % slots.length];
    if (slot && slot.rate !== rate) return occurrenceAfter(when, slot.at);
  }
  return null;
}

/**
 * The next local time after `when` that falls on week minute `at`. Built from calendar
 * fields so DST shifts land right; an entry inside a DST gap comes out up to the gap's
 * length late (the limiter re-reads the rate every minute regardless).
 */
function occurrenceAfter(when: Date, at: number): Date {
  const now = weekMinuteOf(when);
  const ahead = (at - now + WEEK_MINUTES) % WEEK_MINUTES || WEEK_MINUTES;
  const days = Math.floor(((now % DAY_MINUTES) + ahead) / DAY_MINUTES);
  const minuteOfDay = at % DAY_MINUTES;
  const local = new Date(when.getFullYear(), when.getMonth(), when.getDate() + days, Math.floor(minuteOfDay / 60), minuteOfDay % 60);
  if (local.getTime() > when.getTime()) return local;
  // A repeated hour (DST ends) resolved to its first pass, already behind us.
  return new Date(when.getTime() - (when.getTime() % 60_000) + ahead * 60_000);
}

const RATE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** "512 B/s", "2.0 MiB/s", or "off" for no limit. */
export function formatRate(bytesPerSec: number | null): string {
  if (bytesPerSec === null) return 'off';
  if (bytesPerSec < 1024) return `${Math.round(bytesPerSec)} B/s`;
  let value = bytesPerSec / 1024;
  let unit = 0;
  while (value >= 1023.95 && unit < RATE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${RATE_UNITS[unit]}/s`;
}

// ── the limiter ──────────────────────────────────────────────────────────────────

export interface BandwidthLimiterOptions {
  now?: () => number; // ms since the epoch, default Date.now; also the clock the timetable is read by
  burstMs?: number; // ms of the current rate that may go out at once, default 100 (at least one 64 KiB piece)
}

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * A token bucket shared by every upload. Waiters are served strictly in arrival order, so
 * uploads that each take one piece at a time share the rate evenly. A take larger than the
 * bucket goes once the bucket is full and leaves it in debt, so the average still holds.
 *
 * Timers: there is one, and only while someone waits; it is not unref'd, because a pending
 * take must resolve even when nothing else keeps the process alive. An idle limiter holds
 * no timer at all, so it never keeps the process alive.
 */
export class BandwidthLimiter {
  readonly #now: () => number;
  readonly #burstMs: number;
  #timetable: Timetable;
  #rate: number | null = null; // bytes/s in force; null = unlimited
  #rateUntil = 0; // ms: re-read the timetable at or after this
  #capacity = PIECE_BYTES; // bytes the bucket holds when full
  #tokens = 0; // bytes that may go now; below 0 after an oversized take
  #last: number; // ms up to which tokens have been counted
  readonly #waiters: Waiter[] = []; // FIFO; only the head is ever measured
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(tt: Timetable, opts: BandwidthLimiterOptions = {}) {
    const burstMs = opts.burstMs ?? DEFAULTS.burstMs;
    if (!Number.isFinite(burstMs) || burstMs <= 0) throw new DockError('CONFIG_INVALID', `bandwidth burstMs must be a positive number of milliseconds, got ${burstMs}`, { burstMs });
    this.#now = opts.now ?? Date.now;
    this.#burstMs = burstMs;
    this.#timetable = tt;
    this.#last = this.#now();
    this.#loadRate(this.#last);
  }

  /** Takes effect at once, for those already waiting too. */
  setTimetable(tt: Timetable): void {
    const now = this.#now();
    this.#advance(now); // what the old timetable earned up to now stays earned
    this.#timetable = tt;
    this.#loadRate(now);
    if (this.#waiters.length > 0) this.#pump();
  }

  /** Resolves when `bytes` may be sent; rejects with the signal's reason if aborted first. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) return Promise.reject(new DockError('INTERNAL', `bandwidth take needs a whole number of bytes, got ${bytes}`, { bytes }));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(closedError());
    if (bytes === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, reject, signal, onAbort: () => this.#drop(waiter, signal?.reason) };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
      if (this.#waiters.length === 1) this.#pump(); // otherwise the head's timer already runs
    });
  }

  /** Passes data through at the shared rate, in pieces of at most 64 KiB. Destroying it withdraws its wait. */
  throttle(signal?: AbortSignal): Transform {
    const ended = new AbortController();
    const cancel = signal ? AbortSignal.any([signal, ended.signal]) : ended.signal;
    const take = (bytes: number): Promise<void> => this.take(bytes, cancel);
    return new Transform({
      transform(chunk: Buffer, _encoding, done) {
        passInPieces(this, chunk, take).then(() => done(), done);
      },
      destroy(err, done) {
        ended.abort();
        done(err);
      },
    });
  }

  /** For status displays: the rate in force now and when it next changes. */
  current(): { rate: number | null; nextChange: Date | null } {
    const when = new Date(this.#now());
    return { rate: rateAt(this.#timetable, when), nextChange: nextRateChange(this.#timetable, when) };
  }

  /** Rejects every pending take (AbortError) and refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      waiter.reject(closedError());
    }
  }

  /** Serves waiters from the head while they fit, then sleeps until the head fits or the rate may change. */
  #pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = this.#now();
    this.#advance(now);
    for (let head = this.#waiters[0]; head !== undefined; head = this.#waiters[0]) {
      if (this.#rate !== null) {
        const missing = Math.min(head.bytes, this.#capacity) - this.#tokens;
        if (missing > TOKEN_EPSILON) {
          const fillMs = Math.ceil((missing * 1000) / this.#rate);
          this.#timer = setTimeout(() => this.#pump(), Math.max(1, Math.min(fillMs, this.#rateUntil - now)));
          return;
        }
        this.#tokens -= head.bytes;
      }
      this.#waiters.shift();
      head.signal?.removeEventListener('abort', head.onAbort);
      head.resolve();
    }
  }

  #drop(waiter: Waiter, reason: unknown): void {
    const index = this.#waiters.indexOf(waiter);
    if (index < 0) return;
    this.#waiters.splice(index, 1);
    waiter.reject(reason);
    if (index === 0) this.#pump(); // the next one may fit now, and the timer was the dropped one's
  }

  /** Counts tokens up to `now`, switching rate at the change we woke for. */
  #advance(now: number): void {
    if (now < this.#last) {
      // The clock stepped back: no credit for it, and the cached rate may belong to another time.
      this.#last = now;
      this.#loadRate(now);
      return;
    }
    if (now >= this.#rateUntil) {
      this.#accrue(this.#rateUntil); // the old rate up to its end (a far jump skips what lies between)
      this.#loadRate(now);
    }
    this.#accrue(now);
  }

  #accrue(to: number): void {
    if (to <= this.#last) return;
    if (this.#rate !== null) this.#tokens = Math.min(this.#capacity, this.#tokens + ((to - this.#last) * this.#rate) / 1000);
    this.#last = to;
  }

  #loadRate(at: number): void {
    const when = new Date(at);
    const rate = rateAt(this.#timetable, when);
    const change = nextRateChange(this.#timetable, when)?.getTime() ?? Infinity;
    const wasUnlimited = this.#rate === null;
    this.#rate = rate;
    this.#rateUntil = Math.min(change > at ? change : Infinity, at + RATE_RECHECK_MS);
    this.#capacity = rate === null ? PIECE_BYTES : Math.max(PIECE_BYTES, (rate * this.#burstMs) / 1000);
    // Leaving "off" starts with a full bucket; a lower rate never keeps more than its own burst.
    this.#tokens = wasUnlimited ? this.#capacity : Math.min(this.#tokens, this.#capacity);
  }
}

async function passInPieces(out: Transform, chunk: Buffer, take: (bytes: number) => Promise<void>): Promise<void> {
  for (let offset = 0; offset < chunk.length; offset += PIECE_BYTES) {
    const piece = chunk.subarray(offset, offset + PIECE_BYTES);
    await take(piece.length);
    out.push(piece);
  }
}

function closedError(): DOMException {
  return new DOMException('the bandwidth limiter was closed', 'AbortError');
}
