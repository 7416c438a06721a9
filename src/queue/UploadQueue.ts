/**
 * The upload queue: takes every verified clip to the evidence store, in order, and
 * never drops one.
 *
 *   verified ─► uploading ─► sink.put (checked receipt) ─► stored ─► (the bay releases)
 *                  │
 *                  ├─ SINK_WRITE, SINK_MISMATCH  the clip goes back to verified, tried
 *                  │                             again after an exponential backoff with jitter
 *                  ├─ SINK_UNAVAILABLE           the whole queue holds (the store is down), probes
 *                  ├─ SINK_FULL                  with one clip, resumes on the first success
 *                  └─ SINK_REFUSED               the clip is failed: kept spooled and on the camera,
 *                                                alerted, until `dockside queue retry`
 *
 * Order: priority clips first (the camera's priority trigger), then the oldest
 * recording. At most `concurrency` uploads run at once, all sharing one bandwidth
 * limit (in the sink). Retries happen at two levels: the SDK retries a request or a
 * part; this queue retries the whole object. A store that keeps returning different
 * bytes (`mismatchLimit` times in a row) fails the clip rather than looping on it.
 *
 * Every state change is written ledger line first, then committed, and a crash
 * mid-upload leaves the clip `uploading`, which is uploaded again at start (the sink
 * takes an object it already holds with the right hash as stored).
 */
import { EventEmitter } from 'node:events';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import type { DockKey } from '../custody/dockKey.js';
import type { Ledger } from '../custody/Ledger.js';
import { parseManifest } from '../custody/manifest.js';
import { buildSidecar } from '../custody/sidecar.js';
import { DockError, toDockError, type ErrorCode } from '../errors.js';
import type { Spool } from '../ingest/Spool.js';
import type { Logger } from '../log.js';
import { stripUndefined } from '../objects.js';
import type { ClipRow, Store } from './Store.js';
import type { Sink } from './sinks/Sink.js';

export interface UploadQueueOptions {
  concurrency: number; // uploads at once
  retryBaseMs: number; // first backoff of a clip or of the held queue
  retryMaxMs: number; // backoff cap
  fullProbeMs: number; // how often a queue paused for a full store tries again
  mismatchLimit: number; // wrong bytes back this many times in a row: the clip is failed
}

export const UPLOAD_DEFAULTS: UploadQueueOptions = { concurrency: 3, retryBaseMs: 1000, retryMaxMs: 300_000, fullProbeMs: 60_000, mismatchLimit: 3 };

export type HoldKind = 'operator' | 'store-full' | 'store-unreachable';

export interface Hold {
  kind: HoldKind;
  reason: string;
  sinceMs: number;
  untilMs: number | null; // next probe (null: until an operator resumes)
  probes: number;
}

export interface Alert {
  kind: 'store-full' | 'store-unreachable' | 'clip-failed' | 'store-mismatch' | 'resolved';
  message: string;
  serial?: string;
  clipId?: string;
}

export interface InFlight {
  serial: string;
  clipId: string;
  size: number;
  bytes: number;
  priority: number;
  startedMs: number;
}

export interface QueueStatus {
  hold: Hold | null;
  concurrency: number;
  inFlight: InFlight[];
  waiting: number; // verified or uploading, not in flight
  failed: number;
}

export interface UploadQueueEvents {
  stored: [serial: string, clipId: string];
  failed: [serial: string, clipId: string, error: DockError];
  alert: [alert: Alert];
  retry: [code: string]; // an upload failed and goes again (after a backoff, or when a hold ends)
  changed: [];
}

export interface UploadQueueDeps {
  store: Store;
  ledger: Ledger;
  spool: Spool;
  sink: Sink;
  dockKey: DockKey;
  log: Logger;
  options?: Partial<UploadQueueOptions>;
  now?: () => number;
}

const OPERATOR_PAUSE_KEY = 'queue.paused';
const key = (serial: string, clipId: string): string => `${serial}/${clipId}`;

/** What a failed upload means for the queue, by the sink's error code. */
export function classify(code: ErrorCode): 'retry' | 'hold' | 'full' | 'fail' | 'mismatch' {
  if (code === 'SINK_UNAVAILABLE') return 'hold';
  if (code === 'SINK_FULL') return 'full';
  if (code === 'SINK_REFUSED') return 'fail';
  if (code === 'SINK_MISMATCH') return 'mismatch';
  return 'retry';
}

