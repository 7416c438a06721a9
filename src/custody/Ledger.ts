/**
 * The custody ledger (docs/custody.md §3): one JSON line per custody event, append
 * only. Each line carries the SHA-256 of the line before it and the dock's Ed25519
 * signature, so any change, removal or reordering of a line is detectable offline
 * with the dock's public key alone.
 *
 *   body = canonicalJson({ v, seq, timeMs, event, serial, clipId, details, prev })
 *   sig  = Ed25519(dock key, body)                      (base64)
 *   line = canonicalJson({ ...body, sig }) + "\n"
 *   prev of the next line = SHA-256(line without its "\n")   (hex; the first: 64 zeros)
 *
 * Durability: append() returns after the line is written and fdatasync'ed, so a
 * state change committed after it always has its event on disk. A torn last line
 * (power cut mid-write) was never acknowledged; open() cuts it off.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalJson, type CanonicalValue } from './canonicalJson.js';
import { fsyncDirSync } from '../durableFs.js';
import { DockError } from '../errors.js';

export const LEDGER_GENESIS = '0'.repeat(64);

export const CUSTODY_EVENTS = [
  'ledger_opened',
  'ledger_repaired',
  'docked',
  'undocked',
  'enrolled',
  'revoked',
  'refused',
  'clock_set',
  'firmware_updated', // a technician pushed signed firmware: from, to, package sha256
  'listed',
  'pulled',
  'verified',
  'quarantined',
  'chain_gap',
  'media_flagged',
  'upload_failed', // the store refused the clip for good: kept spooled and on the camera
  'upload_retried', // an operator put a failed clip back in the upload queue
  'stored',
  'released',
  'release_refused',
  'drop_rejected', // dropped files refused by the drop-folder import: moved to rejected/, nothing recorded of the clip
] as const;
export type CustodyEvent = (typeof CUSTODY_EVENTS)[number];

export type Details = { [key: string]: CanonicalValue };

export interface LedgerEntry {
  v: 1;
  seq: number;
  timeMs: number;
  event: CustodyEvent;
  serial: string | null;
  clipId: string | null;
  details: Details;
  prev: string;
  sig: string;
}

/** Printable ASCII only, as canonical JSON requires; anything else becomes '?'. */
function ascii(v: CanonicalValue): CanonicalValue {
  if (typeof v === 'string') return v.replace(/[^\x20-\x7e]/g, '?');
  if (Array.isArray(v)) return v.map(ascii);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/[^\x20-\x7e]/g, '?'), ascii(x)]));
  return v;
}

/**
 * The last `want` complete lines of a file, read backwards in blocks (a ledger can be
 * far larger than a string may be), newest last; `stop` ends the scan at the first
 * line (going backwards) it accepts. `end` is the offset just past the last newline:
 * bytes after it are an unfinished line. Lines are split at 0x0A bytes, which never
 * occur inside a UTF-8 character, so a block boundary cannot split a line wrongly.
 */
export function readTail(path: string, want: number, stop?: (line: string) => boolean): { lines: string[]; end: number; size: number } {
  const BLOCK = 64 * 1024;
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const block = Buffer.allocUnsafe(BLOCK);
    let end = 0;
    for (let pos = size; pos > 0 && end === 0; ) {
      const n = Math.min(BLOCK, pos);
      pos -= n;
      readSync(fd, block, 0, n, pos);
      const nl = block.subarray(0, n).lastIndexOf(10);
      if (nl >= 0) end = pos + nl + 1;
    }
    const lines: string[] = [];
    let pending = Buffer.alloc(0); // the start of a line that begins in an earlier block
    for (let pos = end; pos > 0 && lines.length < want; ) {
      const n = Math.min(BLOCK, pos);
      pos -= n;
      readSync(fd, block, 0, n, pos);
      const buf = Buffer.concat([block.subarray(0, n), pending]);
      let stopAt = buf.length; // exclusive end of the line being cut out
      for (let i = buf.length - 1; i >= 0; i--) {
        if (buf[i] !== 10) continue;
        if (i + 1 < stopAt) {
          const line = buf.subarray(i + 1, stopAt).toString('utf8');
          if (stop?.(line)) return { lines: lines.reverse(), end, size };
          lines.push(line);
          if (lines.length >= want) return { lines: lines.reverse(), end, size };
        }
        stopAt = i;
      }
      pending = Buffer.from(buf.subarray(0, stopAt));
      if (pos === 0 && pending.length > 0) {
        const line = pending.toString('utf8');
        if (!stop?.(line)) lines.push(line);
      }
    }
    return { lines: lines.reverse(), end, size };
  } finally {
    closeSync(fd);
  }
}

