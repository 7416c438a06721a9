// The checks the crash soak, the fault matrix and the store and spool fault tests rely
// on (test/helpers/dockInvariants.ts) must be able to fail: one honest ingest passes
// them, then copies of its data dir are broken one way each (as a bug would break
// them) and each break must be named. (Seed 7 plants the corrupt clip at seq 1 and
// loses seq 4, so clip 5 carries a recorded chain gap.)
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon } from '../src/ingest/Daemon.js';
import { parseFaults } from '../src/sim/faults.js';
import { readCameras, readLedger } from './helpers/crashHarness.js';
import { checkDock } from './helpers/dockInvariants.js';

let honest: string;
const dirs: string[] = [];

beforeAll(async () => {
  honest = mkdtempSync(join(tmpdir(), 'dockside-invariants-'));
  dirs.push(honest);
  const daemon = await Daemon.open({
    dataDir: honest,
    hashThreads: 1,
    spool: { minFreeBytes: 1024 * 1024 },
    sim: { cameras: 1, clips: 5, seed: 7, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 50_000 }, faults: parseFaults('corrupt=1,gap=1') },
  });
  await daemon.start();
  await daemon.whenIdle();
  await daemon.close();
}, 30_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of the honest data dir, broken by `edit`; the problems checkDock finds in it. */
async function broken(edit: (dir: string, serial: string) => void): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'dockside-invariants-broken-'));
  dirs.push(dir);
  cpSync(honest, dir, { recursive: true });
  const serial = readdirSync(join(dir, 'vault'))[0]!;
  edit(dir, serial);
  return (await checkDock(dir, { cameras: 1 })).problems;
}

function stored(dir: string, serial: string): string[] {
  return readdirSync(join(dir, 'vault', serial)).filter((f) => f.endsWith('.bin')).sort();
}

