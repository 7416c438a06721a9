// Invariant 5, against the real daemon: a crash at any instant loses nothing and
// duplicates nothing, and a restart resumes from durable state. `dockside run` runs as
// a child process; it is SIGKILLed (a crash, as far as the process can tell) at points
// chosen to land in each phase of ingest, restarted with the same arguments, and
// finally run to idle; then the dock's vault, ledger and spool and every camera's
// flash and log are checked against each other.
//
// Replay or vary the random delays with DOCKSIDE_CRASH_SEED=<n> (default 1); keep the
// data directories for a look afterwards with DOCKSIDE_CRASH_KEEP=1.
// (`npm test` builds dist/ first; this file also rebuilds it when src/ is newer.)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { verifyCustody } from '../src/custody/verifyCustody.js';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Sidecar } from '../src/custody/sidecar.js';
import { CliChildren } from './helpers/cliProcess.js';
import { fetchObject, s3Client, startS3Server, stopAll } from './helpers/s3Server.js';
import { checkVault, prng, readCameras, readLedger, releaseProblems, runAndKill, type KillOutcome, type KillPoint } from './helpers/crashHarness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SEED = Number(process.env['DOCKSIDE_CRASH_SEED'] ?? '1');
// Credentials for the S3 scenario's s3rver, in the standard AWS environment as on a dock.
const kids = new CliChildren({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
const dirs: string[] = [];

/** dist/ is rebuilt when any source file is newer than it (others may be editing src/). */
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

beforeAll(() => {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(main) || statSync(main).mtimeMs < newestSource(join(ROOT, 'src'))) {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe', timeout: 170_000 });
  }
}, 180_000);

afterEach(async () => {
  await kids.killTransient(); // every child, killed or not, whatever the test did
  for (const d of dirs.splice(0)) if (!process.env['DOCKSIDE_CRASH_KEEP']) rmSync(d, { recursive: true, force: true });
});
afterAll(() => kids.killAll());

function runArgs(dataDir: string, faults?: string, extra: string[] = []): string[] {
  return ['run', '--sim', '3', '--sim-clips', '4', '--sim-seed', '7', '--sim-mode', 'synthetic', '--sim-clip-bytes', '3000000', ...(faults ? ['--sim-faults', faults] : []), '--data-dir', dataDir, ...extra, '--until-idle', '--json'];
}

function history(outcomes: KillOutcome[]): string {
  return outcomes
    .map((o, i) => `#${i + 1} ${o.point}: ${o.hung ? 'HUNG (killed at the safety limit)' : o.landed ? 'killed' : `not killed, exited ${String(o.code ?? o.signal)}`} after ${o.events} ledger lines (last: ${o.lastEvent}); left ${o.state}${!o.landed && o.code !== 0 ? `\n   stderr: ${o.stderrTail}` : ''}`)
    .join('\n');
}

interface Scenario {
  faults?: string;
  extra?: string[]; // more `run` flags (e.g. an S3 sink)
  plan: KillPoint[];
}

/** Kills the daemon at every point of the plan in turn, then runs it to idle. */
async function crashAndRecover({ faults, extra, plan }: Scenario) {
  const dataDir = mkdtempSync(join(tmpdir(), 'dockside-crash-'));
  dirs.push(dataDir);
  const args = runArgs(dataDir, faults, extra);
  const outcomes: KillOutcome[] = [];
  for (const point of plan) {
    const o = await runAndKill(kids, args, dataDir, point);
    outcomes.push(o);
    // What holds at every instant, so also right after this kill.
    expect(releaseProblems(dataDir), `after kill ${outcomes.length} (${o.point}):\n${history(outcomes)}`).toEqual([]);
  }
  expect(outcomes.filter((o) => o.hung), `a run that neither reached idle nor failed:\n${history(outcomes)}`).toEqual([]);
  const final = await kids.run(args, { limitMs: 40_000 });
  const said = `kill history (seed ${SEED}):\n${history(outcomes)}\nfinal run: exit ${String(final.code ?? final.signal)}${final.killed ? ' (hung: killed at the safety limit)' : ''}\nstdout:\n${final.stdout}\nstderr:\n${final.stderr.slice(-4000)}`;
  const landed = outcomes.filter((o) => o.landed).length;
  // Printed whatever follows, so the checks below can name what broke without repeating it.
  console.info(`crash test (seed ${SEED}${faults ? `, faults ${faults}` : ''}, data dir ${dataDir}): ${landed} of ${plan.length} kill points landed; final run exit ${String(final.code ?? final.signal)}\n${history(outcomes)}`);
  expect(final.code, said).toBe(0);
  const summary = JSON.parse(final.lines[final.lines.length - 1] ?? 'null') as Record<string, number>;
  return { dataDir, summary, outcomes, landed, said };
}

/** Checks shared by both scenarios, once the last run reached idle (soft: every broken invariant is reported). */
async function expectRecovered(dataDir: string, expected: { stored: number; quarantined: string[] }) {
  // The vault: one object per stored clip, each hashing to its sidecar's manifest; no temp files.
  const vault = checkVault(dataDir);
  expect.soft(vault.problems).toEqual([]);
  expect.soft(vault.objects).toHaveLength(expected.stored);
  expect.soft(new Set(vault.objects).size).toBe(expected.stored);
  expect.soft(vault.sidecarsWithoutRelease, `sidecars that do not carry their clip's 'released' event`).toEqual([]);
  // The cameras: every clip not quarantined was released once, after it was stored.
  expect.soft(releaseProblems(dataDir)).toEqual([]);
  const cams = readCameras(dataDir);
  expect.soft(cams).toHaveLength(3);
  const ledger = readLedger(dataDir);
  for (const cam of cams) {
    const keep = cam.manifests.filter((id) => expected.quarantined.includes(`${cam.serial}/${id}`));
    expect.soft(cam.manifests).toHaveLength(4);
    expect.soft(cam.held, `${cam.serial} still holds`).toEqual(keep);
    expect.soft(cam.marks.map((m) => m.clipId).sort()).toEqual(cam.manifests.filter((id) => !keep.includes(id)));
    for (const id of cam.manifests.filter((x) => !keep.includes(x))) {
      expect.soft(vault.objects).toContain(`${cam.serial}/${id}`);
      // At most one release that freed bytes; a repeat after a crash is answered idempotently (freedBytes 0).
      const freed = ledger.filter((e) => e.event === 'released' && e.serial === cam.serial && e.clipId === id && Number(e.details['freedBytes']) > 0);
      expect.soft(freed.length, `${cam.serial}/${id} freed ${freed.length} times`).toBeLessThanOrEqual(1);
      expect.soft(ledger.some((e) => e.event === 'released' && e.serial === cam.serial && e.clipId === id)).toBe(true);
    }
  }
  // The spool holds nothing once all is released (quarantined clips live in quarantine/).
  const spool = join(dataDir, 'spool');
  const left = existsSync(spool) ? readdirSync(spool).flatMap((s) => readdirSync(join(spool, s)).map((f) => `${s}/${f}`)) : [];
  expect.soft(left, `left in the spool`).toEqual([]);
  // Quarantine holds the quarantined clips with their reasons, and nothing else.
  const q = join(dataDir, 'quarantine');
  const inQuarantine = existsSync(q) ? readdirSync(q).flatMap((s) => readdirSync(join(q, s)).map((f) => `${s}/${f}`)).sort() : [];
  expect.soft(inQuarantine, 'quarantine/').toEqual(expected.quarantined.flatMap((k) => [`${k}.bin`, `${k}.reason.json`]).sort());
  // Offline custody verification of ledger + vault.
  const report = await verifyCustody(dataDir);
  expect.soft(report.ok, `${JSON.stringify({ ledger: report.ledger.problems, objects: report.objects.problems, chain: report.chain.problems }, null, 2)}`).toBe(true);
  expect.soft(report.objects.checked).toBe(expected.stored);
  // No clip is missing from any camera's chain, so a crash must not make one look missing.
  expect.soft(report.chain.gaps, 'chain gaps reported').toEqual([]);
  expect.soft(ledger.filter((e) => e.event === 'chain_gap').map((e) => `${e.serial}/${e.clipId}`), "'chain_gap' events in the ledger").toEqual([]);
  expect.soft(new Set(report.quarantined.map((q) => `${q.serial}/${q.clipId}`))).toEqual(new Set(expected.quarantined));
}

/** A delay in [lo, hi) ms, from the seed. */
function delays(seed: number): (lo: number, hi: number) => number {
  const r = prng(seed);
  return (lo, hi) => Math.floor(lo + r() * (hi - lo));
}

describe('dockside run, SIGKILLed at chosen points and restarted', () => {
  it('loses nothing and duplicates nothing: 12 stored, 12 released, custody verifies', async () => {
    const d = delays(SEED);
    const plan: KillPoint[] = [
      { kind: 'event', event: 'enrolled', then: ['state-commit'] }, // first start, enrolling the fleet: a state commit, before the next ledger line
      { kind: 'delay', ms: d(0, 250) }, // around handshake, listing, first pulls
      { kind: 'event', event: 'pulled' }, // a pull complete, before (or as) it is committed spooled
      { kind: 'event', event: 'verified' }, // verified in the ledger, its state maybe not yet
      { kind: 'file', where: 'vault-tmp' }, // mid-copy into the vault
      { kind: 'event', event: 'stored' }, // stored in the ledger, sidecar and state in flight
      { kind: 'event', event: 'released' }, // the camera freed a clip; the dock's commit in flight
      { kind: 'event', event: 'released', then: ['sidecar-write'] }, // the tail of a release: the sidecar rewrite under way
      { kind: 'event', event: 'released', then: [{ clipState: 'released' }] }, // and then the released state committed, the spool cleanup to come
      { kind: 'delay', ms: d(0, 400) },
    ];
    const { dataDir, summary, landed, said } = await crashAndRecover({ plan });
    expect(landed, `most kill points should find work to interrupt\n${said}`).toBeGreaterThanOrEqual(6);
    expect(summary, said).toMatchObject({ cameras: 3, clips: 12, stored: 12, released: 12, quarantined: 0, bytes: 12 * 3_000_000 });
    await expectRecovered(dataDir, { stored: 12, quarantined: [] });
  }, 60_000);

  it('with corrupt clips and unplugs: the planted corrupt clips end quarantined, never released, still on the camera', async () => {
    const d = delays(SEED * 7919 + 1);
    const plan: KillPoint[] = [
      { kind: 'event', event: 'enrolled', then: ['state-commit'] },
      { kind: 'event', event: 'pulled' },
      { kind: 'file', where: 'quarantine' }, // the rotten clip moved to quarantine/, its state not yet committed
      { kind: 'event', event: 'quarantined' }, // quarantined in the ledger, its state maybe not yet
      { kind: 'delay', ms: d(0, 400) },
      { kind: 'event', event: 'undocked' }, // right after an unplug fault
      { kind: 'event', event: 'quarantined' },
      { kind: 'event', event: 'released', afterMs: d(4, 16) },
      { kind: 'delay', ms: d(0, 400) },
    ];
    const { dataDir, summary, landed, said } = await crashAndRecover({ faults: 'corrupt=1,unplug=0.2', plan });
    expect(landed, `most kill points should find work to interrupt\n${said}`).toBeGreaterThanOrEqual(5);
    const cams = readCameras(dataDir);
    const planted = cams.flatMap((c) => c.planted.corrupt.map((id) => `${c.serial}/${id}`));
    expect(planted, said).toHaveLength(3);
    expect(summary, said).toMatchObject({ cameras: 3, clips: 12, stored: 9, released: 9, quarantined: 3 });
    for (const cam of cams) {
      for (const id of cam.planted.corrupt) {
        expect(cam.held, `${cam.serial}/${id} must stay on the camera\n${said}`).toContain(id);
        expect(cam.marks.map((m) => m.clipId), said).not.toContain(id);
        expect(cam.log.some((r) => r.message.startsWith(`RELEASE ${id} `)), said).toBe(false);
        expect(existsSync(join(dataDir, 'quarantine', cam.serial, `${id}.bin`)), said).toBe(true);
        expect((JSON.parse(readFileSync(join(dataDir, 'quarantine', cam.serial, `${id}.reason.json`), 'utf8')) as { check: string }).check, said).toBe('hash');
        expect(existsSync(join(dataDir, 'vault', cam.serial, `${id}.bin`)), said).toBe(false);
      }
    }
    await expectRecovered(dataDir, { stored: 9, quarantined: planted });
  }, 60_000);

  it('with an S3 sink: killed mid-upload, after stored, after released; every clip ends in the bucket once, hashing to its sidecar', async () => {
    const server = await startS3Server({ buckets: ['evidence'] });
    try {
      const d = delays(SEED * 104_729 + 3);
      const plan: KillPoint[] = [
        { kind: 'event', event: 'verified', afterMs: d(1, 30) }, // the first upload in flight
        { kind: 'event', event: 'stored' }, // stored in the ledger: the sidecar PUT and the commit in flight
        { kind: 'event', event: 'stored', then: [{ clipState: 'stored' }] }, // committed stored, not yet released
        { kind: 'event', event: 'released' },
        { kind: 'delay', ms: d(0, 400) },
      ];
      const { dataDir, summary, landed, said } = await crashAndRecover({ plan, extra: ['--sink', 's3://evidence/crash', '--s3-endpoint', server.endpoint] });
      expect(landed, `most kill points should find work to interrupt\n${said}`).toBeGreaterThanOrEqual(3);
      expect(summary, said).toMatchObject({ cameras: 3, clips: 12, stored: 12, released: 12, failed: 0, quarantined: 0 });
      expect.soft(releaseProblems(dataDir)).toEqual([]);
      const client = s3Client(server.endpoint);
      const listed = await client.send(new ListObjectsV2Command({ Bucket: 'evidence', Prefix: 'crash/' }));
      const keys = (listed.Contents ?? []).map((o) => o.Key!).sort();
      client.destroy();
      expect.soft(keys.filter((k) => k.endsWith('.bin')), 'clip objects in the bucket').toHaveLength(12);
      expect.soft(keys.filter((k) => k.endsWith('.json')), 'sidecars in the bucket').toHaveLength(12);
      const ledger = readLedger(dataDir);
      for (const cam of readCameras(dataDir)) {
        expect.soft(cam.held, `${cam.serial} still holds`).toEqual([]);
        for (const id of cam.manifests) {
          const sidecar = JSON.parse((await fetchObject(server.endpoint, 'evidence', `crash/${cam.serial}/${id}.json`)).toString('utf8')) as Sidecar;
          const clip = await fetchObject(server.endpoint, 'evidence', `crash/${cam.serial}/${id}.bin`);
          expect.soft(createHash('sha256').update(clip).digest('hex'), `${cam.serial}/${id} in the bucket`).toBe(sidecar.manifest.sha256);
          expect.soft(sidecar.custody.some((e) => e.event === 'released'), `${cam.serial}/${id}'s sidecar carries its release`).toBe(true);
          const freed = ledger.filter((e) => e.event === 'released' && e.serial === cam.serial && e.clipId === id && Number(e.details['freedBytes']) > 0);
          expect.soft(freed.length, `${cam.serial}/${id} freed ${freed.length} times`).toBeLessThanOrEqual(1);
        }
      }
      const report = await verifyCustody(dataDir);
      expect.soft(report.ok).toBe(true);
      expect.soft(report.remote.clips).toBe(12);
    } finally {
      await stopAll();
    }
  }, 90_000);
});
