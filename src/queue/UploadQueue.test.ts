// The upload queue's own rules, with a real state store and ledger on disk and a
// scripted sink that answers each put as a test says (the real S3 server is in
// test/upload.test.ts): the concurrency limit, backoff, holds and their probes,
// the mismatch limit, an operator pause across restarts, and close mid-upload.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateDockKey, type DockKey } from '../custody/dockKey.js';
import { Ledger } from '../custody/Ledger.js';
import { sealManifest, signManifest } from '../custody/manifest.js';
import { DockError, type ErrorCode } from '../errors.js';
import { Spool } from '../ingest/Spool.js';
import { silentLogger } from '../log.js';
import { sampleManifest } from '../../test/helpers/manifests.js';
import type { PutOptions, Receipt, Sink, StoreObject } from './sinks/Sink.js';
import { Store } from './Store.js';
import { backoffMs, classify, UploadQueue, type UploadQueueOptions } from './UploadQueue.js';

const SERIAL = 'BC4-0000TEST';

/** A sink whose every put waits for the test to answer it. */
class ScriptedSink implements Sink {
  readonly name = 'scripted:';
  readonly calls: { obj: StoreObject; opts: PutOptions; answer: (code?: ErrorCode) => void }[] = [];
  maxInFlight = 0;
  #inFlight = 0;
  sidecars = 0;

