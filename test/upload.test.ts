// The upload queue end to end: the daemon with simulated cameras, an S3 sink, and a
// real S3-compatible server process (s3rver), with the fault proxy in front to make
// the store corrupt, fill up, refuse, or go away. Every claim of "stored" is checked
// against the objects themselves, fetched by plain HTTP.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { S3RVER_CREDS, useS3Rig } from './helpers/s3Rig.js';
import type { LedgerEntry } from '../src/custody/Ledger.js';
import type { Sidecar } from '../src/custody/sidecar.js';
import { Daemon, type DaemonOptions } from '../src/ingest/Daemon.js';
import type { Alert } from '../src/queue/UploadQueue.js';
import { parseFaults } from '../src/sim/faults.js';
import { Flash } from '../src/sim/Flash.js';
import { fetchObject } from './helpers/s3Server.js';

const BUCKET = 'evidence';
const CREDS = S3RVER_CREDS;
const rig = useS3Rig([BUCKET]);
const { dirs, daemons } = rig;

interface Dock {
  daemon: Daemon;
  dataDir: string;
  prefix: string;
  alerts: Alert[];
}

async function dock(o: { cameras?: number; clips?: number; seed?: number; via?: 'proxy' | 'direct'; upload?: DaemonOptions['upload']; start?: boolean } = {}): Promise<Dock> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dockside-upload-'));
  dirs.push(dataDir);
  const prefix = rig.prefix('dock');
  const daemon = await Daemon.open({
    dataDir,
    hashThreads: 1,
    sink: `s3://${BUCKET}/${prefix}`,
    s3: { endpoint: (o.via ?? 'proxy') === 'proxy' ? rig.proxy.endpoint : rig.server.endpoint, credentials: CREDS, maxAttempts: 2, multipartAboveBytes: 5 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024 },
    upload: { retryBaseMs: 50, retryMaxMs: 400, fullProbeMs: 200, ...o.upload },
    spool: { minFreeBytes: 1024 * 1024 },
    session: { timeoutMs: 200, retries: 8 },
    sim: { cameras: o.cameras ?? 2, clips: o.clips ?? 2, seed: o.seed ?? 11, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 300_000 }, faults: parseFaults('') },
  });
  daemons.push(daemon);
  const alerts: Alert[] = [];
  daemon.queue.on('alert', (a) => alerts.push(a));
  if (o.start !== false) await daemon.start();
  return { daemon, dataDir, prefix, alerts };
}

function ledger(dataDir: string): LedgerEntry[] {
  return readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LedgerEntry);
}

