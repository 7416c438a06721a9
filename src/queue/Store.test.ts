import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isDockError } from '../errors.js';
import { CLIP_STATES, Store, type ClipState } from './Store.js';

const SERIAL = 'BC4-STORE001';
const KEY = Buffer.alloc(32, 7);

let root: string;
let dbPath: string;
const opened: Store[] = [];

function openStore(): Store {
  const s = new Store(dbPath);
  opened.push(s);
  return s;
}

function listed(s: Store, clipId: string, seq: number, size = 100): void {
  expect(s.addListed({ serial: SERIAL, clipId, seq, size, trigger: 1, startMs: 1000 + seq }, 5)).toBe(true);
}

/** The legal path through the states, from listed. */
const PATH_TO: Record<ClipState, ClipState[]> = {
  listed: [],
  pulling: ['pulling'],
  spooled: ['pulling', 'spooled'],
  verified: ['pulling', 'spooled', 'verified'],
  quarantined: ['pulling', 'spooled', 'quarantined'],
  uploading: ['pulling', 'spooled', 'verified', 'uploading'],
  failed: ['pulling', 'spooled', 'verified', 'uploading', 'failed'],
  stored: ['pulling', 'spooled', 'verified', 'uploading', 'stored'],
  released: ['pulling', 'spooled', 'verified', 'uploading', 'stored', 'released'],
};

const LEGAL = new Set(['listed>pulling', 'pulling>spooled', 'spooled>verified', 'spooled>quarantined', 'verified>uploading', 'uploading>stored', 'uploading>verified', 'uploading>failed', 'failed>verified', 'stored>released']);

function bring(s: Store, clipId: string, state: ClipState): void {
  for (const to of PATH_TO[state]) s.transition(SERIAL, clipId, to);
  expect(s.clip(SERIAL, clipId)?.state).toBe(state);
}

function expectInternal(fn: () => unknown, pattern: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(isDockError(thrown, 'INTERNAL'), String(thrown)).toBe(true);
  expect((thrown as Error).message).toMatch(pattern);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-store-'));
  dbPath = join(root, 'sub', 'state.db');
});

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  rmSync(root, { recursive: true, force: true });
});

describe('Store: clip state machine', () => {
  // One store for the whole matrix; each case gets clips of its own.
  let matrixRoot: string;
  let m: Store;
  let n = 0;
  const inState = new Map<ClipState, string>(); // a shared clip per state, for the cases that must change nothing

  function clipIn(state: ClipState, fresh: boolean): string {
    const known = inState.get(state);
    if (known && !fresh) return known;
    const clipId = `M${++n}`;
    expect(m.addListed({ serial: SERIAL, clipId, seq: n, size: 100, trigger: 1, startMs: 0 }, 5)).toBe(true);
    bring(m, clipId, state);
    if (!fresh) inState.set(state, clipId);
    return clipId;
  }

  beforeAll(() => {
    matrixRoot = mkdtempSync(join(tmpdir(), 'dockside-store-matrix-'));
    m = new Store(join(matrixRoot, 'state.db'));
  });

  afterAll(async () => {
    await m.close();
    rmSync(matrixRoot, { recursive: true, force: true });
  });

  for (const from of CLIP_STATES) {
    for (const to of CLIP_STATES) {
      const legal = LEGAL.has(`${from}>${to}`);
      it(`${from} -> ${to} ${legal ? 'is allowed' : 'throws and changes nothing'}`, () => {
        const clipId = clipIn(from, legal);
        const before = m.clip(SERIAL, clipId)!;
        if (legal) {
          const row = m.transition(SERIAL, clipId, to, {}, 99);
          expect(row.state).toBe(to);
          expect(row.updatedMs).toBe(99);
          expect(m.clip(SERIAL, clipId)).toEqual(row);
        } else {
          expectInternal(() => m.transition(SERIAL, clipId, to, { reason: 'nope', receipt: 'r' }, 99), new RegExp(`cannot go from ${from} to ${to}`));
          expect(m.clip(SERIAL, clipId)).toEqual(before);
        }
      });
    }
  }

  it('a transition of an unknown clip throws', () => {
    const s = openStore();
    expectInternal(() => s.transition(SERIAL, 'NOPE', 'pulling'), /no clip/);
  });

  it('a transition saves its patch with it, and the returned row is what is stored', () => {
    const s = openStore();
    listed(s, 'C1', 1);
    s.transition(SERIAL, 'C1', 'pulling', { offset: 0 });
    s.setOffset(SERIAL, 'C1', 60);
    const spooled = s.transition(SERIAL, 'C1', 'spooled', { rxSha256: 'aa'.repeat(32), offset: 100 }, 10);
    expect(spooled).toMatchObject({ state: 'spooled', offset: 100, rxSha256: 'aa'.repeat(32) });
    expect(s.clip(SERIAL, 'C1')).toEqual(spooled);
    s.transition(SERIAL, 'C1', 'verified', { flags: 'media: odd' });
    s.transition(SERIAL, 'C1', 'uploading');
    const stored = s.transition(SERIAL, 'C1', 'stored', { receipt: 'dir:sha256:abc' });
    // fields set by earlier transitions are kept (a patch never clears them)
    expect(stored).toMatchObject({ flags: 'media: odd', receipt: 'dir:sha256:abc', rxSha256: 'aa'.repeat(32), offset: 100 });
    expect(s.clip(SERIAL, 'C1')).toEqual(stored);

    listed(s, 'C2', 2);
    bring(s, 'C2', 'spooled');
    expect(s.transition(SERIAL, 'C2', 'quarantined', { reason: 'hash: wrong' }).reason).toBe('hash: wrong');
    expect(s.clip(SERIAL, 'C2')?.reason).toBe('hash: wrong');
  });

  it('a quarantined clip can never be released, stored or re-verified', () => {
    const s = openStore();
    listed(s, 'Q', 1);
    bring(s, 'Q', 'quarantined');
    for (const to of CLIP_STATES) expectInternal(() => s.transition(SERIAL, 'Q', to), /cannot go from quarantined/);
    expect(s.clip(SERIAL, 'Q')?.state).toBe('quarantined');
  });
});