  put(obj: StoreObject, opts: PutOptions = {}): Promise<Receipt> {
    this.#inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
    return new Promise((resolve, reject) => {
      const end = (): void => void this.#inFlight--;
      opts.signal?.addEventListener('abort', () => (end(), reject(new DockError('SINK_WRITE', 'aborted'))), { once: true });
      this.calls.push({
        obj,
        opts,
        answer: (code) => {
          end();
          if (code) reject(new DockError(code, `scripted ${code}`));
          else resolve({ location: `scripted:${obj.clipId}`, sha256: obj.sha256, bytes: obj.size, receipt: `scripted:${obj.sha256}`, existed: false });
        },
      });
    });
  }
  location(serial: string, clipId: string): string {
    return `scripted:${serial}/${clipId}`;
  }
  putSidecar(): Promise<void> {
    this.sidecars++;
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  /** Waits until `n` puts have been made in all. */
  async until(n: number): Promise<void> {
    for (let i = 0; this.calls.length < n; i++) {
      if (i > 500) throw new Error(`only ${this.calls.length} of ${n} puts came`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

let root: string;
let store: Store;
let ledger: Ledger;
let dockKey: DockKey;
let spool: Spool;
const queues: UploadQueue[] = [];
const deviceKey = generateKeyPairSync('ed25519');
const deviceRaw = deviceKey.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32);

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-uploadq-'));
  store = new Store(join(root, 'state.db'));
  dockKey = loadOrCreateDockKey(root);
  ledger = Ledger.open(join(root, 'ledger.jsonl'), dockKey.privateKey);
  ledger.onAppend = (e, line) => {
    if (e.serial && e.clipId) store.addEvent(e.serial, e.clipId, e.seq, line);
  };
  spool = new Spool(root);
  store.enroll(SERIAL, 'Sentinel BC4', deviceRaw);
});

afterEach(async () => {
  for (const q of queues.splice(0)) await q.close();
  await ledger.close();
  await store.close();
  rmSync(root, { recursive: true, force: true });
});

/** A verified clip, with its manifest in the store and its bytes in the spool. */
function verifiedClip(seq: number, over: { trigger?: 'button' | 'priority'; startMs?: number } = {}): string {
  const bytes = Buffer.from(`clip ${seq}`);
  const clipId = `20261130T0600${String(seq).padStart(2, '0')}Z-${String(seq).padStart(6, '0')}`;
  const { manifest, bytes: mBytes } = sealManifest(sampleManifest(bytes, { clipId, seq, trigger: over.trigger ?? 'button', startMs: over.startMs ?? 1_000_000 + seq }));
  store.addListed({ serial: SERIAL, clipId, seq, size: bytes.length, trigger: over.trigger === 'priority' ? 2 : 0, startMs: manifest.startMs });
  store.setManifest(SERIAL, clipId, mBytes, signManifest(mBytes, deviceKey.privateKey), manifest.sha256, 'mp4');
  for (const s of ['pulling', 'spooled', 'verified'] as const) store.transition(SERIAL, clipId, s);
  mkdirSync(join(root, 'spool', SERIAL), { recursive: true });
  writeFileSync(spool.clipPath(SERIAL, clipId, 'mp4'), bytes);
  return clipId;
}

function queue(sink: Sink, options: Partial<UploadQueueOptions> = {}, now?: () => number): UploadQueue {
  const q = new UploadQueue({ store, ledger, spool, sink, dockKey, log: silentLogger(), options: { retryBaseMs: 1000, retryMaxMs: 8000, fullProbeMs: 5000, ...options }, now });
  queues.push(q);
  return q;
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 10));

describe('upload queue', () => {
  it('never runs more uploads than its concurrency, and fills a freed slot at once', async () => {
    const sink = new ScriptedSink();
    for (let i = 1; i <= 5; i++) verifiedClip(i);
    const q = queue(sink, { concurrency: 2 });
    q.kick();
    await sink.until(2);
    await tick();
    expect(sink.calls).toHaveLength(2);
    sink.calls[0]!.answer();
    await sink.until(3);
    for (let i = 1; i < 5; i++) {
      sink.calls[i]!.answer();
      await sink.until(Math.min(5, i + 3));
    }
    await q.whenDone();
    expect(sink.maxInFlight).toBe(2);
    expect(store.countByState().stored).toBe(5);
    expect(sink.sidecars).toBe(5);
  });

  it('a passing failure requeues the clip with an exponential, jittered backoff, and it is tried again after it', async () => {
    let now = 100_000;
    const sink = new ScriptedSink();
    const id = verifiedClip(1);
    const q = queue(sink, {}, () => now);
    q.kick();
    await sink.until(1);
    sink.calls[0]!.answer('SINK_WRITE');
    await tick();
    const c = store.clip(SERIAL, id)!;
    expect(c).toMatchObject({ state: 'verified', attempts: 1, lastError: 'SINK_WRITE: scripted SINK_WRITE' });
    expect(c.nextAttemptMs - now).toBeGreaterThanOrEqual(500);
    expect(c.nextAttemptMs - now).toBeLessThanOrEqual(1000);
    q.kick();
    await tick();
    expect(sink.calls).toHaveLength(1); // still backing off
    now = c.nextAttemptMs;
    q.kick();
    await sink.until(2);
    sink.calls[1]!.answer();
    await q.whenDone();
    expect(store.clip(SERIAL, id)).toMatchObject({ state: 'stored', attempts: 0, lastError: null });
  });

  it('an unreachable store holds the whole queue: one probe at a time, then everything goes on the first success', async () => {
    let now = 0;
    const sink = new ScriptedSink();
    for (let i = 1; i <= 4; i++) verifiedClip(i);
    const q = queue(sink, { concurrency: 3 }, () => now);
    const alerts: string[] = [];
    q.on('alert', (a) => alerts.push(a.kind));
    q.kick();
    await sink.until(3);
    for (const c of sink.calls) c.answer('SINK_UNAVAILABLE');
    await tick();
    expect(q.status().hold).toMatchObject({ kind: 'store-unreachable', probes: 0 });
    expect(alerts).toEqual(['store-unreachable']);
    now = q.status().hold!.untilMs!;
    q.kick();
    await sink.until(4);
    await tick();
    expect(sink.calls).toHaveLength(4); // the probe, alone
    sink.calls[3]!.answer('SINK_UNAVAILABLE');
    await tick();
    expect(q.status().hold).toMatchObject({ probes: 1 });
    now = q.status().hold!.untilMs!;
    q.kick();
    await sink.until(5);
    sink.calls[4]!.answer(); // the store is back
    await sink.until(8);
    for (const c of sink.calls.slice(5)) c.answer();
    await q.whenDone();
    expect(q.status().hold).toBeNull();
    expect(alerts).toEqual(['store-unreachable', 'resolved']);
    expect(store.countByState()).toMatchObject({ stored: 4, failed: 0 });
  });

  it('a store that keeps returning other bytes fails the clip after the mismatch limit, with a ledger line', async () => {
    let now = 0;
    const sink = new ScriptedSink();
    const id = verifiedClip(1);
    const q = queue(sink, { mismatchLimit: 3 }, () => now);
    q.kick();
    for (let i = 0; i < 3; i++) {
      await sink.until(i + 1);
      sink.calls[i]!.answer('SINK_MISMATCH');
      await tick();
      now = Math.max(now, store.clip(SERIAL, id)!.nextAttemptMs);
      q.kick();
    }
    expect(store.clip(SERIAL, id)).toMatchObject({ state: 'failed', attempts: 3, reason: expect.stringMatching(/^SINK_MISMATCH/) });
    await tick();
    expect(sink.calls).toHaveLength(3);
  });

  it('an operator pause outlives the process: a new queue on the same store starts nothing until resumed', async () => {
    const sink = new ScriptedSink();
    verifiedClip(1);
    queue(sink).pause('store maintenance');
    const after = queue(sink);
    after.kick();
    await tick();
    expect(sink.calls).toHaveLength(0);
    expect(after.status().hold).toMatchObject({ kind: 'operator', reason: 'store maintenance' });
    after.resume();
    await sink.until(1);
    sink.calls[0]!.answer();
    await after.whenDone();
    expect(store.countByState().stored).toBe(1);
  });

  it('close() mid-upload leaves the clip uploading; the next start uploads it again and it is stored once', async () => {
    const sink = new ScriptedSink();
    const id = verifiedClip(1);
    const first = queue(sink);
    first.kick();
    await sink.until(1);
    await first.close();
    expect(sink.calls[0]!.opts.signal?.aborted).toBe(true);
    expect(store.clip(SERIAL, id)?.state).toBe('uploading');
    const second = queue(sink);
    second.kick();
    await sink.until(2);
    sink.calls[1]!.answer();
    await second.whenDone();
    expect(store.clip(SERIAL, id)?.state).toBe('stored');
    expect(readFileSync(ledger.path, 'utf8').split('\n').filter((l) => l.includes('"event":"stored"'))).toHaveLength(1);
  });

  it('priority clips go before older ordinary ones', async () => {
    const sink = new ScriptedSink();
    const old = verifiedClip(1, { startMs: 1000 });
    const prio = verifiedClip(2, { trigger: 'priority', startMs: 9000 });
    const q = queue(sink, { concurrency: 1 });
    q.kick();
    await sink.until(1);
    expect(sink.calls[0]!.obj.clipId).toBe(prio);
    sink.calls[0]!.answer();
    await sink.until(2);
    expect(sink.calls[1]!.obj.clipId).toBe(old);
    sink.calls[1]!.answer();
    await q.whenDone();
  });
});

describe('upload queue: what review found', () => {
  it('a probe the store answers with another error ends the hold; the failed clip backs off and the next one goes', async () => {
    let now = 0;
    const sink = new ScriptedSink();
    const a = verifiedClip(1);
    const b = verifiedClip(2);
    const q = queue(sink, { concurrency: 1 }, () => now);
    q.kick();
    await sink.until(1);
    sink.calls[0]!.answer('SINK_UNAVAILABLE');
    await tick();
    now = q.status().hold!.untilMs!;
    q.kick();
    await sink.until(2);
    sink.calls[1]!.answer('SINK_WRITE'); // the store is back, this clip just failed
    await sink.until(3);
    expect(q.status().hold).toBeNull();
    expect(sink.calls[2]!.obj.clipId).toBe(b); // not the same clip again at once
    sink.calls[2]!.answer();
    await tick();
    expect(store.clip(SERIAL, a)).toMatchObject({ state: 'verified', attempts: 2 });
    expect(store.clip(SERIAL, a)!.nextAttemptMs).toBeGreaterThan(now);
    expect(sink.calls).toHaveLength(3);
  });

  it('a verified clip whose spool copy is gone is failed with the reason, without calling the store', async () => {
    const sink = new ScriptedSink();
    const id = verifiedClip(1);
    rmSync(spool.clipPath(SERIAL, id, 'mp4'));
    const q = queue(sink);
    q.kick();
    await tick();
    await tick();
    expect(sink.calls).toHaveLength(0);
    expect(store.clip(SERIAL, id)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^INGEST_SPOOL_LOST: .*camera still holds the clip/) });
    expect(q.status().hold).toBeNull();
  });