describe('the dock invariants', () => {
  it('hold for an honest ingest (one clip corrupt, one lost from the chain)', async () => {
    const check = await checkDock(honest, { cameras: 1 });
    expect(check.problems).toEqual([]);
    expect(check).toMatchObject({ clips: 4, stored: 3, released: 3, quarantined: 1, gapsRecorded: 1 });
    expect(check.custody?.ok).toBe(true);
  });

  it.each<[string, (dir: string, serial: string) => void, RegExp]>([
    ['a stored object that no longer hashes to its manifest', (dir, s) => {
      const f = join(dir, 'vault', s, stored(dir, s)[0]!);
      const b = readFileSync(f);
      b[10] = b[10]! ^ 1;
      writeFileSync(f, b);
    }, /released with sha256 .* the stored object hashes to/],
    ['a released clip whose object is gone', (dir, s) => unlinkSync(join(dir, 'vault', s, stored(dir, s)[0]!)), /released by the camera, but the store has no object for it/],
    ['two objects for one clip', (dir, s) => cpSync(join(dir, 'vault', s, stored(dir, s)[0]!), join(dir, 'vault', s, stored(dir, s)[0]!.replace(/\.bin$/, '.mp4'))), /two objects for one clip/],
    ['a RELEASE in the camera log before the dock stored the clip', (dir, s) => {
      const cam = readCameras(dir)[0]!;
      const id = stored(dir, s)[1]!.replace(/\.bin$/, '');
      const sha = cam.marks.find((m) => m.clipId === id)!.sha256;
      appendFileSync(join(cam.dir, 'log.jsonl'), `${JSON.stringify({ seq: 9999, timeMs: 1, level: 20, message: `RELEASE ${id} sha256=${sha} receipt="x"` })}\n`);
    }, /camera log "RELEASE" at 1 with no earlier ledger 'stored'/],
    ['a stored clip the camera never released', (dir) => {
      const cam = readCameras(dir)[0]!;
      unlinkSync(join(cam.dir, 'released', `${cam.marks[0]!.clipId}.json`));
    }, /stored, but the camera still holds it/],
    ['a clip quarantined with no fault planted in it', (dir) => {
      const cam = readCameras(dir)[0]!;
      const identity = JSON.parse(readFileSync(join(cam.dir, 'camera.json'), 'utf8')) as { planted: { corrupt: string[] } };
      identity.planted.corrupt = [];
      writeFileSync(join(cam.dir, 'camera.json'), JSON.stringify(identity));
    }, /quarantined \(hash: .*\), but no fault was planted in it/],
    ['a chain gap where no clip was lost (a false gap)', (dir) => {
      const cam = readCameras(dir)[0]!;
      const identity = JSON.parse(readFileSync(join(cam.dir, 'camera.json'), 'utf8')) as { planted: { gap: string[] } };
      identity.planted.gap = [];
      writeFileSync(join(cam.dir, 'camera.json'), JSON.stringify(identity));
    }, /chain_gap recorded, but no planted gap or tamper comes right before it/],
    ['a planted corrupt clip that reached the store', (dir, s) => {
      const cam = readCameras(dir)[0]!;
      const id = cam.planted.corrupt[0]!;
      cpSync(join(dir, 'quarantine', s, `${id}.bin`), join(dir, 'vault', s, `${id}.bin`));
    }, /planted corrupt, but it is in the store/],
    ['a clip left in the spool', (dir, s) => writeFileSync(join(dir, 'spool', s, 'x.part'), 'x'), /left in the spool: .*x\.part/],
    ['a temporary file left in the vault', (dir, s) => writeFileSync(join(dir, 'vault', s, '.x.bin.tmp'), 'x'), /a temporary or unexpected file left behind/],
    ['a ledger line changed after it was signed', (dir) => {
      const p = join(dir, 'ledger.jsonl');
      writeFileSync(p, readFileSync(p, 'utf8').replace('"event":"pulled"', '"event":"listed"'));
    }, /custody does not verify/],
    ['a clip the camera recorded that never reached the store', (dir, s) => {
      const id = stored(dir, s)[0]!.replace(/\.bin$/, '');
      for (const f of [`${id}.bin`, `${id}.json`]) unlinkSync(join(dir, 'vault', s, f));
      const cam = readCameras(dir)[0]!;
      for (const f of [join(cam.dir, 'released', `${id}.json`)]) unlinkSync(f);
      writeFileSync(join(cam.dir, 'log.jsonl'), readFileSync(join(cam.dir, 'log.jsonl'), 'utf8').split('\n').filter((l) => !l.includes(`RELEASE ${id}`)).join('\n'));
    }, /not planted to fail, but not in the store/],
  ])('catch %s', async (_what, edit, expected) => {
    const problems = await broken(edit);
    expect(problems.join('\n')).toMatch(expected);
  });

  it('after a kill, accept what a restart repairs (temporary files), and still catch a release before store', async () => {
    const problems = await broken((dir, s) => writeFileSync(join(dir, 'vault', s, '.x.bin.tmp'), 'x'));
    expect(problems).toHaveLength(1);
    const dir = mkdtempSync(join(tmpdir(), 'dockside-invariants-broken-'));
    dirs.push(dir);
    cpSync(honest, dir, { recursive: true });
    const serial = readdirSync(join(dir, 'vault'))[0]!;
    writeFileSync(join(dir, 'vault', serial, '.x.bin.tmp'), 'x');
    expect((await checkDock(dir, { cameras: 1, settled: false })).problems).toEqual([]);
    // The ledger's 'stored' lines removed: each release now comes before any store.
    writeFileSync(join(dir, 'ledger.jsonl'), readLedger(dir).filter((e) => e.event !== 'stored').map((e) => JSON.stringify(e)).join('\n') + '\n');
    expect((await checkDock(dir, { cameras: 1, settled: false })).problems.join('\n')).toMatch(/no earlier ledger 'stored'/);
  });
});
