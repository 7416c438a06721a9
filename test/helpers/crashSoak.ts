// The crash soak: `dockside run --sim N` (the built program, a child process) over one
// data dir, SIGKILLed at seeded random moments and restarted, K times, then run to
// idle (`--until-idle`) and checked from disk (dockInvariants). After every kill the
// invariants that hold at every instant are checked too, so a release that came
// before its store is caught at the kill that exposed it, not only at the end.
//
//   seed ──► prng ──► kill point: a delay after 'docked', the next ledger event of a
//                     kind (+ a few ms, or + the state commit / sidecar write after it),
//                     or a file appearing (vault temp, quarantine)
//        ──► sim seed, so each seed is also a different fleet
//
// Used by test/crash-soak.test.ts (about 10 kills) and scripts/soak.ts (hundreds).
// A failing run is replayed exactly from its seed (the kill points, not the instants:
// those are the scheduler's).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { CustodyEvent } from '../../src/custody/Ledger.js';
import type { CliChildren } from './cliProcess.js';
import { prng, runAndKill, type KillOutcome, type KillPoint, type ThenStep } from './crashHarness.js';
import { checkDock, type DockCheck, type SinkUnderTest } from './dockInvariants.js';


const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

/** The soak runs the built program: dist/ is rebuilt when any source file is newer (others may be editing src/). */
export function ensureBuilt(): void {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(main) || statSync(main).mtimeMs < newestSource(join(ROOT, 'src'))) {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe', timeout: 170_000 });
  }
}

export interface SoakRunOptions {
  kids: CliChildren;
  seed: number; // the kill plan and the fleet (its serials and clips) come from it
  kills: number; // kills that must land before the final run
  cameras?: number; // default 3
  clips?: number; // per camera, default 4
  clipBytes?: number; // synthetic clips, default 200 000
  faults?: string; // --sim-faults, e.g. corrupt=1,tamper=1
  link?: 'loopback' | 'pty'; // default loopback
  sink?: SinkUnderTest; // default the data dir's vault
  /** Kill attempts allowed (a point may never come); default 3 × kills. */
  maxAttempts?: number;
  keep?: boolean; // keep the data dir (its path is in the report)
  log?: (line: string) => void;
}

export interface SoakRunReport {
  seed: number;
  dataDir: string;
  faults: string;
  link: string;
  sink: string;
  /** Kills that landed (the daemon died mid-work) and that it recovered from. */
  kills: number;
  attempts: number;
  clips: number;
  stored: number;
  quarantined: number;
  released: number;
  outcomes: KillOutcome[];
  /** Empty when every invariant held after every kill and at the end. */
  problems: string[];
  check: DockCheck | undefined;
  ms: number;
}

/** Clips by state in the state store (read-only), {} before the first run made one. */
export function clipStates(dataDir: string): Record<string, number> {
  try {
    const db = new Database(join(dataDir, 'state.db'), { readonly: true, fileMustExist: true });
    try {
      return Object.fromEntries((db.prepare('SELECT state, COUNT(*) n FROM clips GROUP BY state').all() as { state: string; n: number }[]).map((r) => [r.state, r.n]));
    } finally {
      db.close();
    }
  } catch {
    return {};
  }
}

/** A file matching `name` in DIR/<serial>/. */
function hasFile(dir: string, name: RegExp): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir).some((serial) => statSync(join(dir, serial)).isDirectory() && readdirSync(join(dir, serial)).some((f) => name.test(f)));
}

/**
 * Kill points drawn from the seed, each one that can still come: the events a kill may
 * wait for depend on the work left in the state store (no 'listed' once every clip is
 * listed, no 'pulled' once every clip is spooled, ...), and a delay is shorter when
 * little is left, so most kills land in work rather than after it.
 */
