// The crash soak, short (scripts/soak.ts runs the long one: `npm run soak -- --kills 200`):
// `dockside run --sim 3` with planted corrupt and tampered clips, SIGKILLed about ten
// times at seeded random points, restarted each time, then run to idle. After every
// kill, and at the end, the dock is checked from disk (test/helpers/dockInvariants.ts):
// every clip stored once with the right hash, or quarantined for the fault planted in
// it; no RELEASE in any camera's log before the ledger's 'stored' for that hash and
// the object in the vault; custody verify passes.
//
// Replay with DOCKSIDE_SOAK_SEED=<n> (default 42); keep the data dir with DOCKSIDE_SOAK_KEEP=1
// (a failing run's is always kept, and named in the report).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliChildren } from './helpers/cliProcess.js';
import { crashSoakRun, describeOutcomes, describeRun, ensureBuilt } from './helpers/crashSoak.js';

const SEED = Number(process.env['DOCKSIDE_SOAK_SEED'] ?? '42');
const kids = new CliChildren();

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => kids.killAll());

describe('crash soak (short)', () => {
  it(`seed ${SEED}: ten SIGKILLs at random points; every clip stored once or quarantined as planted, nothing released unstored, custody verifies`, async () => {
    const report = await crashSoakRun({ kids, seed: SEED, kills: 10, cameras: 3, clips: 8, clipBytes: 150_000, faults: 'corrupt=1,tamper=1', keep: process.env['DOCKSIDE_SOAK_KEEP'] === '1' });
    const said = `${describeRun(report)}\n${describeOutcomes(report)}`;
    console.info(`crash soak: ${said}`);
    expect(report.problems, said).toEqual([]);
    // Most kill points find work to interrupt (a point may come too late, after idle).
    expect(report.kills, said).toBeGreaterThanOrEqual(7);
    expect(report, said).toMatchObject({ clips: 24, stored: 18, released: 18, quarantined: 6 });
  }, 150_000);
});
