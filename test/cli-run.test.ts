// `dockside run`, `enroll` and `custody verify` as a user runs them: the issue's
// "done means", against the built binary.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CliChildren } from './helpers/cliProcess.js';

const children = new CliChildren();
const dirs: string[] = [];
afterEach(async () => {
  await children.killAll();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'dockside-cli-run-'));
  dirs.push(d);
  return d;
};
const lastJson = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;

describe('dockside run --until-idle', () => {
  it('--sim 3 --sim-clips 4 --sim-seed 7 (real MP4 clips): stored 12, released 12, and custody verify exits 0', async () => {
    const d = tmp();
    const r = await children.run(['run', '--sim', '3', '--sim-clips', '4', '--sim-seed', '7', '--data-dir', d, '--until-idle', '--json'], { limitMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout)).toMatchObject({ cameras: 3, clips: 12, stored: 12, quarantined: 0, released: 12 });
    const v = await children.run(['custody', 'verify', '--data-dir', d]);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain('Custody verified.');
    const j = await children.run(['custody', 'verify', '--data-dir', d, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, objects: { checked: 12 }, released: 12 });
  });

  it('--sim-faults corrupt=1,tamper=1: planted clips quarantined, the rest stored and released, verify lists the quarantines', async () => {
    const d = tmp();
    const r = await children.run(['run', '--sim', '3', '--sim-clips', '4', '--sim-seed', '7', '--sim-mode', 'synthetic', '--sim-clip-bytes', '200000', '--sim-faults', 'corrupt=1,tamper=1', '--data-dir', d, '--until-idle', '--json'], { limitMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout)).toMatchObject({ clips: 12, stored: 6, quarantined: 6, released: 6 });
    const v = await children.run(['custody', 'verify', '--data-dir', d]);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toMatch(/Quarantined 6/);
    expect(v.stdout).toMatch(/hash: the spooled bytes hash to/);
    expect(v.stdout).toMatch(/signature: the manifest's Ed25519 signature does not verify/);
  });

  it('--sim-link pty with ber, drop, stall and unplug faults: every clip stored over the real serial stack', async () => {
    const d = tmp();
    const r = await children.run(
      ['run', '--sim', '3', '--sim-clips', '4', '--sim-seed', '7', '--sim-mode', 'synthetic', '--sim-clip-bytes', '300000', '--sim-link', 'pty', '--sim-faults', 'ber=1e-5,drop=0.01,stall=0.02,unplug=0.3', '--data-dir', d, '--until-idle', '--json'],
      { limitMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout)).toMatchObject({ clips: 12, stored: 12, released: 12 });
    expect((await children.run(['custody', 'verify', '--data-dir', d])).code).toBe(0);
  });

  it('a standalone camera: refused until enrolled, then ingested through discovery', async () => {
    const d = tmp();
    const sim = await children.startSim(['--cameras', '1', '--clips', '2', '--mode', 'synthetic', '--clip-bytes', '100000', '--dir', join(d, 'sim'), '--ports-dir', join(d, 'ports')], 1);
    const serial = sim.cameras[0]!.serial;
    const refused = await children.run(['run', '--data-dir', join(d, 'var'), '--ports-dir', join(d, 'ports'), '--until-idle', '--json']);
    expect(refused.code, refused.stderr).toBe(0);
    expect(lastJson(refused.stdout)).toMatchObject({ clips: 0, stored: 0 });
    expect(readFileSync(join(d, 'var', 'ledger.jsonl'), 'utf8')).toMatch(/"event":"refused"/);
    const enroll = await children.run(['enroll', serial, '--data-dir', join(d, 'var'), '--ports-dir', join(d, 'ports'), '--yes', '--json']);
    expect(enroll.code, enroll.stderr).toBe(0);
    expect(JSON.parse(enroll.stdout)).toMatchObject({ enrolled: serial, fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const list = await children.run(['enroll', '--list', '--data-dir', join(d, 'var'), '--json']);
    expect(JSON.parse(list.stdout).cameras).toHaveLength(1);
    const run = await children.run(['run', '--data-dir', join(d, 'var'), '--ports-dir', join(d, 'ports'), '--until-idle', '--json']);
    expect(lastJson(run.stdout)).toMatchObject({ cameras: 1, clips: 2, stored: 2, released: 2 });
    await sim.stop();
  });

  it('an unwritable sink: exits non-zero, the summary names the failed clip and why, nothing released', async () => {
    const d = tmp();
    const r = await children.run(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--sink', 'dir:/dev/null/vault', '--data-dir', d, '--until-idle', '--json'], { limitMs: 60_000 });
    expect(r.code).toBe(1);
    expect(lastJson(r.stdout)).toMatchObject({ stored: 0, released: 0, failed: 1, failures: [{ reason: expect.stringContaining('SINK_REFUSED') }] });
  });

  // Regression: over loopback nothing held the event loop, so `run` without
  // --until-idle exited once its cameras were offloaded, leaving a stale lock.
  it('a second process on a data dir in use is refused, naming the owner (the daemon stays up)', async () => {
    const d = tmp();
    const first = children.spawn(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--data-dir', d]);
    for (let i = 0; i < 200; i++) {
      try {
        readFileSync(join(d, 'dockside.lock'));
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const second = await children.run(['run', '--data-dir', d, '--until-idle', '--json']);
    expect(second.code).toBe(2);
    expect(lastJson(second.stdout)).toMatchObject({ error: { code: 'CONFIG_INVALID', message: expect.stringMatching(new RegExp(`in use by another dockside .*pid ${first.pid}`)) } });
  });
});
