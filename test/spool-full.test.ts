// A spool disk that really fills up: DATA_DIR/spool is a size-limited tmpfs (8 MiB),
// and a ballast file takes most of it, so free space is short for real (statfs says
// so, and writes fail with ENOSPC), not because a threshold says it is. Pulls pause,
// nothing is pulled half into custody, nothing is stored or released; when the
// ballast goes, the pulls resume from their durable offsets and every clip is stored,
// hashing right (a resume that kept bytes written after the last fsync would hash
// wrong and be quarantined, which the checks count as a failure).
//
// Mounting needs root (CAP_SYS_ADMIN): where the mount is refused (an unprivileged
// container) these cases do not run and say why; test/ingest.test.ts covers the same
// pause with the spool's reserve threshold (spool.minFreeBytes) on any disk.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon } from '../src/ingest/Daemon.js';
import { parseFaults } from '../src/sim/faults.js';
import { checkDock } from './helpers/dockInvariants.js';

const SPOOL_BYTES = 8 * 1024 * 1024;
const CLIP_BYTES = 1_500_000;

/** Mounts a tmpfs of `bytes` at `dir`; the error when the machine refuses. */
function mountTmpfs(dir: string, bytes: number): Error | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

const probeDir = mkdtempSync(join(tmpdir(), 'dockside-mount-probe-'));
const refused = mountTmpfs(probeDir, 1024 * 1024);
if (!refused) execFileSync('umount', [probeDir]);
rmSync(probeDir, { recursive: true, force: true });
const why = refused ? ` (NOT RUN: mount -t tmpfs refused here: ${(refused as { stderr?: Buffer }).stderr?.toString().trim() || refused.message})` : '';

const mounts: string[] = [];
const dirs: string[] = [];
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.close();
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Fills the file system of `dir` until `leaveBytes` are free (a file of zeros, written for real: tmpfs has no holes to fake it with). */
function ballast(dir: string, leaveBytes: number, name = '.ballast'): string {
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (let want = freeBytes(dir) - leaveBytes; want > 0; want -= chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, want));
  } finally {
    closeSync(fd);
  }
  return path;
}

async function dockOnSmallSpool(o: { cameras: number; clips: number; leaveBytes: number; syncEveryBytes?: number; linkRateBytesPerS?: number }) {
  const dataDir = mkdtempSync(join(tmpdir(), 'dockside-spool-full-'));
  dirs.push(dataDir);
  const spool = join(dataDir, 'spool');
  mkdirSync(spool);
  const err = mountTmpfs(spool, SPOOL_BYTES);
  if (err) throw err;
  mounts.push(spool);
  const weight = ballast(spool, o.leaveBytes);
  const warnings: { msg: string; err?: string }[] = [];
  const log = pino({ level: 'warn' }, new Writable({ write: (line: Buffer, _enc, done) => (warnings.push(JSON.parse(line.toString()) as { msg: string; err?: string }), done()) }));
  const daemon = await Daemon.open({
    dataDir,
    hashThreads: 1,
    log,
    spool: { minFreeBytes: 64 * 1024, syncEveryBytes: o.syncEveryBytes ?? 4 * 1024 * 1024 },
    session: { timeoutMs: 200, retries: 8 },
    sim: { cameras: o.cameras, clips: o.clips, seed: 31, link: 'loopback', linkRateBytesPerS: o.linkRateBytesPerS, record: { mode: 'synthetic', syntheticBytes: CLIP_BYTES }, faults: parseFaults('') },
  });
  daemons.push(daemon);
  return { dataDir, spool, weight, daemon, warnings };
}

