// The simulator's faults alone and in pairs, each case an in-process daemon over
// simulated cameras (loopback, or a socat pty pair with the real serialport bindings)
// run to idle; then the dock is checked from disk (dockInvariants), and the case
// shows that the faults it names really fired (bits flipped, frames lost, requests
// sent again, unplugs, quarantines, gaps, refusals), so a fault that silently stopped
// working cannot make a case pass.
//
// test/fault-matrix.test.ts runs the short matrix in CI; `npm run soak -- --matrix`
// runs the full one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Daemon, type DaemonOptions, type Summary } from '../../src/ingest/Daemon.js';
import { parseFaults, type Faults } from '../../src/sim/faults.js';
import type { SimLinkKind } from '../../src/sim/SimFleet.js';
import { checkDock, type DockCheck } from './dockInvariants.js';
import { readCameras, readLedger } from './crashHarness.js';

/** Modest rates: enough to fire many times on a few small clips, few enough to finish fast. */
export const FAULT_SPECS: Record<keyof Faults, string> = {
  ber: 'ber=1e-5',
  drop: 'drop=0.04',
  stall: 'stall=0.04',
  unplug: 'unplug=0.4',
  corrupt: 'corrupt=1',
  tamper: 'tamper=1',
  gap: 'gap=1',
  rogue: 'rogue',
  slow: 'slow=4',
};
export const FAULT_NAMES = Object.keys(FAULT_SPECS) as (keyof Faults)[];

export interface FaultCase {
  faults: (keyof Faults)[]; // one or two
  link: SimLinkKind;
  cameras?: number; // default 2
  clips?: number; // per camera, default 3
  clipBytes?: number; // default 100 000
  seed?: number; // default 5
}

export interface FaultCaseResult {
  name: string;
  spec: string;
  dataDir: string; // removed afterwards unless the case failed (or `keep`)
  ms: number;
  summary: Summary | undefined;
  check: DockCheck | undefined;
  /** Every broken invariant, and every named fault that left no trace. */
  problems: string[];
  /** What each fault left behind, for the report. */
  evidence: Record<string, number>;
}

export function caseName(c: FaultCase): string {
  return `${c.faults.join('+')} over ${c.link}`;
}

/** Each fault alone, then every pair, over the given links. */
export function matrix(links: SimLinkKind[], pairs: 'all' | 'none' | [keyof Faults, keyof Faults][] = 'all'): FaultCase[] {
  const out: FaultCase[] = [];
  for (const link of links) {
    for (const f of FAULT_NAMES) out.push({ faults: [f], link });
    const list = pairs === 'all' ? FAULT_NAMES.flatMap((a, i) => FAULT_NAMES.slice(i + 1).map((b) => [a, b] as [keyof Faults, keyof Faults])) : pairs === 'none' ? [] : pairs;
    for (const p of list) out.push({ faults: p, link });
  }
  return out;
}

function sessionFor(c: FaultCase): DaemonOptions['session'] {
  // A stalled or lost answer is retried after timeoutMs of silence; slow=4 stretches every latency.
  // Frames of at most 4 KiB (the protocol's smallest): many frames per clip, so a
  // per-frame fault at a modest rate is all but sure to fire in every case.
  return { timeoutMs: c.faults.includes('slow') ? 400 : 200, retries: 8, maxPayload: 4096 };
}

