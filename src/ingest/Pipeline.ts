/**
 * After a clip is spooled: verify it, or quarantine it. Verified clips go on to the
 * upload queue (src/queue/UploadQueue.ts).
 *
 *   spooled ─► hash (worker) + checks ─► verified ─► (upload queue)
 *                                    └► quarantined (file to quarantine/, reason, ledger)
 *
 * Clips of one camera go strictly in seq order (the chain check depends on the one
 * before); cameras proceed in parallel. Every step writes its ledger event (durable)
 * and then commits its state, so a crash repeats at most the last step, and every
 * step is safe to repeat. A step that fails (a spool file that cannot be read) is
 * retried with backoff; nothing is dropped.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import type { Details, Ledger } from '../custody/Ledger.js';
import { parseManifest, verifyManifestSignature, type Manifest } from '../custody/manifest.js';
import { DockError, toDockError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ClipRow, Store } from '../queue/Store.js';
import { checkClip } from '../verify/checkClip.js';
import type { HashPool } from '../verify/HashPool.js';
import { mediaCheck } from '../verify/mediaCheck.js';
import type { Spool } from './Spool.js';

export interface PipelineDeps {
  store: Store;
  ledger: Ledger;
  spool: Spool;
  hashes: HashPool;
  log: Logger;
}

export interface PipelineEvents {
  verified: [serial: string, clipId: string];
  quarantined: [serial: string, clipId: string, reason: string];
  hashed: [serial: string, clipId: string, bytes: number, seconds: number]; // a spooled clip re-read and hashed
  stuck: [serial: string, error: DockError];
  idle: [];
}

const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 30_000;
/** After this many failures in a row verifying one camera's clips, it reports itself stuck. */
export const STUCK_AFTER = 3;

export class Pipeline extends EventEmitter<PipelineEvents> {
  readonly #d: PipelineDeps;
  readonly #running = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  readonly #failures = new Map<string, { count: number; error: DockError }>();
  #closed = false;

  constructor(deps: PipelineDeps) {
    super();
    this.#d = deps;
  }

