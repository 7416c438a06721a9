/**
 * One docked camera, from HELLO to undock.
 *
 *   connect ─► HELLO ─► enrolled? ─► AUTH (enrolled key) ─► clock ─► release what is stored
 *     ─► LIST_CLIPS ─► for each clip not yet in the spool: GET_MANIFEST, pull (resumable)
 *     ─► wait for verification and upload ─► release what is stored ─► done (stays docked, charging)
 *
 * While the evidence store is down or full the bay waits in `finishing` (the camera
 * charges and keeps its clips); each clip is released as soon as it is stored.
 *
 * A camera that is not enrolled, or fails AUTH, is refused: logged, in the ledger,
 * and nothing of it is stored. An undock at any point leaves each clip at its durable
 * state; the next dock picks up from there.
 */
import { EventEmitter } from 'node:events';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from '../durableFs.js';
import type { Details, Ledger } from '../custody/Ledger.js';
import { parseManifest } from '../custody/manifest.js';
import { DockError, isDockError, toDockError } from '../errors.js';
import type { Candidate } from '../hal/discovery.js';
import type { Logger } from '../log.js';
import type { ClipEntry } from '../protocol/messages.js';
import { Session, type SessionOptions } from '../protocol/Session.js';
import type { ClipRow, Store } from '../queue/Store.js';
import type { HashPool } from '../verify/HashPool.js';
import type { UploadQueue } from '../queue/UploadQueue.js';
import type { Pipeline } from './Pipeline.js';
import type { SpaceReservation, Spool } from './Spool.js';

export type BayState = 'connecting' | 'refused' | 'pulling' | 'finishing' | 'done' | 'gone' | 'failed';

export interface BayDeps {
  store: Store;
  ledger: Ledger;
  spool: Spool;
  pipeline: Pipeline;
  queue: UploadQueue;
  hashes: HashPool;
  log: Logger;
  session?: SessionOptions;
  clockSkewMs?: number; // SET_TIME when the camera is further off than this; default 2000
  pullAttempts?: number; // per clip per docking before it is left for the next dock; default 5
  spoolWaitMs?: number; // how often a pull paused for spool space looks again; default 2000
  spoolKeepMs?: number; // keep a released clip's spool copy this long; default 0 (removed at release)
  /** Frees spool space held by kept copies of released clips, early; returns how many went. */
  reclaimSpool?: () => Promise<number>;
  /** The drop folder is copying this clip into the spool now: the bay leaves it alone. */
  importing?: (serial: string, clipId: string) => boolean;
  /** Refuses a second bay for a serial that is already docked elsewhere. */
  claim(serial: string, bay: Bay): boolean;
}

export interface BayProgress {
  clipId: string;
  bytes: number;
  size: number;
}

/** What a technician sees of a bay's offload (`dockside pull`, `diag --all`). */
export interface BayActivity {
  dockedAtMs: number | null;
  doneAtMs: number | null; // when it last reached done
  toPull: number; // clips this offload pulls
  pulled: number;
  current: BayProgress | null; // the clip being pulled now
  operation: string | null; // a technician operation running on the camera (firmware)
}

export interface BayEvents {
  state: [state: BayState];
  progress: [p: BayProgress];
  bytes: [n: number]; // clip bytes received and written to the spool
  linkError: [reason: string]; // a frame the decoder discarded
  releasesDone: [];
}

export class Bay extends EventEmitter<BayEvents> {
  readonly candidate: Candidate;
  #state: BayState = 'connecting';
  #serial: string | undefined;
  #session: Session | undefined;
  #error: DockError | undefined;
  #closed = false;
  #releasing: Promise<void> = Promise.resolve();
  #releaseRuns = 0;
  #authenticated = false;
  #activity: BayActivity = { dockedAtMs: null, doneAtMs: null, toPull: 0, pulled: 0, current: null, operation: null };
  readonly #d: BayDeps;
  readonly #log: Logger;

  constructor(candidate: Candidate, deps: BayDeps) {
    super();
    this.candidate = candidate;
    this.#d = deps;
    this.#log = deps.log.child({ path: candidate.path });
  }

  get state(): BayState {
    return this.#state;
  }

  get serial(): string | undefined {
    return this.#serial;
  }

  get error(): DockError | undefined {
    return this.#error;
  }

  /** The camera's session, while it is docked and proved its enrolled key. */
  get liveSession(): Session | undefined {
    const s = this.#session;
    return s && !s.closed && this.#authenticated ? s : undefined;
  }