export function killPlanner(seed: number, faults: string, sink: 'dir' | 's3' = 'dir'): (dataDir: string) => KillPoint {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const planted = /corrupt|tamper/.test(faults);
  let first = true;
  return (dataDir) => {
    const n = clipStates(dataDir);
    const count = (...states: string[]): number => states.reduce((a, st) => a + (n[st] ?? 0), 0);
    const fresh = Object.keys(n).length === 0;
    if (first) {
      first = false;
      // The very first start enrolls the fleet: a kill between a state commit and its ledger line.
      if (fresh && r() < 0.3) return { kind: 'event', event: 'enrolled', then: ['state-commit'] };
    }
    const events: CustodyEvent[] = [];
    if (fresh) events.push('listed');
    if (fresh || count('listed', 'pulling') > 0) events.push('pulled', 'pulled');
    if (fresh || count('listed', 'pulling', 'spooled') > 0) {
      events.push('verified');
      if (planted) events.push('quarantined');
      if (/gap|tamper/.test(faults)) events.push('chain_gap');
      if (/unplug/.test(faults)) events.push('undocked');
    }
    if (fresh || count('listed', 'pulling', 'spooled', 'verified', 'uploading') > 0) events.push('stored', 'stored');
    if (fresh || count('listed', 'pulling', 'spooled', 'verified', 'uploading', 'stored') > 0) events.push('released', 'released');
    const left = fresh ? 100 : count('listed', 'pulling', 'spooled', 'verified', 'uploading', 'stored');
    const x = r();
    if (x < 0.3 || events.length === 0) return { kind: 'delay', ms: Math.floor(r() * Math.min(1200, 40 * left)) };
    if (x < 0.4) {
      // A file point fires on a file being there, so only while none is there yet.
      const files: ('vault-tmp' | 'quarantine')[] = [];
      // (An S3 sink writes no vault files: that point would never come.)
      if (sink === 'dir' && count('listed', 'pulling', 'spooled', 'verified', 'uploading') + (fresh ? 1 : 0) > 0 && !hasFile(join(dataDir, 'vault'), /^\..*\.tmp$/)) files.push('vault-tmp');
      if (planted && count('listed', 'pulling', 'spooled') + (fresh ? 1 : 0) > 0 && !hasFile(join(dataDir, 'quarantine'), /\.(bin|mp4)$/)) files.push('quarantine');
      if (files.length > 0) return { kind: 'file', where: pick(files) };
    }
    const event = pick(events);
    if (r() < 0.35) {
      // sidecar-write watches the vault's temporary sidecar: a dir sink's only.
      const sidecar: ThenStep[] = sink === 'dir' ? ['sidecar-write'] : [];
      const then: ThenStep[] =
        event === 'stored' ? [pick<ThenStep>(['state-commit', ...sidecar, { clipState: 'stored' }])] : event === 'released' ? [pick<ThenStep>([...sidecar, { clipState: 'released' }])] : ['state-commit'];
      return { kind: 'event', event, then };
    }
    return { kind: 'event', event, afterMs: Math.floor(r() * 25) };
  };
}

function sinkArgs(sink: SinkUnderTest | undefined): string[] {
  return sink?.kind === 's3' ? ['--sink', `s3://${sink.bucket}/${sink.prefix}`, '--s3-endpoint', sink.endpoint] : [];
}

function outcomeLine(o: KillOutcome, i: number): string {
  const how = o.hung ? 'HUNG (killed at the safety limit)' : o.landed ? 'killed' : `ended by itself, exit ${String(o.code ?? o.signal)}`;
  return `#${i + 1} ${o.point}: ${how} after ${o.events} ledger lines (last: ${o.lastEvent}); left ${o.state}`;
}