export function lineHash(line: string): string {
  return createHash('sha256').update(line).digest('hex');
}

export class Ledger {
  readonly path: string;
  readonly #key: KeyObject;
  readonly #fd: number;
  #broken: DockError | undefined;
  /** Called after each durable append (the state store indexes lines by clip). */
  onAppend: ((entry: LedgerEntry, line: string) => void) | undefined;
  #seq: number;
  #prev: string;

  private constructor(path: string, key: KeyObject, fd: number, seq: number, prev: string) {
    this.path = path;
    this.#key = key;
    this.#fd = fd;
    this.#seq = seq;
    this.#prev = prev;
  }

  static open(path: string, dockKey: KeyObject): Ledger {
    let seq = 0;
    let prev = LEDGER_GENESIS;
    let repairedBytes = 0;
    if (existsSync(path)) {
      // Only the tail is read: the last complete line gives seq and prev; anything
      // after the last newline is a torn write, never acknowledged, and is cut off.
      const { lines, end, size } = readTail(path, 1);
      repairedBytes = size - end;
      const last = lines[lines.length - 1];
      if (last) {
        const e = JSON.parse(last) as LedgerEntry;
        seq = e.seq;
        prev = lineHash(last);
      }
      if (repairedBytes > 0) {
        const fd = openSync(path, 'r+');
        ftruncateSync(fd, end);
        fdatasyncSync(fd);
        closeSync(fd);
      }
    }
    const created = !existsSync(path);
    const fd = openSync(path, 'a', 0o644);
    if (created) fsyncDirSync(dirname(path)); // the new ledger's directory entry
    const ledger = new Ledger(path, dockKey, fd, seq, prev);
    if (repairedBytes > 0) ledger.append('ledger_repaired', { details: { tornBytes: repairedBytes, reason: 'an unfinished last line (power cut mid-write) was cut off' } });
    return ledger;
  }

  get seq(): number {
    return this.#seq;
  }

  get head(): string {
    return this.#prev;
  }