  get activity(): BayActivity {
    return { ...this.#activity, current: this.#activity.current ? { ...this.#activity.current } : null };
  }

  /**
   * Runs a technician operation (a firmware update) on the docked camera, once it is
   * offloaded: never in the middle of a pull, and one at a time.
   */
  async operate<T>(name: string, fn: (s: Session) => Promise<T>): Promise<T> {
    const s = this.liveSession;
    if (!s) throw new DockError('HAL_NOT_FOUND', `camera ${this.#serial ?? this.candidate.path} is not docked and authenticated (bay state ${this.#state})`, { serial: this.#serial });
    if (this.#state !== 'done') throw new DockError('CAMERA_BUSY', `camera ${this.#serial} is being offloaded (state ${this.#state}); try again when \`dockside devices\` shows it done`, { serial: this.#serial, state: this.#state });
    if (this.#activity.operation) throw new DockError('CAMERA_BUSY', `camera ${this.#serial} is busy with ${this.#activity.operation}; try again when it finishes`, { serial: this.#serial });
    // From here no release starts (releaseStored waits for the operation), and one that
    // is running is waited for: a RELEASE never goes into a firmware restart.
    this.#activity.operation = name;
    try {
      await this.#releasing;
      return await fn(s);
    } finally {
      this.#activity.operation = null;
      if (this.#d.store.clips({ serial: this.#serial!, state: 'stored' }).length > 0) void this.releaseStored().catch(() => undefined);
    }
  }

  /**
   * Offloads a camera that is done again (`dockside pull` on a camera that recorded
   * since, or whose pull gave up): lists its clips and pulls what is new. Returns false
   * when the bay is not done (it is offloading already, or the camera is gone).
   */
  offloadAgain(): boolean {
    const s = this.liveSession;
    if (!s || !this.#serial || this.#state !== 'done' || this.#activity.operation || this.releasing) return false;
    const serial = this.#serial;
    void this.#guard(() => this.#offload(s, serial));
    return true;
  }

  /** done, refused, failed or gone: nothing more will happen in this bay. */
  get settled(): boolean {
    return this.#state === 'done' || this.#state === 'refused' || this.#state === 'failed' || this.#state === 'gone';
  }

  async run(): Promise<void> {
    await this.#guard(() => this.#run());
  }

  async #guard(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      const e = toDockError(err, 'INTERNAL', `bay ${this.candidate.path} failed`);
      if (e.code === 'HAL_DISCONNECTED' || e.code === 'PROTO_CLOSED') {
        this.#setState('gone');
        if (this.#serial) this.#appendQuietly('undocked', { serial: this.#serial, details: { path: this.candidate.path, during: 'ingest' } });
        this.#log.info({ serial: this.#serial }, 'camera undocked mid-ingest; work resumes at its next dock');
      } else {
        this.#error = e;
        this.#setState('failed');
        this.#log.error({ serial: this.#serial, code: e.code, err: e.message }, 'bay failed; the camera keeps its clips');
      }
      await this.#session?.close().catch(() => undefined);
    }
  }

  /**
   * Releases what the pipeline stored for this camera (call on 'stored'). Calls are
   * queued one after another, and each re-reads what is stored, so a clip is never
   * released twice however the calls overlap.
   */
  releaseStored(): Promise<void> {
    this.#releaseRuns++;
    const run = this.#releasing.then(async () => {
      const s = this.#session;
      // A technician operation (a firmware update) holds the camera: released after it.
      if (!s || s.closed || !this.#serial || !this.#authenticated || this.#activity.operation) return;
      for (const c of this.#d.store.clips({ serial: this.#serial, state: 'stored' })) await this.#release(s, c);
    });
    this.#releasing = run
      .catch(() => undefined)
      .finally(() => {
        this.#releaseRuns--;
        if (this.#releaseRuns === 0) this.emit('releasesDone');
      });
    return run;
  }

  /** A release is queued or running (a clip stored after the bay was done, e.g. a retried upload). */
  get releasing(): boolean {
    return this.#releaseRuns > 0;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#session?.close().catch(() => undefined);
    if (!this.settled) this.#setState('gone');
  }

  /** For events written where an error has nowhere to go (an event listener, a catch). */
  #appendQuietly(event: 'undocked', what: { serial: string; details: Details }): void {
    try {
      this.#d.ledger.append(event, what);
    } catch (err) {
      this.#log.error({ serial: what.serial, event, err: (err as Error).message }, 'could not write a ledger event');
    }
  }

  #setState(state: BayState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  async #run(): Promise<void> {
    const session = await Session.connect(this.candidate.createTransport(), { timeoutMs: 1000, retries: 6, ...this.#d.session, log: this.#log.child({ part: 'protocol' }) });
    this.#session = session;
    session.on('discarded', (reason) => this.emit('linkError', reason));
    session.once('disconnected', () => {
      if (!this.settled || this.#state === 'done') {
        if (this.#state === 'done' && this.#serial) this.#appendQuietly('undocked', { serial: this.#serial, details: { path: this.candidate.path } });
        this.#setState('gone');
      }
    });
    this.#serial = session.info.serial;
    await this.#admit(session);
  }

  /** Enrolled? AUTH with the enrolled key, claim the serial, set the clock, offload. */
  async #admit(session: Session): Promise<void> {
    const { store, ledger } = this.#d;
    const hello = session.info;
    const serial = hello.serial;
    const where = { serial };
    const camera = store.camera(serial);
    if (!camera || camera.revoked) {
      this.#refuse(session, `camera ${serial} is ${camera ? 'revoked' : 'not enrolled'}; nothing is taken from it. Enroll it with \`dockside enroll ${serial}\` if it belongs to this agency`, 'INGEST_UNENROLLED');
      return;
    }
    try {
      await session.authenticate(camera.publicKey);
    } catch (err) {
      if (!isDockError(err, 'PROTO_AUTH')) throw err;
      this.#refuse(session, err.message, 'PROTO_AUTH');
      return;
    }
    // Only a device that proved the enrolled key takes the serial's bay: nothing (a
    // RELEASE above all) goes to a device that merely said the serial in HELLO.
    if (!this.#d.claim(serial, this)) {
      this.#refuse(session, `camera ${serial} is already docked in another bay; two devices claim one serial`, 'INGEST_DUPLICATE');
      return;
    }
    this.#authenticated = true;
    ledger.append('docked', { ...where, details: { path: this.candidate.path, transport: this.candidate.kind, model: hello.model, firmware: hello.firmware } });
    this.#log.info({ serial, model: hello.model, firmware: hello.firmware }, 'camera docked and authenticated');
    this.#activity.dockedAtMs = Date.now();
    await this.#setClock(session, serial);
    await this.#offload(session, serial);
  }

  /** LIST_CLIPS, pull what is new, wait for verification and upload, release: done. */
  async #offload(session: Session, serial: string): Promise<void> {
    const { store, ledger } = this.#d;
    this.#activity = { ...this.#activity, toPull: 0, pulled: 0, current: null };
    this.#setState('pulling');
    await this.releaseStored();
    const { clips, refused } = await session.listClips();
    const onCameraRefused = new Set<string>();
    for (const r of refused) ledger.append('refused', { serial, details: { clipId: r.id, reason: r.error.message } });
    for (const c of clips) {
      if (c.released) continue;
      const known = store.clip(serial, c.id);
      if (known && (known.seq !== c.seq || known.size !== c.size)) {
        ledger.append('refused', { serial, clipId: c.id, details: { reason: `clip id reused: listed as seq ${c.seq}, ${c.size} bytes; recorded as seq ${known.seq}, ${known.size} bytes. The new clip stays on the camera`, code: 'INGEST_DUPLICATE' } });
        this.#log.error({ serial, clipId: c.id }, 'camera reused a clip id for different content; left on the camera');
        onCameraRefused.add(c.id);
        continue;
      }
      if (known) continue;
      // The event first: a crash between the two repeats it, and never loses it.
      ledger.append('listed', { serial, clipId: c.id, details: { seq: c.seq, size: c.size } });
      store.addListed({ serial, clipId: c.id, seq: c.seq, size: c.size, trigger: c.trigger, startMs: c.startMs });
    }
    this.#d.pipeline.kick(serial);
    const onCamera = new Map(clips.filter((c) => !onCameraRefused.has(c.id)).map((c) => [c.id, c]));
    const toPull = store.clips({ serial, state: ['listed', 'pulling'] }).filter((r) => onCamera.has(r.clipId) && !this.#d.importing?.(serial, r.clipId));
    this.#activity.toPull = toPull.length;
    for (const row of toPull) {
      await this.#pullWithRetries(session, row, onCamera.get(row.clipId)!);
      this.#activity.pulled++;
      this.#activity.current = null;
    }
    this.#setState('finishing');
    await this.#d.pipeline.whenIdle(serial);
    await this.#d.queue.whenDone(serial);
    if (this.#closed) return; // undocked (or stopping) while its uploads were waiting: already gone
    await this.releaseStored();
    this.#activity.doneAtMs = Date.now();
    this.#setState('done');
    this.#log.info({ serial }, 'camera offloaded');
  }

  #refuse(session: Session, reason: string, code: string): void {
    this.#d.ledger.append('refused', { serial: session.serial, details: { reason, code, path: this.candidate.path } });
    this.#log.warn({ serial: session.serial, code, reason }, 'camera refused');
    this.#error = new DockError(code === 'PROTO_AUTH' ? 'PROTO_AUTH' : code === 'INGEST_DUPLICATE' ? 'INGEST_DUPLICATE' : 'INGEST_UNENROLLED', reason, { serial: session.serial });
    this.#setState('refused');
    // An unenrolled camera, or one whose key changed, stays connected (and charging),
    // asked nothing more, so a technician can enroll it through the daemon; a second
    // device claiming a docked serial is let go.
    if (code === 'INGEST_DUPLICATE') void session.close();
  }

  /**
   * The camera proves which key it holds (AUTH over a fresh nonce, no expectation):
   * for `dockside enroll` through the daemon. Any docked camera whose session is open.
   */
  async identify(): Promise<{ serial: string; model: string; path: string; key: Buffer }> {
    const s = this.#session;
    if (!s || s.closed || this.#state === 'gone') throw new DockError('HAL_NOT_FOUND', `the camera at ${this.candidate.path} is not connected; reseat it`, { path: this.candidate.path });
    return { serial: s.serial, model: s.info.model, path: this.candidate.path, key: await s.authenticate() };
  }

  /** After a refused camera was enrolled: admit it now (AUTH with the new key, then offload). */
  readmit(): boolean {
    const s = this.#session;
    if (this.#state !== 'refused' || !s || s.closed || this.#error?.code === 'INGEST_DUPLICATE') return false;
    this.#error = undefined;
    this.#setState('connecting');
    void this.#guard(() => this.#admit(s));
    return true;
  }

  async #setClock(session: Session, serial: string): Promise<void> {
    const t0 = Date.now();
    const st = await session.status();
    const skewMs = st.clockMs - Math.round((t0 + Date.now()) / 2);
    if (Math.abs(skewMs) <= (this.#d.clockSkewMs ?? 2000)) return;
    const { previousMs } = await session.request('SET_TIME', { utcMs: Date.now() });
    this.#d.ledger.append('clock_set', { serial, details: { skewMs, previousMs } });
    this.#log.info({ serial, skewMs }, 'camera clock corrected');
  }

  async #pullWithRetries(session: Session, row: ClipRow, entry: ClipEntry): Promise<void> {
    const attempts = this.#d.pullAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) return;
      try {
        await this.#pull(session, this.#d.store.clip(row.serial, row.clipId)!, entry);
        return;
      } catch (err) {
        if (isDockError(err, 'HAL_DISCONNECTED') || isDockError(err, 'PROTO_CLOSED')) throw err;
        if (isDockError(err, 'INGEST_SPOOL_FULL')) {
          // Kept copies of released clips are a convenience; a pull is evidence.
          if (((await this.#d.reclaimSpool?.()) ?? 0) > 0) continue;
          this.#log.warn({ serial: row.serial, clipId: row.clipId, err: err.message }, 'spool full: pull paused');
          await new Promise((r) => setTimeout(r, this.#d.spoolWaitMs ?? 2000));
          attempt--; // waiting for space is not a failed attempt
          continue;
        }
        const e = toDockError(err, 'INTERNAL', `pull of ${row.serial}/${row.clipId} failed`);
        this.#log.warn({ serial: row.serial, clipId: row.clipId, attempt, code: e.code, err: e.message }, 'pull failed');
        if (attempt >= attempts) {
          this.#log.error({ serial: row.serial, clipId: row.clipId }, 'pull keeps failing; the clip stays on the camera and is tried at its next dock');
          return;
        }
      }
    }
  }

  /** Pulls one clip into the spool from its durable offset; ends spooled. */
  async #pull(session: Session, row: ClipRow, entry: ClipEntry): Promise<void> {
    const { store, spool, ledger } = this.#d;
    const { serial, clipId } = row;
    let reservation: SpaceReservation | undefined;
    try {
      if (row.state === 'listed') {
        const m = await session.request('GET_MANIFEST', { clipId });
        let sha256: string | null = null;
        let container = 'bin';
        try {
          const parsed = parseManifest(Buffer.from(m.manifest));
          sha256 = parsed.sha256;
          container = parsed.container;
        } catch {
          // kept as sent; the verify step quarantines it with the reason
        }
        store.setManifest(serial, clipId, Buffer.from(m.manifest), Buffer.from(m.signature), sha256, container);
        reservation = await spool.reserve(row.size);
        store.transition(serial, clipId, 'pulling', { offset: 0 });
        row = store.clip(serial, clipId)!;
      }
      const final = spool.clipPath(serial, clipId, row.container);
      // A crash between the rename and the commit: the pull is complete on disk.
      if (row.offset === row.size && (await stat(final).catch(() => undefined))) {
        await fsyncDir(dirname(final)); // the rename may not be durable yet
        const { sha256 } = await this.#d.hashes.hash(final);
        return this.#spooled(row, sha256);
      }
      const held = (reservation ??= await spool.reserve(entry.size - row.offset)); // a resumed pull asks for the rest
      const part = await spool.openPart(serial, clipId, row.offset, held);
      try {
        const every = spool.options.syncEveryBytes;
        await session.readRange(clipId, row.offset, entry.size, async (offset, data) => {
          await part.write(offset, data);
          this.emit('bytes', data.length);
          this.#activity.current = { clipId, bytes: part.written, size: entry.size };
          this.emit('progress', this.#activity.current);
          if (part.unsynced >= every) {
            await held.check();
            store.setOffset(serial, clipId, await part.sync());
          }
        });
        store.setOffset(serial, clipId, await part.sync());
      } finally {
        await part.close();
      }
      await spool.complete(serial, clipId, row.container);
      const rxSha256 = part.hash.digest('hex');
      ledger.append('pulled', { serial, clipId, details: { bytes: entry.size, receivedSha256: rxSha256, resumedFrom: row.offset } });
      store.transition(serial, clipId, 'spooled', { rxSha256 });
      this.#d.pipeline.kick(serial);
    } finally {
      reservation?.release();
    }
  }

  #spooled(row: ClipRow, rxSha256: string): void {
    this.#d.ledger.append('pulled', { serial: row.serial, clipId: row.clipId, details: { bytes: row.size, receivedSha256: rxSha256, resumedFrom: row.offset } });
    this.#d.store.transition(row.serial, row.clipId, 'spooled', { rxSha256 });
    this.#d.pipeline.kick(row.serial);
  }

  async #release(session: Session, c: ClipRow): Promise<void> {
    const { store, ledger, log } = this.#d;
    if (!c.sha256 || !c.receipt) throw new DockError('INTERNAL', `stored clip ${c.serial}/${c.clipId} has no hash or receipt`);
    try {
      const r = await session.request('RELEASE', { clipId: c.clipId, sha256: Buffer.from(c.sha256, 'hex'), receipt: c.receipt });
      if (!r.released) {
        ledger.append('release_refused', { serial: c.serial, clipId: c.clipId, details: { reason: 'the camera answered released=0' } });
        log.error({ serial: c.serial, clipId: c.clipId }, 'camera did not release the clip; it stays stored and on the camera');
        return;
      }
      ledger.append('released', { serial: c.serial, clipId: c.clipId, details: { sha256: c.sha256, receipt: c.receipt, freedBytes: r.freedBytes } });
      // Everything that follows a release happens before the state says released, so a
      // crash in between repeats it all (RELEASE is idempotent on the camera) and nothing
      // is left behind: the sidecar gets the release line, and the spool copy goes (a
      // stored clip needs only its hash and receipt to be released again), or is kept
      // for the keep period and removed by the daemon's janitor.
      await this.#d.queue.writeSidecar(c.serial, c.clipId);
      const keep = (this.#d.spoolKeepMs ?? 0) > 0;
      if (!keep) await this.#d.spool.remove(c.serial, c.clipId, c.container);
      store.transition(c.serial, c.clipId, 'released', { spoolKept: keep });
      log.info({ serial: c.serial, clipId: c.clipId }, 'clip released from the camera');
    } catch (err) {
      if (!isDockError(err, 'PROTO_REMOTE')) throw err;
      ledger.append('release_refused', { serial: c.serial, clipId: c.clipId, details: { reason: err.message } });
      log.error({ serial: c.serial, clipId: c.clipId, err: err.message }, 'camera refused the release; the clip stays stored and on the camera');
    }
  }
}