function cameras(dataDir: string): Flash[] {
  return readdirSync(join(dataDir, 'sim')).filter((d) => d.startsWith('BC4-')).map((d) => Flash.open(join(dataDir, 'sim', d)));
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function until(what: string, cond: () => boolean, limitMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every clip the dock knows is in the bucket, and hashes to its sidecar's manifest (plain HTTP GETs). */
async function expectAllInBucket(d: Dock, expected: number): Promise<void> {
  const clips = d.daemon.store.clips();
  expect(clips).toHaveLength(expected);
  for (const c of clips) {
    const sidecar = JSON.parse((await fetchObject(rig.server.endpoint, BUCKET, `${d.prefix}/${c.serial}/${c.clipId}.json`)).toString('utf8')) as Sidecar;
    const obj = await fetchObject(rig.server.endpoint, BUCKET, `${d.prefix}/${c.serial}/${c.clipId}.${c.container}`);
    expect(sha(obj)).toBe(sidecar.manifest.sha256);
    expect(sidecar.manifest.clipId).toBe(c.clipId);
  }
}

/** Exactly one `stored` line per clip: nothing duplicated however often it was tried. */
function expectStoredOnce(dataDir: string): void {
  const stored = ledger(dataDir).filter((e) => e.event === 'stored');
  const keys = stored.map((e) => `${e.serial}/${e.clipId}`);
  expect(new Set(keys).size).toBe(keys.length);
}

describe('upload queue against a real S3 server', () => {
  it('stores every clip in the bucket, releases each only after, and the objects hash to their sidecars', async () => {
    const d = await dock({ cameras: 2, clips: 3, via: 'direct' });
    const summary = await d.daemon.whenIdle();
    expect(summary).toMatchObject({ clips: 6, stored: 6, released: 6, failed: 0, quarantined: 0 });
    await expectAllInBucket(d, 6);
    expectStoredOnce(d.dataDir);
    for (const e of ledger(d.dataDir).filter((x) => x.event === 'stored')) expect(String(e.details['location'])).toBe(`s3://${BUCKET}/${d.prefix}/${e.serial}/${e.clipId}.bin`);
    // no spool copy is kept by default once released
    for (const c of d.daemon.store.clips()) expect(existsSync(d.daemon.spool.clipPath(c.serial, c.clipId, c.container))).toBe(false);
  });

  it('a store that corrupts objects: every clip is caught, alerted, failed after the mismatch limit, kept on the camera; a retry once it is fixed stores and releases them', async () => {
    rig.proxy.mode = 'corruptPut';
    const d = await dock({ cameras: 1, clips: 2 });
    const summary = await d.daemon.whenIdle();
    expect(summary).toMatchObject({ clips: 2, stored: 0, released: 0, failed: 2 });
    for (const f of summary.failures) expect(f.reason).toMatch(/^SINK_MISMATCH: .*reads back as/);
    expect(d.alerts.filter((a) => a.kind === 'store-mismatch')).toHaveLength(2 * d.daemon.queue.options.mismatchLimit);
    expect(d.alerts.filter((a) => a.kind === 'clip-failed')).toHaveLength(2);
    expect(cameras(d.dataDir)[0]!.clips()).toHaveLength(2); // still held: nothing released
    expect(cameras(d.dataDir)[0]!.releaseMarks()).toHaveLength(0);
    expect(ledger(d.dataDir).some((e) => e.event === 'stored' || e.event === 'released')).toBe(false);
    for (const c of d.daemon.store.clips()) expect(existsSync(d.daemon.spool.clipPath(c.serial, c.clipId, c.container))).toBe(true);

    rig.proxy.mode = 'pass';
    expect(d.daemon.queue.retry()).toHaveLength(2);
    expect(await d.daemon.whenIdle()).toMatchObject({ stored: 2, released: 2, failed: 0 });
    await expectAllInBucket(d, 2);
    expect(ledger(d.dataDir).filter((e) => e.event === 'upload_retried')).toHaveLength(2);
  });

  it('an outage: the store goes away, uploads hold (alerted) with nothing lost, and resume when it is back', async () => {
    await rig.server.stop();
    try {
      const d = await dock({ cameras: 2, clips: 2, via: 'direct' });
      await until('the unreachable alert', () => d.alerts.some((a) => a.kind === 'store-unreachable'));
      await until('every clip verified', () => d.daemon.store.clips({ state: ['verified', 'uploading'] }).length === 4);
      await new Promise((r) => setTimeout(r, 500)); // several probes fail
      expect(d.daemon.queue.status().hold?.kind).toBe('store-unreachable');
      expect(d.daemon.summary()).toMatchObject({ stored: 0, released: 0, failed: 0 });
      await rig.server.restart();
      expect(await d.daemon.whenIdle()).toMatchObject({ clips: 4, stored: 4, released: 4, failed: 0 });
      expect(d.alerts.at(-1)?.kind).toBe('resolved');
      expect(d.daemon.queue.status().hold).toBeNull();
      await expectAllInBucket(d, 4);
      expectStoredOnce(d.dataDir);
    } finally {
      if (!(await fetch(rig.server.endpoint).then(() => true, () => false))) await rig.server.restart();
    }
  });

  it('a full store pauses the queue (one probe at a time, alerted once) and it resumes by itself when space returns', async () => {
    rig.proxy.mode = { status: 507, code: 'InsufficientStorage' };
    const d = await dock({ cameras: 2, clips: 2 });
    await until('the full alert', () => d.alerts.some((a) => a.kind === 'store-full'));
    await new Promise((r) => setTimeout(r, 1200)); // several probes at fullProbeMs = 200
    expect(d.daemon.queue.status().hold?.kind).toBe('store-full');
    expect(d.alerts.filter((a) => a.kind === 'store-full')).toHaveLength(1);
    // while held, one upload at a time probes the store: never a burst of every clip.
    // (The first `concurrency` PUTs may overlap: they started before the first 507 came back.)
    const puts = rig.proxy.requests.filter((q) => q.method === 'PUT');
    const burst = d.daemon.queue.options.concurrency;
    expect(puts.length).toBeGreaterThan(burst + 1);
    for (let i = burst; i < puts.length; i++) {
      const before = Math.max(...puts.slice(0, i).map((q) => q.endMs ?? Infinity));
      expect(puts[i]!.startMs, `probe ${i} overlaps an earlier PUT`).toBeGreaterThanOrEqual(before);
    }
    expect(d.daemon.summary()).toMatchObject({ stored: 0, released: 0, failed: 0 });
    rig.proxy.mode = 'pass';
    expect(await d.daemon.whenIdle()).toMatchObject({ clips: 4, stored: 4, released: 4, failed: 0 });
    expect(d.alerts.at(-1)?.kind).toBe('resolved');
    await expectAllInBucket(d, 4);
  });

  it('a permanent refusal fails each clip with the reason, keeps it spooled and on the camera, and alerts', async () => {
    rig.proxy.mode = { status: 403, code: 'AccessDenied', message: 'Access Denied' };
    const d = await dock({ cameras: 1, clips: 3 });
    const summary = await d.daemon.whenIdle();
    expect(summary).toMatchObject({ clips: 3, stored: 0, released: 0, failed: 3 });
    for (const f of summary.failures) expect(f.reason).toMatch(/^SINK_REFUSED: .*AccessDenied.*queue retry/);
    expect(d.alerts.filter((a) => a.kind === 'clip-failed')).toHaveLength(3);
    // refused once, not hammered: one PUT per clip
    expect(rig.proxy.requests.filter((q) => q.method === 'PUT')).toHaveLength(3);
    expect(cameras(d.dataDir)[0]!.clips()).toHaveLength(3);
    expect(cameras(d.dataDir)[0]!.releaseMarks()).toHaveLength(0);
    expect(ledger(d.dataDir).filter((e) => e.event === 'upload_failed')).toHaveLength(3);
    for (const c of d.daemon.store.clips()) expect(existsSync(d.daemon.spool.clipPath(c.serial, c.clipId, c.container))).toBe(true);
  });

  it('priority clips go first, then the oldest recording, one at a time with concurrency 1', async () => {
    const d = await dock({ cameras: 3, clips: 4, seed: 7, upload: { concurrency: 1 }, start: false });
    d.daemon.queue.pause('the test holds uploads until every clip is verified');
    await d.daemon.start();
    await until('every clip verified', () => d.daemon.store.clips({ state: 'verified' }).length === 12);
    const order: string[] = [];
    d.daemon.queue.on('stored', (serial, clipId) => order.push(`${serial}/${clipId}`));
    d.daemon.queue.resume();
    await d.daemon.whenIdle();
    const clips = d.daemon.store.clips();
    const expected = [...clips].sort((a, b) => b.priority - a.priority || a.startMs - b.startMs).map((c) => `${c.serial}/${c.clipId}`);
    expect(clips.some((c) => c.priority > 0)).toBe(true); // this seed records a priority clip
    expect(order).toEqual(expected);
  });
});