  /** Work is waiting for this camera (or, without a serial, for every camera with clips in flight). */
  kick(serial?: string): void {
    if (this.#closed) return;
    const serials = serial ? [serial] : [...new Set(this.#d.store.clips({ state: 'spooled' }).map((c) => c.serial))];
    for (const s of serials) {
      if (this.#running.has(s)) {
        this.#again.add(s);
        continue;
      }
      const run = this.#drain(s).finally(() => {
        this.#running.delete(s);
        if (this.#again.delete(s)) this.kick(s);
        else if (this.#running.size === 0) this.emit('idle');
      });
      this.#running.set(s, run);
    }
  }

  get busy(): boolean {
    return this.#running.size > 0;
  }

  /** Cameras whose clips keep failing to verify (e.g. an unreadable spool), with the last error. */
  get stuck(): { serial: string; error: DockError }[] {
    return [...this.#failures].filter(([, f]) => f.count >= STUCK_AFTER).map(([serial, f]) => ({ serial, error: f.error }));
  }

  async whenIdle(serial?: string): Promise<void> {
    for (;;) {
      const runs = serial ? [this.#running.get(serial)].filter((r): r is Promise<void> => r !== undefined) : [...this.#running.values()];
      if (runs.length === 0) return;
      await Promise.allSettled(runs);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.whenIdle();
  }

  async #drain(serial: string): Promise<void> {
    for (;;) {
      if (this.#closed) return;
      const next = this.#d.store.clips({ serial, state: 'spooled' })[0];
      if (!next) return;
      try {
        if ((await this.#verify(next)) === 'deferred') return; // kicked again when the earlier clip is spooled
        this.#failures.delete(serial);
      } catch (err) {
        const error = toDockError(err, 'INTERNAL', `processing ${serial}/${next.clipId} failed`);
        const f = { count: (this.#failures.get(serial)?.count ?? 0) + 1, error };
        this.#failures.set(serial, f);
        const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (f.count - 1)) * (0.5 + Math.random() / 2);
        this.#d.log.error({ serial, clipId: next.clipId, state: next.state, code: error.code, err: error.message, attempt: f.count, retryInMs: Math.round(delay) }, 'clip step failed; will retry');
        if (f.count === STUCK_AFTER) this.emit('stuck', serial, error);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /**
   * The chain value this clip must continue: that of the clip with seq - 1 when the
   * dock has it with an authentic manifest; 'wait' while that clip is still on its way
   * (listed or being pulled: verifying now would report a gap that is not there);
   * otherwise the last chain value recorded for the camera (a clip missing from the
   * camera, or one whose manifest could not be trusted, shows as a gap, rightly).
   */
  #expectedPrevChain(c: ClipRow, seq: number, deviceKey: Buffer, lastChain: string | null): string | null | 'wait' {
    if (seq <= 1) return null; // checkClip takes null as the genesis value
    const prev = this.#d.store.clipBySeq(c.serial, seq - 1);
    if (!prev) return lastChain;
    if (prev.state === 'listed' || prev.state === 'pulling' || prev.state === 'spooled') return 'wait';
    if (prev.manifest && prev.signature && verifyManifestSignature(prev.manifest, prev.signature, deviceKey)) {
      try {
        return parseManifest(prev.manifest).chain;
      } catch {
        return lastChain;
      }
    }
    return lastChain;
  }

  async #verify(c: ClipRow): Promise<'deferred' | void> {
    const { store, ledger, spool, hashes, log } = this.#d;
    const camera = store.camera(c.serial);
    if (!camera) throw new DockError('INTERNAL', `clip ${c.serial}/${c.clipId} is spooled but its camera is not enrolled`);
    let expectedPrev: string | null = camera.lastChain;
    if (c.manifest) {
      try {
        const e = this.#expectedPrevChain(c, parseManifest(c.manifest).seq, camera.publicKey, camera.lastChain);
        if (e === 'wait') return 'deferred';
        expectedPrev = e;
      } catch {
        // an unparsable manifest: the checks below quarantine the clip
      }
    }
    const container = c.container;
    const path = spool.clipPath(c.serial, c.clipId, container);
    if (!(await stat(path).catch(() => undefined))) {
      // A crash after the file moved to quarantine but before the state was committed.
      const reasonFile = spool.quarantinePath(c.serial, c.clipId, container).replace(/\.[a-z0-9]+$/, '.reason.json');
      const q = JSON.parse(await readFile(reasonFile, 'utf8').catch(() => 'null')) as { check: string; reason: string; diskSha256: string } | null;
      if (!q) throw new DockError('INTERNAL', `spooled clip ${c.serial}/${c.clipId} is neither in the spool nor in quarantine; look for ${path}`);
      let m;
      try {
        m = c.manifest ? parseManifest(c.manifest) : undefined;
      } catch {
        m = undefined;
      }
      this.#commitQuarantine(c, camera.publicKey, q.check, q.reason, q.diskSha256, m, true);
      return;
    }
    const t0 = performance.now();
    const disk = await hashes.hash(path);
    this.emit('hashed', c.serial, c.clipId, disk.bytes, (performance.now() - t0) / 1000);
    const verdict = checkClip({
      serial: c.serial,
      clipId: c.clipId,
      size: c.size,
      manifestBytes: c.manifest,
      signature: c.signature,
      enrolledKey: camera.publicKey,
      diskSha256: disk.sha256,
      diskBytes: disk.bytes,
      receivedSha256: c.rxSha256 ?? '',
      lastChain: expectedPrev,
    });
    const where = { serial: c.serial, clipId: c.clipId };
    if (!verdict.ok) {
      const reason = `${verdict.check}: ${verdict.reason}`;
      await spool.quarantine(c.serial, c.clipId, container, { serial: c.serial, clipId: c.clipId, check: verdict.check, reason: verdict.reason, diskSha256: disk.sha256, timeMs: Date.now() });
      this.#commitQuarantine(c, camera.publicKey, verdict.check, verdict.reason, disk.sha256, verdict.manifest, false);
      log.warn({ ...where, reason }, 'clip quarantined: kept on the camera and in quarantine/, never released');
      return;
    }
    const m = verdict.manifest;
    if (verdict.chainGap) {
      ledger.append('chain_gap', { ...where, details: { expectedPrevChain: verdict.chainGap.expected, foundPrevChain: verdict.chainGap.found, seq: m.seq } });
      log.warn({ ...where, seq: m.seq, expected: verdict.chainGap.expected, found: verdict.chainGap.found }, 'CHAIN GAP: clips are missing from this camera before this one; ingesting what is there');
    }
    const media = await mediaCheck(path, m);
    if (!media.ok) {
      ledger.append('media_flagged', { ...where, details: { detail: media.detail } });
      log.warn({ ...where, detail: media.detail }, 'clip fails the media check; stored as recorded and flagged');
    }
    ledger.append('verified', { ...where, details: { sha256: m.sha256, size: m.size, signature: 'ok', deviceKey: createHash('sha256').update(camera.publicKey).digest('hex'), seq: m.seq, prevChain: m.prevChain, chain: m.chain, chainLink: verdict.chainGap ? 'gap' : 'continues', media: media.detail } });
    store.atomically(() => {
      store.advanceChain(c.serial, m.seq, m.chain);
      store.transition(c.serial, c.clipId, 'verified', media.ok ? {} : { flags: `media: ${media.detail}` });
    });
    this.emit('verified', c.serial, c.clipId);
  }

  /**
   * Records a quarantine (the file is already in quarantine/): the ledger line, then
   * the state, in one transaction with the chain: an authentic manifest (signature
   * good, only the bytes rotted) still moves the camera's chain on, so the next clip
   * does not show a false gap. Used by a fresh verdict and by a restart that finds the
   * move done but not committed.
   */
  #commitQuarantine(c: ClipRow, deviceKey: Buffer, check: string, reason: string, diskSha256: string, m: Manifest | undefined, resumed: boolean): void {
    const { store, ledger } = this.#d;
    const link: Details = m ? { seq: m.seq, prevChain: m.prevChain, chain: m.chain } : {};
    ledger.append('quarantined', { serial: c.serial, clipId: c.clipId, details: { check, reason, diskSha256, ...link, ...(resumed ? { resumed: true } : {}) } });
    const authentic = check === 'hash' && m !== undefined && c.manifest !== null && c.signature !== null && verifyManifestSignature(c.manifest, c.signature, deviceKey);
    store.atomically(() => {
      if (authentic && m) store.advanceChain(c.serial, m.seq, m.chain);
      store.transition(c.serial, c.clipId, 'quarantined', { reason: `${check}: ${reason}` });
    });
    this.emit('quarantined', c.serial, c.clipId, reason);
  }
}