  /** Appends one event; returns once it is durable. */
  append(event: CustodyEvent, what: { serial?: string; clipId?: string; details?: Details } = {}, nowMs = Date.now()): LedgerEntry {
    const body = {
      v: 1 as const,
      seq: this.#seq + 1,
      timeMs: nowMs,
      event,
      serial: what.serial ?? null,
      clipId: what.clipId ?? null,
      details: ascii(what.details ?? {}) as Details,
      prev: this.#prev,
    };
    const sig = sign(null, Buffer.from(canonicalJson(body)), this.#key).toString('base64');
    const entry: LedgerEntry = { ...body, sig };
    if (this.#broken) throw this.#broken;
    const line = canonicalJson(entry);
    const bytes = Buffer.from(`${line}\n`);
    const before = fstatSync(this.#fd).size;
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(this.#fd, bytes, off, bytes.length - off);
      fdatasyncSync(this.#fd);
    } catch (err) {
      // A short write (disk full) or a failed sync: take the line back whole, or stop.
      try {
        ftruncateSync(this.#fd, before);
        fdatasyncSync(this.#fd);
      } catch {
        this.#broken = new DockError('CUSTODY_LEDGER', `the ledger ${this.path} could not be written or repaired (${(err as Error).message}); no custody step can be recorded until it is fixed: free disk space and restart dockside`, { path: this.path }, { cause: err });
        throw this.#broken;
      }
      throw new DockError('CUSTODY_LEDGER', `could not append to the ledger ${this.path}: ${(err as Error).message}. The step was not recorded and will be retried; free disk space if it is full`, { path: this.path }, { cause: err });
    }
    this.#seq = entry.seq;
    this.#prev = lineHash(line);
    this.onAppend?.(entry, line);
    return entry;
  }

  close(): Promise<void> {
    closeSync(this.#fd);
    return Promise.resolve();
  }
}

export interface LedgerProblem {
  line: number; // 1-based
  seq: number | null;
  problem: string;
}

export interface LedgerCheck {
  ok: boolean;
  entries: LedgerEntry[];
  problems: LedgerProblem[];
}

/**
 * One ledger line's checks (docs/custody.md §3.4), problems in this order: JSON and
 * canonical form; with `follows`, that its seq and prev are those of the line after
 * the one before (`prev: null` when that line is not at hand, as for the first line
 * of a range or a sidecar's lines, which are not consecutive); the dock's signature;
 * a known event. `entry` is the parsed line when it is a JSON object.
 */
export function checkLedgerLine(line: string, dockPublicKey: KeyObject, follows?: { seq: number; prev: string | null; before?: string }): { entry: LedgerEntry | undefined; problems: string[] } {
  let e: LedgerEntry;
  try {
    e = JSON.parse(line) as LedgerEntry;
  } catch {
    return { entry: undefined, problems: ['not valid JSON'] };
  }
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return { entry: undefined, problems: ['not a ledger entry (not a JSON object)'] };
  const problems: string[] = [];
  const { sig, ...body } = e;
  const canonical = (v: unknown): string | undefined => {
    try {
      return canonicalJson(v);
    } catch {
      return undefined; // floats, non-ASCII: no canonical form, so no valid signature either
    }
  };
  if (canonical(e) !== line) problems.push('not in canonical form');
  if (follows && e.seq !== follows.seq) problems.push(`sequence ${shown(e.seq)} where ${follows.seq} was expected (a line removed or reordered)`);
  if (follows && follows.prev !== null && e.prev !== follows.prev) problems.push(`prev ${shown(e.prev).slice(0, 12)}… does not match the hash of ${follows.before ?? 'the line before'} (${follows.prev.slice(0, 12)}…): the line before was changed, removed or reordered`);
  let sigOk: boolean;
  try {
    const signed = canonical(body);
    // Exactly one base64 text per signature: a variant that decodes to the same bytes
    // (unpadded, an array holding it) is a changed line, not the same one.
    const sigBytes = typeof sig === 'string' ? Buffer.from(sig, 'base64') : undefined;
    sigOk = signed !== undefined && sigBytes !== undefined && sigBytes.toString('base64') === sig && verify(null, Buffer.from(signed), dockPublicKey, sigBytes);
  } catch {
    sigOk = false; // not even a well-formed signature
  }
  if (!sigOk) problems.push("the dock's signature does not verify: the line was altered or signed by another key");
  if (!(CUSTODY_EVENTS as readonly string[]).includes(e.event)) problems.push(`unknown event ${JSON.stringify(e.event)}`);
  return { entry: e, problems };
}

/**
 * Consecutive ledger lines (without their LFs): each checked by checkLedgerLine and
 * linked to the one before. `first` is what the first line must carry: seq 1 and the
 * genesis hash for a whole ledger; for a range cut out of one, its own seq and
 * `prev: null` (the line before it is not part of the range). `firstLine` numbers
 * the problems (1-based line numbers in the file the lines came from).
 */
export function checkLedgerLines(lines: string[], dockPublicKey: KeyObject, first: { seq: number; prev: string | null } = { seq: 1, prev: LEDGER_GENESIS }, firstLine = 1): { entries: LedgerEntry[]; problems: LedgerProblem[] } {
  const problems: LedgerProblem[] = [];
  const entries: LedgerEntry[] = [];
  let follows = first;
  lines.forEach((line, i) => {
    const n = firstLine + i;
    const { entry: e, problems: found } = checkLedgerLine(line, dockPublicKey, { ...follows, before: `line ${n - 1}` });
    for (const problem of found) problems.push({ line: n, seq: e && typeof e.seq === 'number' ? e.seq : null, problem });
    if (e) {
      entries.push(e);
      follows = { seq: e.seq + 1, prev: lineHash(line) };
    } else follows = { seq: follows.seq, prev: lineHash(line) };
  });
  return { entries, problems };
}

/** Recomputes the whole ledger offline: hash links, sequence, signatures, encoding. */
export function verifyLedgerFile(path: string, dockPublicKey: KeyObject): LedgerCheck {
  if (!existsSync(path)) return { ok: true, entries: [], problems: [] };
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const problems: LedgerProblem[] = [];
  if (lines[lines.length - 1] !== '') problems.push({ line: lines.length, seq: null, problem: 'the last line is unfinished (no newline): a torn write that open() would cut off' });
  const checked = checkLedgerLines(lines.slice(0, -1), dockPublicKey);
  problems.push(...checked.problems);
  const entries = checked.entries;
  if (problems.length === 0 && entries.length === 0 && text.length > 0) problems.push({ line: 1, seq: null, problem: 'no entries' });
  return { ok: problems.length === 0, entries, problems };
}

/** A value from a line that may be anything (a hostile or damaged one), for a message: never throws. */
export function shown(v: unknown): string {
  try {
    return typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    return '(unprintable)';
  }
}
