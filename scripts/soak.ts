// The long reliability runs (CI runs short versions of each in test/):
//
//   npm run soak -- --kills 200 --seed S    crash soak: `dockside run --sim` SIGKILLed at seeded
//                                           random moments, restarted, then run to idle and
//                                           checked; a fresh data dir (and fleet) every
//                                           --kills-per-run kills, with the faults, link
//                                           (loopback, pty) and sink (vault, S3) varied by run
//   npm run soak -- --matrix                every simulator fault alone and in pairs, over
//                                           loopback and the pty link, end to end
//
// Options: --kills N (default 200; with --matrix, 0 unless given), --seed S (default 1),
// --kills-per-run K (default 10), --link loopback|pty|mix (default mix), --sink dir|s3|mix
// (default mix), --keep (keep every data dir; failing ones are always kept), --quiet.
// Each run prints its seed, the kills it survived and its clips; a failing run is
// replayed with --seed <its seed> --kills <its kills> --kills-per-run <its kills>.
// Exit status 1 when any invariant broke.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CliChildren } from '../test/helpers/cliProcess.js';
import { crashSoakRun, describeOutcomes, describeRun, ensureBuilt, type SoakRunReport } from '../test/helpers/crashSoak.js';
import { matrix, runFaultCase, type FaultCaseResult } from '../test/helpers/faultMatrix.js';
import { prng } from '../test/helpers/crashHarness.js';
import { startS3Server, stopAll, type S3Server } from '../test/helpers/s3Server.js';

const { values: a } = parseArgs({
  options: {
    kills: { type: 'string' },
    seed: { type: 'string', default: '1' },
    'kills-per-run': { type: 'string', default: '10' },
    link: { type: 'string', default: 'mix' },
    sink: { type: 'string', default: 'mix' },
    matrix: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});

function int(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`soak: --${name} must be a whole number ≥ ${min}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}
function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) {
    console.error(`soak: --${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return v as T;
}

const totalKills = int('kills', a.kills ?? (a.matrix ? '0' : '200'), 0);
const seed = int('seed', a.seed, 1);
const perRun = int('kills-per-run', a['kills-per-run'], 1);
const linkMode = choice('link', a.link, ['loopback', 'pty', 'mix'] as const);
const sinkMode = choice('sink', a.sink, ['dir', 's3', 'mix'] as const);

// The faults a crash soak plants besides the kills: record-time ones (quarantines, gaps),
// link ones (retries, unplugs mid-pull), and none at all.
const SOAK_FAULTS = ['', 'corrupt=1,tamper=1', 'corrupt=1,tamper=1,gap=1', 'unplug=0.2', 'ber=1e-6,drop=0.005,stall=0.01', 'corrupt=1,unplug=0.15,stall=0.01'];

const kids = new CliChildren({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
let s3: S3Server | undefined;
const stopChildren = (): void => {
  void kids.killAll().then(() => stopAll()).finally(() => process.exit(130));
};
process.once('SIGINT', stopChildren);
process.once('SIGTERM', stopChildren);

const log = (line: string): void => void process.stdout.write(`${line}\n`);
let failed = 0;

async function crashSoak(): Promise<SoakRunReport[]> {
  ensureBuilt();
  const reports: SoakRunReport[] = [];
  const r = prng(seed);
  let survived = 0;
  let barren = 0; // runs in a row where no kill landed
  for (let i = 0; survived < totalKills; i++) {
    const runSeed = seed + i;
    const faults = SOAK_FAULTS[Math.floor(r() * SOAK_FAULTS.length)]!;
    const link = linkMode === 'mix' ? (i % 4 === 3 ? 'pty' : 'loopback') : linkMode;
    const useS3 = sinkMode === 's3' || (sinkMode === 'mix' && i % 3 === 2);
    if (useS3) s3 ??= await startS3Server({ buckets: ['evidence'] });
    const kills = Math.min(perRun, totalKills - survived);
    log(`run ${i + 1}: seed ${runSeed}, ${kills} kills, faults ${faults || 'none'}, link ${link}, sink ${useS3 ? 's3' : 'dir'}`);
    const report = await crashSoakRun({
      kids,
      seed: runSeed,
      kills,
      cameras: 3,
      clips: 8,
      clipBytes: 150_000,
      faults,
      link,
      sink: useS3 && s3 ? { kind: 's3', endpoint: s3.endpoint, bucket: 'evidence', prefix: `soak-${runSeed}` } : undefined,
      keep: a.keep,
      log: a.quiet ? undefined : log,
    });
    reports.push(report);
    survived += report.kills;
    log(`  => ${describeRun(report)}`);
    if (report.problems.length > 0) {
      failed++;
      for (const p of report.problems) log(`  ! ${p}`);
      if (a.quiet) log(describeOutcomes(report));
    }
    // A run whose dock finished before its kills landed still counts the ones that did;
    // runs in a row where none lands mean the kill points do not fit the work: stop.
    barren = report.kills === 0 ? barren + 1 : 0;
    if (barren === 3) {
      log('  three runs in a row with no kill landed: the kill points find no work; stopping');
      failed++;
      break;
    }
  }
  const clips = reports.reduce((n, x) => n + x.clips, 0);
  log(`crash soak: ${survived} kills survived over ${reports.length} runs (seeds ${seed}..${seed + reports.length - 1}), ${clips} clips, ${reports.filter((x) => x.problems.length > 0).length} runs with problems`);
  return reports;
}

async function faultMatrix(): Promise<FaultCaseResult[]> {
  const results: FaultCaseResult[] = [];
  const links = linkMode === 'mix' ? (['loopback', 'pty'] as const) : ([linkMode] as const);
  for (const c of matrix([...links], 'all')) {
    const r = await runFaultCase({ ...c, cameras: 3, clips: 5, clipBytes: 300_000, seed }, { keep: a.keep, limitMs: 180_000 });
    results.push(r);
    log(`${r.name.padEnd(28)} ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.problems.length === 0 ? 'ok' : 'PROBLEMS'}  ${JSON.stringify(r.evidence)}`);
    for (const p of r.problems) log(`  ! ${p}`);
    if (r.problems.length > 0) failed++;
  }
  log(`fault matrix: ${results.length} cases (${links.join(', ')}), ${results.filter((x) => x.problems.length > 0).length} with problems`);
  return results;
}

const t0 = performance.now();
try {
  if (a.matrix) await faultMatrix();
  if (totalKills > 0) await crashSoak();
} finally {
  await kids.killAll();
  await stopAll();
}
log(`soak: ${((performance.now() - t0) / 1000).toFixed(0)} s, ${failed === 0 ? 'every invariant held' : `${failed} FAILED`}`);
process.exitCode = failed === 0 ? 0 : 1;