describe('Store: clips', () => {
  it('addListed is idempotent and never resets a clip in flight', () => {
    const s = openStore();
    listed(s, 'C1', 1, 100);
    bring(s, 'C1', 'spooled');
    expect(s.addListed({ serial: SERIAL, clipId: 'C1', seq: 9, size: 5, trigger: 0, startMs: 0 })).toBe(false);
    expect(s.clip(SERIAL, 'C1')).toMatchObject({ state: 'spooled', seq: 1, size: 100, trigger: 1, startMs: 1001 });
    expect(s.clips()).toHaveLength(1);
  });

  it('a new clip starts listed with offset 0 and no manifest', () => {
    const s = openStore();
    listed(s, 'C1', 3, 42);
    expect(s.clip(SERIAL, 'C1')).toEqual({
      serial: SERIAL,
      clipId: 'C1',
      seq: 3,
      size: 42,
      state: 'listed',
      offset: 0,
      container: 'bin',
      trigger: 1,
      startMs: 1003,
      manifest: null,
      signature: null,
      sha256: null,
      reason: null,
      flags: null,
      receipt: null,
      rxSha256: null,
      priority: 0,
      attempts: 0,
      nextAttemptMs: 0,
      lastError: null,
      spoolKept: false,
      updatedMs: 5,
    });
    expect(s.clip(SERIAL, 'C2')).toBeUndefined();
  });

  it('setOffset works only while the clip is being pulled', () => {
    const s = openStore();
    listed(s, 'C1', 1);
    expectInternal(() => s.setOffset(SERIAL, 'C1', 10), /not being pulled/);
    s.transition(SERIAL, 'C1', 'pulling', { offset: 0 });
    s.setOffset(SERIAL, 'C1', 10, 50);
    expect(s.clip(SERIAL, 'C1')).toMatchObject({ offset: 10, updatedMs: 50 });
    s.transition(SERIAL, 'C1', 'spooled');
    expectInternal(() => s.setOffset(SERIAL, 'C1', 20), /not being pulled/);
    expect(s.clip(SERIAL, 'C1')?.offset).toBe(10);
    expectInternal(() => s.setOffset(SERIAL, 'NOPE', 1), /not being pulled/);
  });

  it('setManifest keeps the exact bytes and the container', () => {
    const s = openStore();
    listed(s, 'C1', 1);
    const bytes = Buffer.from([0x7b, 0x00, 0xff, 0x7d]);
    const sig = Buffer.alloc(64, 3);
    s.setManifest(SERIAL, 'C1', bytes, sig, 'bb'.repeat(32), 'mp4');
    const c = s.clip(SERIAL, 'C1')!;
    expect(c.manifest?.equals(bytes)).toBe(true);
    expect(c.signature?.equals(sig)).toBe(true);
    expect(c).toMatchObject({ sha256: 'bb'.repeat(32), container: 'mp4' });
  });

  it('clips() filters by serial and state and orders by serial then seq; countByState counts every state', () => {
    const s = openStore();
    listed(s, 'C10', 10);
    listed(s, 'C2', 2);
    listed(s, 'C1', 1);
    s.addListed({ serial: 'AAA-0001', clipId: 'X', seq: 5, size: 1, trigger: 0, startMs: 0 });
    bring(s, 'C2', 'quarantined');
    bring(s, 'C10', 'stored');
    expect(s.clips().map((c) => c.clipId)).toEqual(['X', 'C1', 'C2', 'C10']);
    expect(s.clips({ serial: SERIAL }).map((c) => c.clipId)).toEqual(['C1', 'C2', 'C10']);
    expect(s.clips({ state: 'listed' }).map((c) => c.clipId)).toEqual(['X', 'C1']);
    expect(s.clips({ serial: SERIAL, state: ['stored', 'quarantined'] }).map((c) => c.clipId)).toEqual(['C2', 'C10']);
    expect(s.clips({ state: [] as ClipState[] }).length).toBe(0);
    expect(s.countByState()).toEqual({ listed: 2, pulling: 0, spooled: 0, verified: 0, quarantined: 1, uploading: 0, failed: 0, stored: 1, released: 0 });
  });

  it('offset, manifest and event writes relax the WAL fsync for themselves only, inside a transaction too', () => {
    const s = openStore();
    expect(s.synchronous).toBe(2); // FULL
    listed(s, 'C1', 1);
    s.setManifest(SERIAL, 'C1', Buffer.from('{}'), Buffer.alloc(64), null, 'mp4');
    s.transition(SERIAL, 'C1', 'pulling', { offset: 0 });
    s.setOffset(SERIAL, 'C1', 10);
    s.addEvent(SERIAL, 'C1', 1, '{"seq":1}');
    expect(s.synchronous).toBe(2);
    // SQLite refuses to change the safety level inside a transaction: the writes then commit with it.
    s.atomically(() => {
      s.setOffset(SERIAL, 'C1', 20);
      s.addEvent(SERIAL, 'C1', 2, '{"seq":2}');
    });
    expect(s.synchronous).toBe(2);
    expect(s.clip(SERIAL, 'C1')?.offset).toBe(20);
    expect(s.events(SERIAL, 'C1')).toEqual(['{"seq":1}', '{"seq":2}']);
    // A failing write still restores FULL.
    s.transition(SERIAL, 'C1', 'spooled');
    expectInternal(() => s.setOffset(SERIAL, 'C1', 30), /not being pulled/);
    expect(s.synchronous).toBe(2);
  });

  it('atomically() commits all or nothing', () => {
    const s = openStore();
    s.enroll(SERIAL, 'BC4', KEY);
    listed(s, 'C1', 1);
    bring(s, 'C1', 'spooled');
    expect(() =>
      s.atomically(() => {
        s.advanceChain(SERIAL, 1, 'cc'.repeat(32));
        s.transition(SERIAL, 'C1', 'verified');
        s.transition(SERIAL, 'C1', 'stored'); // illegal: the whole unit rolls back
      }),
    ).toThrow(/cannot go from verified to stored/);
    expect(s.clip(SERIAL, 'C1')?.state).toBe('spooled');
    expect(s.camera(SERIAL)).toMatchObject({ lastChain: null, lastSeq: 0 });
    s.atomically(() => {
      s.advanceChain(SERIAL, 1, 'cc'.repeat(32));
      s.transition(SERIAL, 'C1', 'verified');
    });
    expect(s.clip(SERIAL, 'C1')?.state).toBe('verified');
    expect(s.camera(SERIAL)).toMatchObject({ lastChain: 'cc'.repeat(32), lastSeq: 1 });
  });
});

