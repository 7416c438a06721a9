/**
 * Durable state of the dock (SQLite through better-sqlite3, WAL, synchronous=FULL):
 * enrolled cameras, every clip and where it is in its custody, and the chain value
 * last seen from each camera.
 *
 *   listed ─► pulling ─► spooled ─► verified ⇄ uploading ─► stored ─► released
 *                                 │           ▲        └► failed (the store refused it: kept
 *                                 │           └──────────────┘  spooled and on the camera;
 *                                 │                 `queue retry` puts it back)
 *                                 └► quarantined (kept, reported, never released)
 *
 * uploading ─► verified is a requeue: the upload failed for a passing reason (an
 * outage, a full store) and is tried again later, after `next_attempt_ms`.
 *
 * Invariants kept here:
 * - Each transition is one transaction, checked against the state it leaves (a
 *   transition from the wrong state throws), so a step can never be done twice or
 *   skipped, whatever order a crash and a restart run things in.
 * - A caller commits a transition only after the data it depends on is durable
 *   (the spool file fsynced, the vault object fsynced and re-read): this store
 *   records facts, it never makes them true.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DockError } from '../errors.js';

export const CLIP_STATES = ['listed', 'pulling', 'spooled', 'verified', 'quarantined', 'uploading', 'failed', 'stored', 'released'] as const;
export type ClipState = (typeof CLIP_STATES)[number];

/** Which state each state may move to. */
const NEXT: Record<ClipState, readonly ClipState[]> = {
  listed: ['pulling'],
  pulling: ['spooled'],
  spooled: ['verified', 'quarantined'],
  verified: ['uploading'],
  quarantined: [],
  uploading: ['stored', 'verified', 'failed'],
  failed: ['verified'],
  stored: ['released'],
  released: [],
};

export interface ClipRow {
  serial: string;
  clipId: string;
  seq: number;
  size: number;
  state: ClipState;
  offset: number; // bytes durable in the spool (pulling)
  container: string;
  trigger: number;
  startMs: number;
  manifest: Buffer | null; // exact bytes the camera signed
  signature: Buffer | null;
  sha256: string | null; // from the manifest
  reason: string | null; // why quarantined
  flags: string | null; // e.g. media check findings on a stored clip
  receipt: string | null; // the sink's receipt once stored
  rxSha256: string | null; // SHA-256 of the bytes as they arrived (spooled and after)
  priority: number; // uploaded before every clip of a lower priority (1: the camera's priority trigger)
  attempts: number; // uploads tried and failed since it was last verified or retried
  nextAttemptMs: number; // not tried again before this (backoff)
  lastError: string | null; // why the last upload failed
  spoolKept: boolean; // released, with its spool copy still kept (removed after the keep period)
  updatedMs: number;
}

/** Priority of a clip the camera recorded with its priority trigger. */
export const PRIORITY_TRIGGERED = 1;
const TRIGGER_PRIORITY = 2; // index of 'priority' in the protocol's TRIGGERS

export interface CameraRow {
  serial: string;
  model: string;
  publicKey: Buffer; // raw Ed25519
  enrolledMs: number;
  lastChain: string | null;
  lastSeq: number;
  revoked: boolean;
}