/** Exponential backoff with "equal jitter": between half and all of base·2^n, capped. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Which clips a retry is for: one (serial and clip id), a camera's (serial), or all. */
export interface ClipSelector {
  serial?: string;
  clipId?: string;
}

/** The operator's pause, kept in the state store so it survives a restart. */
export function operatorPause(store: Store): Hold | undefined {
  const v = store.getMeta(OPERATOR_PAUSE_KEY);
  return v ? (JSON.parse(v) as Hold) : undefined;
}

export function setOperatorPause(store: Store, reason: string, nowMs: number): Hold {
  const hold: Hold = { kind: 'operator', reason, sinceMs: nowMs, untilMs: null, probes: 0 };
  store.setMeta(OPERATOR_PAUSE_KEY, JSON.stringify(hold));
  return hold;
}

export function clearOperatorPause(store: Store): void {
  store.setMeta(OPERATOR_PAUSE_KEY, '');
}

/**
 * Failed clips back to verified (ledger line first: `upload_retried`), and clips
 * waiting out a backoff let go at once. Works on a store with or without a daemon.
 */
export function retryClips(store: Store, ledger: Ledger, which: ClipSelector, nowMs: number): ClipRow[] {
  const back: ClipRow[] = [];
  for (const c of store.clips({ serial: which.serial, state: ['failed', 'verified', 'uploading'] })) {
    if (which.clipId && c.clipId !== which.clipId) continue;
    if (c.state === 'failed') {
      ledger.append('upload_retried', { serial: c.serial, clipId: c.clipId, details: { previousError: c.lastError ?? c.reason ?? '' } });
      back.push(store.transition(c.serial, c.clipId, 'verified', { attempts: 0, nextAttemptMs: 0, lastError: null }));
    } else if (c.nextAttemptMs > nowMs) {
      store.resetBackoff(c.serial, c.clipId);
      back.push({ ...c, nextAttemptMs: 0 });
    }
  }
  return back;
}

export class UploadQueue extends EventEmitter<UploadQueueEvents> {
  readonly #d: UploadQueueDeps;
  readonly #o: UploadQueueOptions;
  readonly #now: () => number;
  readonly #inFlight = new Map<string, { info: InFlight; abort: AbortController; done: Promise<void> }>();
  #hold: Hold | null = null;
  #probing = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #mismatches = new Map<string, number>(); // wrong bytes back in a row, per clip
  readonly #cooldown = new Map<string, number>(); // clips whose bookkeeping failed: not before this time