  it('mismatches count in a row: other failures in between start the count again', async () => {
    let now = 0;
    const sink = new ScriptedSink();
    const id = verifiedClip(1);
    const q = queue(sink, { mismatchLimit: 2 }, () => now);
    const answers: ErrorCode[] = ['SINK_MISMATCH', 'SINK_WRITE', 'SINK_MISMATCH'];
    q.kick();
    for (let i = 0; i < answers.length; i++) {
      await sink.until(i + 1);
      sink.calls[i]!.answer(answers[i]);
      await tick();
      now = Math.max(now, store.clip(SERIAL, id)!.nextAttemptMs);
      q.kick();
    }
    expect(store.clip(SERIAL, id)?.state).not.toBe('failed');
    await sink.until(4);
    sink.calls[3]!.answer('SINK_MISMATCH');
    await tick();
    expect(store.clip(SERIAL, id)?.state).toBe('failed');
  });

  it('whenDone does not wait forever on an operator pause', async () => {
    verifiedClip(1);
    const q = queue(new ScriptedSink());
    q.pause();
    await q.whenDone();
    expect(q.pending()).toBe(1);
  });
});

describe('backoff and classification', () => {
  it('backoff doubles from the base, is capped, and jitters between half and all of it', () => {
    expect(backoffMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffMs(4, 1000, 60_000, () => 1)).toBe(8000);
    expect(backoffMs(20, 1000, 60_000, () => 1)).toBe(60_000);
    expect(backoffMs(20, 1000, 60_000, () => 0)).toBe(30_000);
  });

  it('maps each sink error to what the queue does', () => {
    expect(classify('SINK_UNAVAILABLE')).toBe('hold');
    expect(classify('SINK_FULL')).toBe('full');
    expect(classify('SINK_REFUSED')).toBe('fail');
    expect(classify('SINK_MISMATCH')).toBe('mismatch');
    expect(classify('SINK_WRITE')).toBe('retry');
    expect(classify('INTERNAL')).toBe('retry');
  });
});
