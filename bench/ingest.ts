// Target 3, ingest: eight simulated cameras with synthetic clips over loopback,
// unthrottled, through the whole daemon in this process (pull, spool with fsync,
// verify, custody, store in the dir: vault, release): aggregate MB/s ÷ the
// minimum durable work on the same bytes done by the machine's tools.
//
// Baseline: copy every clip file once, fsync the copies and their directory, and
// hash them with `openssl dgst -sha256`, one shell pipeline per core over its share
// (bench/openssl.ts copySyncHash), on the camera's own clip files before the daemon
// pulls them. The daemon does more than that by design (two durable copies, spool
// and vault; three hashes: while spooling, the verify re-read, the vault receipt;
// and the simulated cameras' side of the protocol runs in the same process), so a
// ratio of 0.5 would mean the dock costs about twice the bare minimum.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Daemon } from '../src/ingest/Daemon.js';
import { NO_FAULTS } from '../src/sim/faults.js';
import { copySyncHash } from './openssl.js';
import { row } from './row.js';
import type { BenchResult, Suite } from './types.js';

const MiB = 1024 * 1024;
const MB = 1e6;

export interface IngestRun {
  cameras: number;
  clips: number; // per camera
  clipBytes: number;
}

/** The cameras' clip files under a daemon's data dir (flash of the simulated fleet). */
function cameraClipFiles(dataDir: string): string[] {
  const sim = join(dataDir, 'sim');
  const out: string[] = [];
  for (const serial of readdirSync(sim)) {
    const clips = join(sim, serial, 'clips');
    try {
      for (const f of readdirSync(clips)) out.push(join(clips, f));
    } catch {
      // not a camera directory (ports/, say)
    }
  }
  return out;
}

export const suite: Suite = async ({ quick, log }) => {
  const run: IngestRun = { cameras: 8, clips: quick ? 1 : 2, clipBytes: (quick ? 24 : 64) * MiB };
  const total = run.cameras * run.clips * run.clipBytes;
  const procs = availableParallelism();
  const dataDir = mkdtempSync(join(tmpdir(), 'dockside-bench-ingest-'));
  const scratch = mkdtempSync(join(tmpdir(), 'dockside-bench-copy-'));
  let daemon: Daemon | undefined;
  try {
    log(`recording ${run.cameras} cameras × ${run.clips} synthetic clips × ${run.clipBytes / MiB} MiB`);
    daemon = await Daemon.open({
      dataDir,
      sim: { cameras: run.cameras, clips: run.clips, seed: 1, faults: NO_FAULTS, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: run.clipBytes } },
      metrics: 'off',
    });
    const files = cameraClipFiles(dataDir);
    if (files.length !== run.cameras * run.clips) throw new Error(`expected ${run.cameras * run.clips} clip files on the cameras, found ${files.length}`);
    let baseS = Infinity;
    for (let r = 0; r < 2; r++) {
      baseS = Math.min(baseS, await copySyncHash(files, join(scratch, String(r)), procs));
      rmSync(join(scratch, String(r)), { recursive: true, force: true });
    }
    log(`baseline (cp + sync + openssl dgst, ${procs} in parallel): ${(total / baseS / MB).toFixed(1)} MB/s`);

    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    await daemon.start();
    const summary = await daemon.whenIdle();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cores = (cpu.user + cpu.system) / 1e6 / seconds; // every thread of the process
    const elu = performance.eventLoopUtilization(elu0).utilization; // the main thread alone
    const rate = total / seconds / MB;
    log(`ingest: ${summary.stored} clips stored, ${summary.released} released in ${seconds.toFixed(1)} s = ${rate.toFixed(1)} MB/s; ${cores.toFixed(2)} cores busy, event loop ${(elu * 100).toFixed(0)}% busy`);
    const expected = run.cameras * run.clips;
    const complete = summary.stored === expected && summary.released === expected && summary.quarantined === 0 && summary.failed === 0;
    const r: BenchResult = row({
      name: 'ingest.8-cameras',
      value: rate,
      unit: 'MB/s',
      baseline: total / baseS / MB,
      target: '>= 0.5',
      note:
        `${run.cameras} cameras × ${run.clips} × ${run.clipBytes / MiB} MiB synthetic clips over loopback, unthrottled, daemon in-process, pull to released; ` +
        `baseline cp + fsync + openssl dgst -sha256 of the same files, ${procs} pipelines in parallel, best of 2; ratio = daemon/baseline; during the ingest the process kept ${cores.toFixed(2)} of ${availableParallelism()} cores busy and its event loop ${(elu * 100).toFixed(0)}% busy`,
    });
    if (!complete) {
      r.pass = false;
      r.note = `${r.note}; INCOMPLETE: ${summary.stored} stored, ${summary.released} released, ${summary.quarantined} quarantined, ${summary.failed} failed of ${expected}`;
    }
    return [r];
  } finally {
    await daemon?.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
};