/** Runs one case to idle in a fresh data dir (removed afterwards unless `keep`). */
export async function runFaultCase(c: FaultCase, opts: { keep?: boolean; limitMs?: number } = {}): Promise<FaultCaseResult> {
  const spec = c.faults.map((f) => FAULT_SPECS[f]).join(',');
  const name = caseName(c);
  const dataDir = mkdtempSync(join(tmpdir(), `dockside-matrix-${c.faults.join('-')}-`));
  const cameras = c.cameras ?? 2;
  const clips = c.clips ?? 3;
  const t0 = performance.now();
  const evidence: Record<string, number> = { bitsFlipped: 0, framesDropped: 0, resentReads: 0 };
  const problems: string[] = [];
  let summary: Summary | undefined;
  let check: DockCheck | undefined;
  let daemon: Daemon | undefined;
  try {
    daemon = await Daemon.open({
      dataDir,
      hashThreads: 1,
      spool: { minFreeBytes: 1024 * 1024 },
      session: sessionFor(c),
      // The link is modelled (a rate and a latency), so slow=4 has something to stretch.
      sim: { cameras, clips, seed: c.seed ?? 5, link: c.link, record: { mode: 'synthetic', syntheticBytes: c.clipBytes ?? 100_000 }, faults: parseFaults(spec), linkRateBytesPerS: 20_000_000, latencyMs: 1 },
    });
    for (const cam of daemon.simFleet!.cameras) {
      // Link stats are per docking: add each one up as the camera leaves.
      const add = (): void => {
        evidence['bitsFlipped']! += cam.linkStats?.bitsFlipped ?? 0;
        evidence['framesDropped']! += cam.linkStats?.framesDropped ?? 0;
      };
      cam.on('undocked', add);
      const reads = new Set<string>();
      cam.on('request', (r) => {
        if (r.name !== 'READ') return;
        const q = r.request as { clipId: string; offset: number };
        const k = `${q.clipId}@${q.offset}`;
        if (reads.has(k)) evidence['resentReads']!++;
        reads.add(k);
      });
    }
    await daemon.start();
    let timer: NodeJS.Timeout | undefined;
    const d = daemon;
    const limit = new Promise<never>((_, reject) => {
      // What the dock was doing when it did not get to idle, for the report.
      const stuck = (): string =>
        JSON.stringify({
          bays: d.bays.map((b) => ({ path: b.candidate.path, serial: b.serial, state: b.state, error: b.error?.message })),
          docked: d.simFleet?.dockedCameras().map((x) => x.path),
          clips: d.store.countByState(),
          queue: d.queue.status().hold,
          pipelineBusy: d.pipeline.busy,
        });
      timer = setTimeout(() => reject(new Error(`${name}: not idle after ${opts.limitMs ?? 60_000} ms; the dock: ${stuck()}; data dir ${dataDir}`)), opts.limitMs ?? 60_000);
    });
    try {
      summary = await Promise.race([daemon.whenIdle(), limit]);
    } finally {
      clearTimeout(timer);
    }
    for (const cam of daemon.simFleet!.cameras) {
      if (cam.docked) {
        evidence['bitsFlipped']! += cam.linkStats?.bitsFlipped ?? 0;
        evidence['framesDropped']! += cam.linkStats?.framesDropped ?? 0;
      }
    }
    await daemon.close();
    daemon = undefined;
    const rogue = c.faults.includes('rogue');
    check = await checkDock(dataDir, { cameras, rogue });
    problems.push(...check.problems);
    const ledger = readLedger(dataDir);
    const cams = readCameras(dataDir);
    evidence['unplugs'] = cams.reduce((n, cam) => n + cam.log.filter((r) => r.message.startsWith('FAULT unplug')).length, 0);
    evidence['quarantined'] = check.quarantined;
    evidence['chainGaps'] = check.gapsRecorded;
    evidence['refused'] = ledger.filter((e) => e.event === 'refused').length;
    evidence['stored'] = check.stored;
    // The summary agrees with the disk.
    const planted = cams.reduce((n, cam) => n + cam.planted.corrupt.length + cam.planted.tamper.length, 0);
    const recorded = cams.reduce((n, cam) => n + cam.manifests.length, 0);
    if (rogue) {
      if (summary.clips !== 0 || summary.stored !== 0) problems.push(`summary: a rogue fleet, but ${summary.clips} clips listed and ${summary.stored} stored`);
    } else if (summary.clips !== recorded || summary.stored !== recorded - planted || summary.released !== recorded - planted || summary.quarantined !== planted || summary.failed !== 0) {
      problems.push(`summary ${JSON.stringify({ clips: summary.clips, stored: summary.stored, released: summary.released, quarantined: summary.quarantined, failed: summary.failed })}; the cameras recorded ${recorded} clips with ${planted} planted to fail`);
    }
    // Each fault named left its mark (a fault that never fires proves nothing).
    const fired: Record<keyof Faults, [boolean, string]> = {
      ber: [evidence['bitsFlipped']! > 0, 'no bit was flipped on the link'],
      drop: [evidence['framesDropped']! > 0, 'no frame was dropped'],
      stall: [evidence['resentReads']! > 0, 'no READ was sent twice (no stall was noticed and retried)'],
      unplug: [evidence['unplugs']! > 0, 'no camera was unplugged'],
      corrupt: [rogue || evidence['quarantined']! >= cameras, `${evidence['quarantined']} clips quarantined, expected at least one per camera`],
      tamper: [rogue || evidence['quarantined']! >= cameras, `${evidence['quarantined']} clips quarantined, expected at least one per camera`],
      gap: [rogue || cams.every((cam) => cam.planted.gap.length === 1 && !cam.manifests.includes(cam.planted.gap[0]!)), 'no clip was removed from a camera chain'],
      rogue: [evidence['refused']! >= cameras, `${evidence['refused']} cameras refused, expected ${cameras}`],
      slow: [true, ''], // slow changes only timing, which the suite does not assert
    };
    // A rogue camera is refused at AUTH, before any clip moves: link faults may not fire.
    for (const f of c.faults) if (!(rogue && ['ber', 'drop', 'stall', 'unplug'].includes(f)) && !fired[f][0]) problems.push(`${f}: ${fired[f][1]}`);
  } catch (err) {
    problems.push(`${name}: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await daemon?.close().catch(() => undefined);
    if (!opts.keep && problems.length === 0) rmSync(dataDir, { recursive: true, force: true }); // a failing case's is kept
  }
  return { name, spec, dataDir, ms: Math.round(performance.now() - t0), summary, check, problems, evidence };
}