/** One data dir: kills until `kills` landed (or the dock finished), then the run to idle and every check. */
export async function crashSoakRun(o: SoakRunOptions): Promise<SoakRunReport> {
  const t0 = performance.now();
  const faults = o.faults ?? '';
  const dataDir = mkdtempSync(join(tmpdir(), `dockside-soak-${o.seed}-`));
  const cameras = o.cameras ?? 3;
  const args = [
    'run',
    '--sim', String(cameras),
    '--sim-clips', String(o.clips ?? 4),
    '--sim-seed', String(o.seed),
    '--sim-mode', 'synthetic',
    '--sim-clip-bytes', String(o.clipBytes ?? 200_000),
    '--sim-link', o.link ?? 'loopback',
    ...(faults ? ['--sim-faults', faults] : []),
    ...sinkArgs(o.sink),
    '--data-dir', dataDir,
    '--until-idle',
    '--json',
  ];
  const next = killPlanner(o.seed, faults, o.sink?.kind ?? 'dir');
  const outcomes: KillOutcome[] = [];
  const problems: string[] = [];
  const maxAttempts = o.maxAttempts ?? 3 * o.kills;
  let landed = 0;
  let check: DockCheck | undefined;
  try {
    while (landed < o.kills && outcomes.length < maxAttempts) {
      const point = next(dataDir);
      const out = await runAndKill(o.kids, args, dataDir, point, 30_000);
      outcomes.push(out);
      o.log?.(`  ${outcomeLine(out, outcomes.length - 1)}`);
      if (out.landed) landed++;
      if (out.hung) problems.push(`kill #${outcomes.length} (${out.point}): the run neither reached idle nor failed within 30 s\n${out.stderrTail}`);
      else if (!out.landed && out.code !== 0) problems.push(`kill #${outcomes.length} (${out.point}): the run failed by itself (exit ${String(out.code ?? out.signal)}):\n${out.stderrTail}`);
      // What holds at every instant holds right after this kill.
      const now = await checkDock(dataDir, { cameras, sink: o.sink, settled: false });
      for (const p of now.problems) problems.push(`after kill #${outcomes.length} (${out.point}): ${p}`);
      if (!out.landed && out.code === 0) break; // it reached idle before the point came: nothing left to interrupt
    }
    const final = await o.kids.run(args, { limitMs: 90_000 });
    if (final.code !== 0) problems.push(`final run: exit ${String(final.code ?? final.signal)}${final.killed ? ' (hung: killed at the safety limit)' : ''}\n${final.stderr.slice(-3000)}`);
    check = await checkDock(dataDir, { cameras, sink: o.sink });
    problems.push(...check.problems.map((p) => `at the end: ${p}`));
    // The program's own summary agrees with what is on disk.
    try {
      const summary = JSON.parse(final.lines.at(-1) ?? 'null') as { clips: number; stored: number; released: number; quarantined: number; failed: number };
      const mine = { clips: check.clips, stored: check.stored, released: check.released, quarantined: check.quarantined, failed: 0 };
      const theirs = { clips: summary.clips, stored: summary.stored, released: summary.released, quarantined: summary.quarantined, failed: summary.failed };
      if (JSON.stringify(mine) !== JSON.stringify(theirs)) problems.push(`the final summary ${JSON.stringify(theirs)} does not match the disk ${JSON.stringify(mine)}`);
    } catch {
      problems.push(`the final run printed no JSON summary:\n${final.stdout.slice(-2000)}`);
    }
    // And the custodian's own tool says so (for a bucket, checkDock verified a copy of it).
    if (o.sink?.kind !== 's3') {
      const v = await o.kids.run(['custody', 'verify', '--data-dir', dataDir, '--json'], { limitMs: 60_000 });
      if (v.code !== 0) problems.push(`dockside custody verify: exit ${String(v.code)}\n${v.stdout.slice(-3000)}`);
    }
  } catch (err) {
    problems.push(`soak run: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await o.kids.killTransient();
    if (!o.keep && problems.length === 0) rmSync(dataDir, { recursive: true, force: true });
  }
  return {
    seed: o.seed,
    dataDir,
    faults: faults || 'none',
    link: o.link ?? 'loopback',
    sink: o.sink?.kind === 's3' ? `s3://${o.sink.bucket}/${o.sink.prefix}` : 'dir',
    kills: landed,
    attempts: outcomes.length,
    clips: check?.clips ?? 0,
    stored: check?.stored ?? 0,
    quarantined: check?.quarantined ?? 0,
    released: check?.released ?? 0,
    outcomes,
    problems,
    check,
    ms: Math.round(performance.now() - t0),
  };
}

export function describeRun(r: SoakRunReport): string {
  return `seed ${r.seed}: ${r.kills} kills survived (${r.attempts} tried), ${r.clips} clips: ${r.stored} stored, ${r.released} released, ${r.quarantined} quarantined; faults ${r.faults}, link ${r.link}, sink ${r.sink}; ${(r.ms / 1000).toFixed(1)} s; ${r.problems.length === 0 ? 'every invariant holds' : `${r.problems.length} PROBLEMS (data dir kept: ${r.dataDir})`}`;
}

export function describeOutcomes(r: SoakRunReport): string {
  return r.outcomes.map(outcomeLine).join('\n');
}