describe('Store: cameras', () => {
  it('enroll, re-enroll, revoke', () => {
    const s = openStore();
    expect(s.camera(SERIAL)).toBeUndefined();
    s.enroll(SERIAL, 'BC4', KEY, 11);
    expect(s.camera(SERIAL)).toEqual({ serial: SERIAL, model: 'BC4', publicKey: KEY, enrolledMs: 11, lastChain: null, lastSeq: 0, revoked: false });
    expect(s.revoke(SERIAL)).toBe(true);
    expect(s.revoke('NOPE-0000')).toBe(false);
    expect(s.camera(SERIAL)?.revoked).toBe(true);
    s.advanceChain(SERIAL, 4, 'dd'.repeat(32));
    const key2 = Buffer.alloc(32, 8);
    s.enroll(SERIAL, 'BC5', key2, 12);
    // re-enrolling un-revokes and takes the new key, but keeps the chain seen so far
    expect(s.camera(SERIAL)).toEqual({ serial: SERIAL, model: 'BC5', publicKey: key2, enrolledMs: 12, lastChain: 'dd'.repeat(32), lastSeq: 4, revoked: false });
    s.enroll('AAA-0001', 'BC4', KEY);
    expect(s.cameras().map((c) => c.serial)).toEqual(['AAA-0001', SERIAL]);
  });

  it('advanceChain only moves forward by seq', () => {
    const s = openStore();
    s.enroll(SERIAL, 'BC4', KEY);
    s.advanceChain(SERIAL, 3, '03'.repeat(32));
    expect(s.camera(SERIAL)).toMatchObject({ lastSeq: 3, lastChain: '03'.repeat(32) });
    s.advanceChain(SERIAL, 2, '02'.repeat(32));
    s.advanceChain(SERIAL, 3, 'ff'.repeat(32));
    expect(s.camera(SERIAL)).toMatchObject({ lastSeq: 3, lastChain: '03'.repeat(32) });
    s.advanceChain(SERIAL, 7, '07'.repeat(32));
    expect(s.camera(SERIAL)).toMatchObject({ lastSeq: 7, lastChain: '07'.repeat(32) });
  });
});