/** Columns added after the first release of the schema: a data dir from then gets them on open. */
const ADDED_CLIP_COLUMNS: Record<string, string> = {
  priority: 'INTEGER NOT NULL DEFAULT 0',
  attempts: 'INTEGER NOT NULL DEFAULT 0',
  next_attempt_ms: 'INTEGER NOT NULL DEFAULT 0',
  last_error: 'TEXT',
  spool_kept: 'INTEGER NOT NULL DEFAULT 0',
};

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cameras (
  serial TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  public_key BLOB NOT NULL,
  enrolled_ms INTEGER NOT NULL,
  last_chain TEXT,
  last_seq INTEGER NOT NULL DEFAULT 0,
  revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS clips (
  serial TEXT NOT NULL,
  clip_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  size INTEGER NOT NULL,
  state TEXT NOT NULL,
  offset INTEGER NOT NULL DEFAULT 0,
  container TEXT NOT NULL DEFAULT 'bin',
  trigger INTEGER NOT NULL DEFAULT 0,
  start_ms INTEGER NOT NULL DEFAULT 0,
  manifest BLOB,
  signature BLOB,
  sha256 TEXT,
  reason TEXT,
  flags TEXT,
  receipt TEXT,
  rx_sha256 TEXT,
  priority INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  spool_kept INTEGER NOT NULL DEFAULT 0,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (serial, clip_id)
);
CREATE INDEX IF NOT EXISTS clips_by_state ON clips (state, serial, seq);
CREATE INDEX IF NOT EXISTS clips_by_upload_order ON clips (state, priority DESC, start_ms, serial, seq);
-- Read at every start (keptSpoolCopies): without it, a walk over every released clip (150 ms at 100,000).
-- Partial, so it holds only the few kept copies; state and spool_kept lead so the planner prefers it.
CREATE INDEX IF NOT EXISTS clips_kept_spool ON clips (state, spool_kept, updated_ms) WHERE spool_kept = 1;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The ledger lines about each clip, so a sidecar is built without rescanning the ledger.
CREATE TABLE IF NOT EXISTS clip_events (
  serial TEXT NOT NULL,
  clip_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  line TEXT NOT NULL,
  PRIMARY KEY (serial, clip_id, seq)
);
-- MAX(seq) at every start (maxEventSeq): without it, a scan of every line indexed (100 ms at 500,000).
CREATE INDEX IF NOT EXISTS clip_events_by_seq ON clip_events (seq);
`;

function toClip(r: Record<string, unknown>): ClipRow {
  return {
    serial: r['serial'] as string,
    clipId: r['clip_id'] as string,
    seq: r['seq'] as number,
    size: r['size'] as number,
    state: r['state'] as ClipState,
    offset: r['offset'] as number,
    container: r['container'] as string,
    trigger: r['trigger'] as number,
    startMs: r['start_ms'] as number,
    manifest: (r['manifest'] as Buffer | null) ?? null,
    signature: (r['signature'] as Buffer | null) ?? null,
    sha256: (r['sha256'] as string | null) ?? null,
    reason: (r['reason'] as string | null) ?? null,
    flags: (r['flags'] as string | null) ?? null,
    receipt: (r['receipt'] as string | null) ?? null,
    rxSha256: (r['rx_sha256'] as string | null) ?? null,
    priority: r['priority'] as number,
    attempts: r['attempts'] as number,
    nextAttemptMs: r['next_attempt_ms'] as number,
    lastError: (r['last_error'] as string | null) ?? null,
    spoolKept: (r['spool_kept'] as number) === 1,
    updatedMs: r['updated_ms'] as number,
  };
}

function toCamera(r: Record<string, unknown>): CameraRow {
  return {
    serial: r['serial'] as string,
    model: r['model'] as string,
    publicKey: r['public_key'] as Buffer,
    enrolledMs: r['enrolled_ms'] as number,
    lastChain: (r['last_chain'] as string | null) ?? null,
    lastSeq: r['last_seq'] as number,
    revoked: (r['revoked'] as number) === 1,
  };
}

export class Store {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #setOffset: Database.Statement<[number, number, string, string]>;

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    try {
      this.#db = new Database(path);
      this.#db.pragma('journal_mode = WAL');
      // FULL: a committed transition survives a power cut, not only a process crash.
      this.#db.pragma('synchronous = FULL');
      this.#db.pragma('foreign_keys = ON');
      this.#migrate();
      this.#db.exec(SCHEMA);
    } catch (err) {
      throw new DockError('CONFIG_INVALID', `cannot open the state store ${path}: ${(err as Error).message}. Check the data directory's permissions and free space`, { path }, { cause: err });
    }
    this.#setOffset = this.#db.prepare(`UPDATE clips SET offset = ?, updated_ms = ? WHERE serial = ? AND clip_id = ? AND state = 'pulling'`);
  }

  /** Brings an older clips table up to this schema (before SCHEMA, whose indexes need the columns). */
  #migrate(): void {
    const cols = this.#db.prepare('PRAGMA table_info(clips)').all() as { name: string }[];
    if (cols.length === 0) return; // a new store: SCHEMA creates it whole
    const have = new Set(cols.map((c) => c.name));
    for (const [name, decl] of Object.entries(ADDED_CLIP_COLUMNS)) if (!have.has(name)) this.#db.exec(`ALTER TABLE clips ADD COLUMN ${name} ${decl}`);
  }

  close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }

  // cameras

  enroll(serial: string, model: string, publicKey: Buffer, nowMs = Date.now()): void {
    this.#db
      .prepare(
        `INSERT INTO cameras (serial, model, public_key, enrolled_ms) VALUES (?, ?, ?, ?)
         ON CONFLICT(serial) DO UPDATE SET model = excluded.model, public_key = excluded.public_key, enrolled_ms = excluded.enrolled_ms, revoked = 0`,
      )
      .run(serial, model, publicKey, nowMs);
  }

  revoke(serial: string): boolean {
    return this.#db.prepare('UPDATE cameras SET revoked = 1 WHERE serial = ?').run(serial).changes > 0;
  }

  camera(serial: string): CameraRow | undefined {
    const r = this.#db.prepare('SELECT * FROM cameras WHERE serial = ?').get(serial) as Record<string, unknown> | undefined;
    return r ? toCamera(r) : undefined;
  }

  cameras(): CameraRow[] {
    return (this.#db.prepare('SELECT * FROM cameras ORDER BY serial').all() as Record<string, unknown>[]).map(toCamera);
  }

  /** Advances the chain value seen from a camera (only forward, by seq). */
  advanceChain(serial: string, seq: number, chain: string): void {
    this.#db.prepare('UPDATE cameras SET last_chain = ?, last_seq = ? WHERE serial = ? AND last_seq < ?').run(chain, seq, serial, seq);
  }

  // clips

  /** Records a clip the camera listed; returns false if it was known already. */
  addListed(c: Pick<ClipRow, 'serial' | 'clipId' | 'seq' | 'size' | 'trigger' | 'startMs'>, nowMs = Date.now()): boolean {
    const r = this.#db
      .prepare(`INSERT OR IGNORE INTO clips (serial, clip_id, seq, size, state, trigger, start_ms, priority, updated_ms) VALUES (?, ?, ?, ?, 'listed', ?, ?, ?, ?)`)
      .run(c.serial, c.clipId, c.seq, c.size, c.trigger, c.startMs, c.trigger === TRIGGER_PRIORITY ? PRIORITY_TRIGGERED : 0, nowMs);
    return r.changes > 0;
  }

  clipBySeq(serial: string, seq: number): ClipRow | undefined {
    const r = this.#db.prepare('SELECT * FROM clips WHERE serial = ? AND seq = ? ORDER BY updated_ms DESC LIMIT 1').get(serial, seq) as Record<string, unknown> | undefined;
    return r ? toClip(r) : undefined;
  }

  clip(serial: string, clipId: string): ClipRow | undefined {
    const r = this.#db.prepare('SELECT * FROM clips WHERE serial = ? AND clip_id = ?').get(serial, clipId) as Record<string, unknown> | undefined;
    return r ? toClip(r) : undefined;
  }

  clips(filter: { serial?: string; state?: ClipState | ClipState[] } = {}): ClipRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.serial) {
      where.push('serial = ?');
      args.push(filter.serial);
    }
    if (filter.state) {
      const states = Array.isArray(filter.state) ? filter.state : [filter.state];
      where.push(`state IN (${states.map(() => '?').join(',')})`);
      args.push(...states);
    }
    const sql = `SELECT * FROM clips ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY serial, seq`;
    return (this.#db.prepare(sql).all(...args) as Record<string, unknown>[]).map(toClip);
  }

  countByState(): Record<ClipState, number> {
    const out = Object.fromEntries(CLIP_STATES.map((s) => [s, 0])) as Record<ClipState, number>;
    for (const r of this.#db.prepare('SELECT state, COUNT(*) n FROM clips GROUP BY state').all() as { state: ClipState; n: number }[]) out[r.state] = r.n;
    return out;
  }

  /** Bytes of the clips in the evidence store (stored or released), summed in SQL: a dock's history can be 100,000 clips. */
  storedBytes(): number {
    return (this.#db.prepare(`SELECT COALESCE(SUM(size), 0) b FROM clips WHERE state IN ('stored', 'released')`).get() as { b: number }).b;
  }

  /**
   * Saves the manifest the camera sent (before the pull; it is what everything is checked
   * against). Relaxed: the transition to `pulling` that follows is FULL and carries it;
   * lost before that, the clip is still `listed` and its manifest is fetched again.
   */
  setManifest(serial: string, clipId: string, manifest: Buffer, signature: Buffer, sha256: string | null, container: string): void {
    this.#relaxed(() => this.#db.prepare('UPDATE clips SET manifest = ?, signature = ?, sha256 = ?, container = ? WHERE serial = ? AND clip_id = ?').run(manifest, signature, sha256, container, serial, clipId));
  }

  /**
   * Runs one write committed without waiting for its own WAL fsync (synchronous=NORMAL
   * for this statement only), for rows a power cut may lose without harm: they are
   * rebuilt or re-fetched (see each caller). WAL frames are appended in order, so the next
   * FULL commit's fsync makes this one durable too, and a power cut can only lose a
   * suffix of such commits, never one before a durable transition.
   */
  /** The connection's safety level now (2 = FULL); every commit outside #relaxed runs at FULL. */
  get synchronous(): number {
    return this.#db.pragma('synchronous', { simple: true }) as number;
  }

  #relaxed<T>(write: () => T): T {
    // Inside a transaction the safety level may not change (SQLite refuses); the write
    // then simply commits with that transaction, FULL.
    if (this.#db.inTransaction) return write();
    this.#db.pragma('synchronous = NORMAL');
    try {
      return write();
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
  }

  /** Records how many bytes of a pull are durable in the spool (after its fsync). */
  // Committed without its own WAL fsync (see #relaxed): losing it costs a re-pull from
  // the previous offset, since an offset may only ever run behind the spool's fsynced
  // bytes. The per-4-MiB offset commits took 12% of the main thread of an 8-camera
  // ingest with the fsync, under 1% without.
  setOffset(serial: string, clipId: string, offset: number, nowMs = Date.now()): void {
    const r = this.#relaxed(() => this.#setOffset.run(offset, nowMs, serial, clipId));
    if (r.changes !== 1) throw new DockError('INTERNAL', `offset for ${serial}/${clipId} recorded while it is not being pulled`, { serial, clipId });
  }

  /** One state transition, checked; `patch` sets reason / flags / receipt / offset with it. */
  transition(serial: string, clipId: string, to: ClipState, patch: TransitionPatch = {}, nowMs = Date.now()): ClipRow {
    const run = this.#db.transaction((): ClipRow => {
      const cur = this.clip(serial, clipId);
      if (!cur) throw new DockError('INTERNAL', `no clip ${serial}/${clipId} in the state store`, { serial, clipId });
      if (!NEXT[cur.state].includes(to)) {
        throw new DockError('INTERNAL', `clip ${serial}/${clipId} cannot go from ${cur.state} to ${to}`, { serial, clipId, from: cur.state, to });
      }
      this.#db
        .prepare(
          `UPDATE clips SET state = ?, updated_ms = ?,
             reason = COALESCE(?, reason), flags = COALESCE(?, flags), receipt = COALESCE(?, receipt), offset = COALESCE(?, offset),
             rx_sha256 = COALESCE(?, rx_sha256), attempts = COALESCE(?, attempts), next_attempt_ms = COALESCE(?, next_attempt_ms),
             last_error = CASE WHEN ? THEN ? ELSE last_error END, spool_kept = COALESCE(?, spool_kept)
           WHERE serial = ? AND clip_id = ?`,
        )
        .run(
          to,
          nowMs,
          patch.reason ?? null,
          patch.flags ?? null,
          patch.receipt ?? null,
          patch.offset ?? null,
          patch.rxSha256 ?? null,
          patch.attempts ?? null,
          patch.nextAttemptMs ?? null,
          patch.lastError !== undefined ? 1 : 0,
          patch.lastError ?? null,
          patch.spoolKept === undefined ? null : patch.spoolKept ? 1 : 0,
          serial,
          clipId,
        );
      return { ...cur, state: to, updatedMs: nowMs, ...stripNulls(patch), ...(patch.lastError === null ? { lastError: null } : {}) };
    });
    return run.immediate();
  }

  // upload queue

  /**
   * Clips waiting to be uploaded, in the order they go: priority first, then the
   * oldest recording; only those whose backoff has passed (`nowMs`). `uploading` ones
   * are included: after a crash they were in flight, and the upload is repeated.
   */
  uploadOrder(nowMs: number, limit: number, exclude: ReadonlySet<string> = new Set()): ClipRow[] {
    const rows = this.#db
      .prepare(`SELECT * FROM clips WHERE state IN ('verified', 'uploading') AND next_attempt_ms <= ? ORDER BY priority DESC, start_ms, serial, seq LIMIT ?`)
      .all(nowMs, limit + exclude.size) as Record<string, unknown>[];
    return rows.map(toClip).filter((c) => !exclude.has(`${c.serial}/${c.clipId}`)).slice(0, limit);
  }

  /** When the next clip held back by its backoff may be tried (undefined: none is). */
  nextUploadAttemptMs(nowMs: number): number | undefined {
    const r = this.#db.prepare(`SELECT MIN(next_attempt_ms) t FROM clips WHERE state IN ('verified', 'uploading') AND next_attempt_ms > ?`).get(nowMs) as { t: number | null };
    return r.t ?? undefined;
  }

  /** How many clips (of a camera, or of all) wait to be uploaded: verified or uploading. */
  countPendingUploads(serial?: string): number {
    const sql = `SELECT COUNT(*) n FROM clips WHERE state IN ('verified', 'uploading')${serial ? ' AND serial = ?' : ''}`;
    return (this.#db.prepare(sql).get(...(serial ? [serial] : [])) as { n: number }).n;
  }

  /** Lets a clip waiting out its upload backoff go at once. */
  resetBackoff(serial: string, clipId: string): void {
    this.#db.prepare(`UPDATE clips SET next_attempt_ms = 0 WHERE serial = ? AND clip_id = ? AND state IN ('verified', 'uploading')`).run(serial, clipId);
  }

  /** Released clips whose spool copy is still kept and was released before `beforeMs` (clips_kept_spool serves it). */
  keptSpoolCopies(beforeMs: number): ClipRow[] {
    return (this.#db.prepare(`SELECT * FROM clips WHERE state = 'released' AND spool_kept = 1 AND updated_ms < ? ORDER BY updated_ms`).all(beforeMs) as Record<string, unknown>[]).map(toClip);
  }

  /** Records that a released clip's spool copy is gone. */
  spoolCopyRemoved(serial: string, clipId: string): void {
    this.#db.prepare(`UPDATE clips SET spool_kept = 0 WHERE serial = ? AND clip_id = ? AND state = 'released'`).run(serial, clipId);
  }

  /**
   * Indexes one ledger line under its clip (the ledger file stays the record; it is
   * fdatasynced before this). Relaxed: rows a power cut loses are a suffix, and opening
   * the data dir indexes every ledger line after maxEventSeq() again.
   */
  addEvent(serial: string, clipId: string, seq: number, line: string): void {
    this.#relaxed(() => this.#db.prepare('INSERT OR IGNORE INTO clip_events (serial, clip_id, seq, line) VALUES (?, ?, ?, ?)').run(serial, clipId, seq, line));
  }

  /** Highest ledger seq indexed under a clip (0 if none). */
  maxEventSeq(): number {
    return (this.#db.prepare('SELECT COALESCE(MAX(seq), 0) m FROM clip_events').get() as { m: number }).m;
  }

  events(serial: string, clipId: string): string[] {
    return (this.#db.prepare('SELECT line FROM clip_events WHERE serial = ? AND clip_id = ? ORDER BY seq').all(serial, clipId) as { line: string }[]).map((r) => r.line);
  }

  /** Runs `fn` in one transaction: several facts recorded together or not at all. */
  atomically<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  /**
   * For /healthz: a read of the clips table and a committed write of one meta row
   * (`health_checked_ms`, read by nothing), in one transaction. Throws what SQLite says
   * (SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR_*, ...); no clip or camera is touched.
   */
  healthCheck(nowMs = Date.now()): void {
    this.#db
      .transaction(() => {
        this.#db.prepare('SELECT 1 FROM clips LIMIT 1').get();
        this.#db.prepare(`INSERT INTO meta (key, value) VALUES ('health_checked_ms', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(String(nowMs));
      })
      .immediate();
  }

  getMeta(key: string): string | undefined {
    return (this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }
}

export type TransitionPatch = Partial<Pick<ClipRow, 'reason' | 'flags' | 'receipt' | 'offset' | 'rxSha256' | 'attempts' | 'nextAttemptMs' | 'spoolKept'>> & {
  lastError?: string | null; // null clears it
};

function stripNulls<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;
}