  constructor(deps: UploadQueueDeps) {
    super();
    this.#d = deps;
    this.#o = { ...UPLOAD_DEFAULTS, ...stripUndefined(deps.options ?? {}) };
    this.#now = deps.now ?? Date.now;
    this.#hold = operatorPause(deps.store) ?? null;
    if (this.#hold) deps.log.warn({ reason: this.#hold.reason, sinceMs: this.#hold.sinceMs }, 'uploads are PAUSED by an operator (kept from before this start); `dockside queue resume` starts them');
  }

  get options(): Readonly<UploadQueueOptions> {
    return this.#o;
  }

  /** Changes the number of uploads at once (a config reload); takes effect at the next start. */
  setConcurrency(n: number): void {
    this.#o.concurrency = n;
    this.kick();
  }

  /** New work may be waiting: fill the free upload slots. */
  kick(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = this.#now();
    if (this.#hold) {
      if (this.#hold.untilMs === null) return; // an operator pause
      if (now < this.#hold.untilMs) return this.#wakeAt(this.#hold.untilMs);
      if (this.#inFlight.size > 0 || this.#probing) return; // the probe is out
      // The probe is the first clip that is due: one backing off waits its turn like any other.
      const probe = this.#d.store.uploadOrder(now, 1, this.#coolingDown(now))[0];
      if (!probe) {
        if (this.pending() === 0) return this.#clearHold('nothing is waiting to be uploaded');
        return this.#wakeAt(this.#d.store.nextUploadAttemptMs(now) ?? now + this.#o.retryBaseMs);
      }
      this.#probing = true;
      this.#hold.probes++;
      this.#d.log.info({ hold: this.#hold.kind, probe: key(probe.serial, probe.clipId), probes: this.#hold.probes }, 'store held: trying one upload');
      this.#start(probe);
      return;
    }
    const free = this.#o.concurrency - this.#inFlight.size;
    if (free > 0) {
      for (const c of this.#d.store.uploadOrder(now, free, new Set([...this.#inFlight.keys(), ...this.#coolingDown(now)]))) this.#start(c);
    }
    const next = this.#d.store.nextUploadAttemptMs(now);
    if (next !== undefined) this.#wakeAt(next);
  }

  /** Stops starting uploads (those in flight finish) until resume(); survives a restart. */
  pause(reason = 'paused by an operator'): Hold {
    const hold = setOperatorPause(this.#d.store, reason, this.#now());
    this.#hold = hold;
    this.#d.log.warn({ reason }, 'upload queue paused');
    this.emit('changed');
    return hold;
  }

  /** Ends a pause or a hold at once (an operator who knows the store is back). */
  resume(): void {
    clearOperatorPause(this.#d.store);
    if (this.#hold) this.#clearHold('resumed by an operator');
    this.kick();
  }

  /**
   * Puts failed clips back in the queue (one, a camera's, or all) and lets clips
   * waiting out a backoff go now. Returns the clips put back.
   */
  retry(which: ClipSelector = {}): ClipRow[] {
    const back = retryClips(this.#d.store, this.#d.ledger, which, this.#now());
    if (this.#hold && this.#hold.kind !== 'operator') this.#hold.untilMs = this.#now();
    this.kick();
    this.emit('changed');
    return back;
  }

  status(): QueueStatus {
    const n = this.#d.store.countByState();
    return {
      hold: this.#hold ? { ...this.#hold } : null,
      concurrency: this.#o.concurrency,
      inFlight: [...this.#inFlight.values()].map((f) => ({ ...f.info })),
      waiting: n.verified + n.uploading - this.#inFlight.size,
      failed: n.failed,
    };
  }

  /** Clips of this camera (or of any) still to be uploaded. */
  pending(serial?: string): number {
    // a COUNT, not the rows: every waiting bay asks again on each change of the queue
    return this.#d.store.countPendingUploads(serial);
  }

  get busy(): boolean {
    return this.#inFlight.size > 0 || (this.pending() > 0 && this.#hold?.kind !== 'operator');
  }

  /**
   * Resolves when no clip of this camera (or of any) waits to be uploaded, or when an
   * operator paused the queue (nothing will move until they resume; the summary says so).
   */
  async whenDone(serial?: string): Promise<void> {
    while (!this.#closed && this.pending(serial) > 0 && this.#hold?.kind !== 'operator') {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.off('changed', wake);
          resolve();
        };
        this.on('changed', wake);
      });
    }
  }

  /** Stops: uploads in flight are aborted and stay `uploading`, to be redone at the next start. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const f of this.#inFlight.values()) f.abort.abort();
    await Promise.allSettled([...this.#inFlight.values()].map((f) => f.done));
    this.emit('changed');
  }

  /** (Re)writes a stored clip's sidecar with every custody event recorded for it so far. */
  async writeSidecar(serial: string, clipId: string, receipt?: { location: string; sha256: string; receipt: string }): Promise<void> {
    const { store, sink, dockKey } = this.#d;
    const c = store.clip(serial, clipId);
    const camera = store.camera(serial);
    if (!c?.manifest || !c.signature || !camera) throw new DockError('INTERNAL', `no manifest or camera for ${serial}/${clipId}`);
    const m = parseManifest(c.manifest);
    const r = receipt ?? (c.receipt ? { location: sink.location(serial, clipId, c.container), sha256: m.sha256, receipt: c.receipt } : null);
    const sidecar = buildSidecar({
      manifest: m,
      manifestBytes: c.manifest,
      signature: c.signature,
      devicePublicKeyRaw: camera.publicKey,
      dockPublicKey: dockKey.publicKey,
      dockFingerprint: dockKey.fingerprint,
      receipt: r,
      custodyLines: store.events(serial, clipId),
    });
    await sink.putSidecar(serial, clipId, sidecar);
  }

  #coolingDown(now: number): Set<string> {
    for (const [k, until] of this.#cooldown) if (until <= now) this.#cooldown.delete(k);
    return new Set(this.#cooldown.keys());
  }

  #wakeAt(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.kick(), Math.max(0, ms - this.#now()));
    this.#timer.unref();
  }

  #start(c: ClipRow): void {
    const k = key(c.serial, c.clipId);
    const abort = new AbortController();
    const info: InFlight = { serial: c.serial, clipId: c.clipId, size: c.size, bytes: 0, priority: c.priority, startedMs: this.#now() };
    const done = this.#upload(c, info, abort.signal)
      .catch((err: unknown) => {
        // The ledger or the state store failed: the clip stays uploading; wait before trying it again.
        this.#cooldown.set(k, this.#now() + this.#o.retryBaseMs);
        this.#d.log.error({ serial: c.serial, clipId: c.clipId, err: (err as Error).message }, 'upload bookkeeping failed; the clip is tried again');
      })
      .finally(() => {
        this.#inFlight.delete(k);
        this.#probing = false;
        this.emit('changed');
        this.kick();
      });
    this.#inFlight.set(k, { info, abort, done });
    this.emit('changed');
  }

  async #upload(c: ClipRow, info: InFlight, signal: AbortSignal): Promise<void> {
    const { store, ledger, spool, sink, log } = this.#d;
    if (c.state === 'verified') store.transition(c.serial, c.clipId, 'uploading');
    const where = { serial: c.serial, clipId: c.clipId };
    try {
      const m = parseManifest(c.manifest!);
      await this.#checkSpoolCopy(c, m.size);
      const receipt = await sink.put(
        { serial: c.serial, clipId: c.clipId, container: c.container, sourcePath: spool.clipPath(c.serial, c.clipId, c.container), sha256: m.sha256, size: m.size },
        { signal, onProgress: (bytes) => (info.bytes = bytes) },
      );
      if (receipt.sha256 !== m.sha256) throw new DockError('SINK_MISMATCH', `the store's receipt says ${receipt.sha256}, not the manifest's ${m.sha256}`, where);
      ledger.append('stored', { ...where, details: { sink: sink.name, location: receipt.location, sha256: receipt.sha256, bytes: receipt.bytes, receipt: receipt.receipt, existed: receipt.existed } });
      await this.writeSidecar(c.serial, c.clipId, { location: receipt.location, sha256: receipt.sha256, receipt: receipt.receipt });
      store.transition(c.serial, c.clipId, 'stored', { receipt: receipt.receipt, attempts: 0, lastError: null });
      log.info({ ...where, location: receipt.location, bytes: receipt.bytes, existed: receipt.existed }, 'clip stored');
      this.#mismatches.delete(key(c.serial, c.clipId));
      if (this.#hold && this.#hold.kind !== 'operator') this.#clearHold(`an upload went through after ${this.#hold.probes} probe(s)`);
      this.emit('stored', c.serial, c.clipId);
    } catch (err) {
      if (this.#closed && signal.aborted) return; // stays uploading; redone at the next start
      this.#failed(c, toDockError(err, 'SINK_WRITE', `uploading ${c.serial}/${c.clipId} failed`));
    }
  }

  #failed(c: ClipRow, e: DockError): void {
    const { store, ledger, log } = this.#d;
    const where = { serial: c.serial, clipId: c.clipId };
    const attempts = c.attempts + 1;
    const lastError = `${e.code}: ${e.message}`;
    let kind = e.code === 'INGEST_SPOOL_LOST' ? 'fail' : classify(e.code);
    const k = key(c.serial, c.clipId);
    if (kind === 'mismatch') {
      const inARow = (this.#mismatches.get(k) ?? 0) + 1;
      this.#mismatches.set(k, inARow);
      this.#alert({ kind: 'store-mismatch', message: `the store returned other bytes than were sent for ${k} (${inARow} time(s) in a row): ${e.message}`, ...where });
      kind = inARow >= this.#o.mismatchLimit ? 'fail' : 'retry';
    } else this.#mismatches.delete(k);
    // A probe the store answered (with anything but "down" or "full") shows it is back.
    if (kind !== 'hold' && kind !== 'full' && this.#hold && this.#hold.kind !== 'operator') this.#clearHold(`the store answered a probe (${e.code})`);
    if (kind === 'fail') {
      this.#mismatches.delete(k);
      const reason = `${e.code}: ${e.message}`;
      ledger.append('upload_failed', { ...where, details: { code: e.code, reason: e.message, attempts } });
      store.transition(c.serial, c.clipId, 'failed', { reason, lastError, attempts });
      this.#alert({ kind: 'clip-failed', message: `${key(c.serial, c.clipId)} was not stored and is kept spooled and on the camera: ${e.message}. Fix the cause, then run \`dockside queue retry ${c.clipId}\``, ...where });
      this.emit('failed', c.serial, c.clipId, e);
      return;
    }
    this.emit('retry', e.code);
    if (kind === 'hold' || kind === 'full') {
      this.#holdFor(kind === 'full' ? 'store-full' : 'store-unreachable', e);
      store.transition(c.serial, c.clipId, 'verified', { attempts, lastError, nextAttemptMs: 0 });
      return;
    }
    const delay = backoffMs(attempts, this.#o.retryBaseMs, this.#o.retryMaxMs);
    store.transition(c.serial, c.clipId, 'verified', { attempts, lastError, nextAttemptMs: this.#now() + delay });
    log.warn({ ...where, code: e.code, err: e.message, attempt: attempts, retryInMs: delay }, 'upload failed; will retry');
  }

  /** The verified spool copy must be there, whole and readable: it is the only thing uploaded. */
  async #checkSpoolCopy(c: ClipRow, size: number): Promise<void> {
    const path = this.#d.spool.clipPath(c.serial, c.clipId, c.container);
    try {
      await access(path, constants.R_OK);
      const st = await stat(path);
      if (st.size !== size) throw new Error(`it has ${st.size} bytes, not ${size}`);
    } catch (err) {
      throw new DockError('INGEST_SPOOL_LOST', `the verified spool copy of ${c.serial}/${c.clipId} (${path}) cannot be read: ${(err as Error).message}. Nothing was sent; the camera still holds the clip. Restore the file or re-ingest the clip`, { serial: c.serial, clipId: c.clipId, path });
    }
  }

  #holdFor(kind: 'store-full' | 'store-unreachable', e: DockError): void {
    const now = this.#now();
    const h = this.#hold?.kind === kind ? this.#hold : { kind, reason: e.message, sinceMs: now, untilMs: now, probes: 0 };
    if (this.#hold?.kind === 'operator') return; // an operator pause outranks it; the clip just waits
    const fresh = this.#hold !== h;
    h.reason = e.message;
    h.untilMs = now + (kind === 'store-full' ? this.#o.fullProbeMs : backoffMs(h.probes + 1, this.#o.retryBaseMs, this.#o.retryMaxMs));
    this.#hold = h;
    if (fresh) {
      const message =
        kind === 'store-full'
          ? `the evidence store is full: ${e.message}. Uploads are paused and tried again every ${Math.round(this.#o.fullProbeMs / 1000)} s; nothing is lost (clips stay spooled and on their cameras). Free space or raise the quota`
          : `the evidence store cannot be reached: ${e.message}. Uploads hold and are tried again with backoff; nothing is lost. Check the network and the store`;
      this.#alert({ kind, message });
    }
    this.emit('changed');
  }

  #clearHold(why: string): void {
    const h = this.#hold;
    if (!h) return;
    this.#hold = null;
    if (h.kind !== 'operator') this.#alert({ kind: 'resolved', message: `uploads resume (${h.kind} since ${new Date(h.sinceMs).toISOString()}): ${why}` });
    else this.#d.log.info({ why }, 'upload queue resumed');
    this.emit('changed');
    setImmediate(() => this.kick());
  }

  #alert(a: Alert): void {
    const level = a.kind === 'resolved' ? 'info' : 'error';
    this.#d.log[level]({ alert: a.kind, serial: a.serial, clipId: a.clipId }, a.message);
    this.emit('alert', a);
  }
}