describe('Store: clip_events and meta', () => {
  it('events come back in ledger seq order (numeric), per clip, without duplicates', () => {
    const s = openStore();
    s.addEvent(SERIAL, 'C1', 10, 'line-10');
    s.addEvent(SERIAL, 'C1', 9, 'line-9');
    s.addEvent(SERIAL, 'C2', 11, 'other clip');
    s.addEvent(SERIAL, 'C1', 100, 'line-100');
    s.addEvent(SERIAL, 'C1', 9, 'a replay of seq 9 is ignored');
    expect(s.events(SERIAL, 'C1')).toEqual(['line-9', 'line-10', 'line-100']);
    expect(s.events(SERIAL, 'C2')).toEqual(['other clip']);
    expect(s.events(SERIAL, 'C3')).toEqual([]);
  });

  it('meta get/set overwrites', () => {
    const s = openStore();
    expect(s.getMeta('k')).toBeUndefined();
    s.setMeta('k', 'a');
    s.setMeta('k', 'b');
    expect(s.getMeta('k')).toBe('b');
  });
});

describe('Store: on disk', () => {
  it('is a WAL database and a reopen after close keeps everything', async () => {
    const s = openStore();
    s.enroll(SERIAL, 'BC4', KEY, 1);
    s.advanceChain(SERIAL, 2, 'ee'.repeat(32));
    listed(s, 'C1', 1);
    listed(s, 'C2', 2);
    bring(s, 'C1', 'released');
    s.transition(SERIAL, 'C2', 'pulling', { offset: 0 });
    s.setOffset(SERIAL, 'C2', 77);
    s.setManifest(SERIAL, 'C2', Buffer.from('{}'), Buffer.alloc(64, 1), null, 'mp4');
    s.addEvent(SERIAL, 'C1', 1, 'L1');
    s.setMeta('m', 'v');
    const clips = s.clips();
    const cameras = s.cameras();
    await s.close();
    await s.close(); // closing twice is harmless

    const raw = new Database(dbPath, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }

    const again = openStore();
    expect(again.clips()).toEqual(clips);
    expect(again.cameras()).toEqual(cameras);
    expect(again.clip(SERIAL, 'C2')).toMatchObject({ state: 'pulling', offset: 77, container: 'mp4' });
    expect(again.events(SERIAL, 'C1')).toEqual(['L1']);
    expect(again.getMeta('m')).toBe('v');
    expect(again.countByState()).toMatchObject({ released: 1, pulling: 1 });
    // the state machine still holds after the reopen
    expectInternal(() => again.transition(SERIAL, 'C1', 'released'), /cannot go from released/);
  });

  it('a committed transition is visible to a second connection at once (WAL, no close needed)', () => {
    const s = openStore();
    listed(s, 'C1', 1);
    bring(s, 'C1', 'verified');
    const other = openStore();
    expect(other.clip(SERIAL, 'C1')?.state).toBe('verified');
    other.transition(SERIAL, 'C1', 'uploading');
    // the first connection cannot repeat the step the second one took
    expectInternal(() => s.transition(SERIAL, 'C1', 'uploading'), /cannot go from uploading to uploading/);
  });

  it('an unopenable path is CONFIG_INVALID', () => {
    let thrown: unknown;
    try {
      new Store(root); // a directory, not a database file
    } catch (err) {
      thrown = err;
    }
    expect(isDockError(thrown, 'CONFIG_INVALID')).toBe(true);
  });
});