async function until(what: string, cond: () => boolean, limitMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe(`a spool on a real 8 MiB file system that fills up${why}`, () => {
  it.runIf(!refused)('too little space for the next clip: pulls wait before they start, nothing is stored or released; freeing the disk lets every clip through', async () => {
    const { dataDir, spool, weight, daemon, warnings } = await dockOnSmallSpool({ cameras: 2, clips: 2, leaveBytes: 1024 * 1024 });
    expect(freeBytes(spool)).toBeLessThan(CLIP_BYTES);
    await daemon.start();
    let idle = false;
    const whenIdle = daemon.whenIdle().then((s) => ((idle = true), s));
    await until('both pulls paused for space', () => warnings.filter((w) => w.msg === 'spool full: pull paused').length >= 2);
    await new Promise((r) => setTimeout(r, 2500)); // past a retry (Bay's spoolWaitMs, 2 s)
    expect(idle).toBe(false);
    expect(daemon.store.countByState()).toMatchObject({ listed: 4, pulling: 0, spooled: 0, stored: 0, released: 0 });
    expect(warnings.find((w) => w.msg === 'spool full: pull paused')?.err).toMatch(/bytes free, under the 65536 kept in reserve/);
    expect((await checkDock(dataDir, { cameras: 2, settled: false })).problems).toEqual([]);
    rmSync(weight); // space returns
    const summary = await whenIdle;
    expect(summary).toMatchObject({ clips: 4, stored: 4, released: 4, quarantined: 0, failed: 0 });
    await daemon.close();
    const check = await checkDock(dataDir, { cameras: 2 });
    expect(check.problems).toEqual([]);
    expect(check.stored).toBe(4);
  }, 60_000);

  it.runIf(!refused)('the disk fills in the middle of two pulls (ENOSPC): both pause at their last durable offset, nothing is released; freed, both resume and every clip hashes right', async () => {
    // Room for both clips when they start; then something else fills the disk under them
    // (a second ballast) and their writes hit ENOSPC before their next space check.
    const { dataDir, spool, weight, daemon, warnings } = await dockOnSmallSpool({ cameras: 2, clips: 2, leaveBytes: 2 * CLIP_BYTES + 512 * 1024, syncEveryBytes: 1024 * 1024, linkRateBytesPerS: 1_000_000 });
    await daemon.start();
    let idle = false;
    const whenIdle = daemon.whenIdle().then((s) => ((idle = true), s));
    await until('both pulls started', () => daemon.store.clips({ state: 'pulling' }).length === 2);
    const squeeze = ballast(spool, 128 * 1024, '.ballast-2');
    await until('a pull stopped by ENOSPC', () => warnings.some((w) => w.msg === 'spool full: pull paused' && /the spool disk filled up while pulling/.test(w.err ?? '')));
    expect(freeBytes(spool)).toBeLessThan(CLIP_BYTES);
    // Paused: no clip is through, none released; each pull's durable offset is short of its size.
    const pulling = daemon.store.clips({ state: 'pulling' });
    expect(pulling.length).toBeGreaterThanOrEqual(1);
    for (const c of pulling) expect(c.offset).toBeLessThan(c.size);
    expect(daemon.summary()).toMatchObject({ stored: 0, released: 0 });
    expect(idle).toBe(false);
    expect((await checkDock(dataDir, { cameras: 2, settled: false })).problems).toEqual([]);
    rmSync(squeeze);
    rmSync(weight);
    const summary = await whenIdle;
    expect(summary).toMatchObject({ clips: 4, stored: 4, released: 4, quarantined: 0, failed: 0 });
    await daemon.close();
    const check = await checkDock(dataDir, { cameras: 2 });
    expect(check.problems).toEqual([]);
    expect(existsSync(weight)).toBe(false);
  }, 60_000);

  it.runIf(!refused)('room for one clip at a time and four cameras docking at once: the pulls take turns instead of all stopping half-way, and every clip gets through without freeing anything', async () => {
    // Without reservations every pull passed its start check (each clip fits alone), all
    // four wrote until the disk was full, and none could finish to free its spool copy.
    const { dataDir, weight, daemon, warnings } = await dockOnSmallSpool({ cameras: 4, clips: 1, leaveBytes: CLIP_BYTES + 512 * 1024, syncEveryBytes: 256 * 1024 });
    await daemon.start();
    const summary = await daemon.whenIdle();
    expect(summary).toMatchObject({ clips: 4, stored: 4, released: 4, quarantined: 0, failed: 0 });
    // They waited for room before starting, never for a full disk in the middle.
    expect(warnings.filter((w) => w.msg === 'spool full: pull paused').length).toBeGreaterThan(0);
    expect(warnings.some((w) => /the spool disk filled up while pulling/.test(w.err ?? ''))).toBe(false);
    expect(existsSync(weight)).toBe(true);
    await daemon.close();
    rmSync(weight); // not dockside's: the dock check would count it as left in the spool
    const check = await checkDock(dataDir, { cameras: 4 });
    expect(check.problems).toEqual([]);
    expect(check.stored).toBe(4);
  }, 90_000);
});