describe('Store: upload queue order and bookkeeping', () => {
  function add(s: Store, clipId: string, seq: number, trigger: number, startMs: number): void {
    expect(s.addListed({ serial: SERIAL, clipId, seq, size: 10, trigger, startMs }, 1)).toBe(true);
    bring(s, clipId, 'verified');
  }

  it('priority-triggered clips go first, then the oldest recording; backoff holds a clip back until its time', () => {
    const s = openStore();
    add(s, 'OLD', 1, 0, 1000);
    add(s, 'NEW', 2, 1, 3000);
    add(s, 'PRIO', 3, 2, 5000); // trigger 2: the camera's priority trigger
    add(s, 'MID', 4, 0, 2000);
    expect(s.clip(SERIAL, 'PRIO')?.priority).toBe(1);
    expect(s.uploadOrder(0, 10).map((c) => c.clipId)).toEqual(['PRIO', 'OLD', 'MID', 'NEW']);
    expect(s.countPendingUploads()).toBe(4);
    expect(s.countPendingUploads(SERIAL)).toBe(4);
    expect(s.countPendingUploads('BC4-OTHER')).toBe(0);
    expect(s.uploadOrder(0, 2).map((c) => c.clipId)).toEqual(['PRIO', 'OLD']);
    expect(s.uploadOrder(0, 2, new Set([`${SERIAL}/PRIO`])).map((c) => c.clipId)).toEqual(['OLD', 'MID']);

    s.transition(SERIAL, 'OLD', 'uploading');
    s.transition(SERIAL, 'OLD', 'verified', { attempts: 1, nextAttemptMs: 500, lastError: 'store unreachable' });
    expect(s.uploadOrder(499, 10).map((c) => c.clipId)).toEqual(['PRIO', 'MID', 'NEW']);
    expect(s.nextUploadAttemptMs(499)).toBe(500);
    expect(s.uploadOrder(500, 10).map((c) => c.clipId)).toEqual(['PRIO', 'OLD', 'MID', 'NEW']);
    expect(s.clip(SERIAL, 'OLD')).toMatchObject({ attempts: 1, lastError: 'store unreachable', nextAttemptMs: 500 });
    expect(s.nextUploadAttemptMs(500)).toBeUndefined();
  });

  it('a refused clip is failed, out of the queue, and a retry puts it back with its error cleared', () => {
    const s = openStore();
    add(s, 'C1', 1, 0, 1000);
    s.transition(SERIAL, 'C1', 'uploading');
    s.transition(SERIAL, 'C1', 'failed', { reason: 'AccessDenied', lastError: 'AccessDenied', attempts: 1 });
    expect(s.uploadOrder(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    expectInternal(() => s.transition(SERIAL, 'C1', 'stored'), /cannot go from failed to stored/);
    s.transition(SERIAL, 'C1', 'verified', { attempts: 0, nextAttemptMs: 0, lastError: null });
    expect(s.clip(SERIAL, 'C1')).toMatchObject({ state: 'verified', attempts: 0, lastError: null });
    expect(s.uploadOrder(0, 10).map((c) => c.clipId)).toEqual(['C1']);
  });

  it('kept spool copies are listed by release time until marked removed', () => {
    const s = openStore();
    add(s, 'C1', 1, 0, 1000);
    for (const to of ['uploading', 'stored'] as const) s.transition(SERIAL, 'C1', to);
    s.transition(SERIAL, 'C1', 'released', { spoolKept: true }, 100);
    expect(s.keptSpoolCopies(100)).toEqual([]);
    expect(s.keptSpoolCopies(101).map((c) => c.clipId)).toEqual(['C1']);
    s.spoolCopyRemoved(SERIAL, 'C1');
    expect(s.keptSpoolCopies(Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  // Regression: at 100,000 clips each start spent ~150 ms walking every released clip
  // (keptSpoolCopies) and ~100 ms scanning clip_events for MAX(seq) (maxEventSeq),
  // growing with the dock's history (bench/state.ts). The SQL below mirrors those two
  // queries; the planner must answer them from an index, on a store that had none.
  it('start-up queries use an index (kept spool copies, highest indexed ledger seq), also on a store made before those indexes', async () => {
    const s = openStore();
    listed(s, 'C1', 1);
    s.addEvent(SERIAL, 'C1', 1, 'L1');
    await s.close();
    const raw = new Database(dbPath);
    raw.exec('DROP INDEX clips_kept_spool; DROP INDEX clip_events_by_seq');
    raw.close();
    const again = openStore();
    expect(again.maxEventSeq()).toBe(1);
    expect(again.keptSpoolCopies(Number.MAX_SAFE_INTEGER)).toEqual([]);
    const ro = new Database(dbPath, { readonly: true });
    try {
      const plan = (sql: string, ...args: unknown[]): string => (ro.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join('; ');
      expect(plan(`SELECT * FROM clips WHERE state = 'released' AND spool_kept = 1 AND updated_ms < ? ORDER BY updated_ms`, 5)).toMatch(/USING INDEX clips_kept_spool/);
      expect(plan('SELECT COALESCE(MAX(seq), 0) m FROM clip_events')).toMatch(/clip_events_by_seq/);
    } finally {
      ro.close();
    }
  });

  it('a state store from before the queue columns gets them on open, its clips intact', () => {
    const raw = new Database(dbPath.replace('sub/', ''));
    raw.exec(`CREATE TABLE clips (serial TEXT NOT NULL, clip_id TEXT NOT NULL, seq INTEGER NOT NULL, size INTEGER NOT NULL, state TEXT NOT NULL,
      offset INTEGER NOT NULL DEFAULT 0, container TEXT NOT NULL DEFAULT 'bin', trigger INTEGER NOT NULL DEFAULT 0, start_ms INTEGER NOT NULL DEFAULT 0,
      manifest BLOB, signature BLOB, sha256 TEXT, reason TEXT, flags TEXT, receipt TEXT, rx_sha256 TEXT, updated_ms INTEGER NOT NULL, PRIMARY KEY (serial, clip_id))`);
    raw.prepare(`INSERT INTO clips (serial, clip_id, seq, size, state, updated_ms) VALUES (?, 'OLD1', 1, 5, 'verified', 9)`).run(SERIAL);
    raw.close();
    const s = new Store(dbPath.replace('sub/', ''));
    opened.push(s);
    expect(s.clip(SERIAL, 'OLD1')).toMatchObject({ state: 'verified', size: 5, priority: 0, attempts: 0, lastError: null, spoolKept: false });
    expect(s.uploadOrder(0, 5).map((c) => c.clipId)).toEqual(['OLD1']);
  });
});
