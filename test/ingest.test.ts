// The daemon end to end, in-process, against simulated cameras: what the issue's
// "done means" asks, checked from both sides (the dock's vault and ledger, and the
// camera's own flash and log).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon, type DaemonOptions } from '../src/ingest/Daemon.js';
import { verifyCustody } from '../src/custody/verifyCustody.js';
import { parseFaults } from '../src/sim/faults.js';
import { Flash } from '../src/sim/Flash.js';
import type { Sidecar } from '../src/custody/sidecar.js';
import type { LedgerEntry } from '../src/custody/Ledger.js';
import { sampleManifest } from './helpers/manifests.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function runToIdle(sim: Partial<Omit<NonNullable<DaemonOptions['sim']>, 'faults'>> & { faults?: string }, extra: Partial<DaemonOptions> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'dockside-ingest-'));
  dirs.push(dataDir);
  const daemon = await Daemon.open({
    dataDir,
    hashThreads: 2,
    spool: { minFreeBytes: 1024 * 1024 },
    session: { timeoutMs: 200, retries: 8 },
    sim: { cameras: 3, clips: 4, seed: 7, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 400_000 }, ...sim, faults: parseFaults(sim.faults) },
    ...extra,
  });
  await daemon.start();
  const summary = await daemon.whenIdle();
  await daemon.close();
  return { dataDir, summary };
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function ledger(dataDir: string): LedgerEntry[] {
  return readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LedgerEntry);
}

function cameras(dataDir: string): Flash[] {
  return readdirSync(join(dataDir, 'sim')).filter((d) => d.startsWith('BC4-')).map((d) => Flash.open(join(dataDir, 'sim', d)));
}

/** The camera's log proves the order: every RELEASE it obeyed came after the dock stored that clip. */
function expectReleasesAfterStore(dataDir: string): void {
  const stored = new Map(ledger(dataDir).filter((e) => e.event === 'stored').map((e) => [`${e.serial}/${e.clipId}`, e]));
  for (const flash of cameras(dataDir)) {
    const log = readFileSync(join(flash.dir, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { timeMs: number; message: string });
    for (const rec of log.filter((r) => r.message.startsWith('RELEASE ') && !r.message.startsWith('RELEASE refused'))) {
      const [, clipId, shaField] = rec.message.split(' ');
      const s = stored.get(`${flash.identity.serial}/${clipId}`);
      expect(s, `camera released ${clipId} with no stored event`).toBeDefined();
      expect(s!.timeMs).toBeLessThanOrEqual(rec.timeMs);
      expect(shaField).toBe(`sha256=${String(s!.details['sha256'])}`);
    }
  }
}

describe('dockside run (in-process)', () => {
  it('stores and releases every clip; every vault file hashes to its sidecar; custody verifies', async () => {
    const { dataDir, summary } = await runToIdle({});
    expect(summary).toMatchObject({ cameras: 3, clips: 12, stored: 12, released: 12, quarantined: 0, bytes: 12 * 400_000 });
    let files = 0;
    for (const serial of readdirSync(join(dataDir, 'vault'))) {
      for (const f of readdirSync(join(dataDir, 'vault', serial)).filter((n) => n.endsWith('.json'))) {
        const sc = JSON.parse(readFileSync(join(dataDir, 'vault', serial, f), 'utf8')) as Sidecar;
        expect(sha256(join(dataDir, 'vault', serial, sc.clip.file))).toBe(sc.manifest.sha256);
        expect(sc.custody.map((e) => e.event)).toEqual(expect.arrayContaining(['listed', 'pulled', 'verified', 'stored', 'released']));
        files++;
      }
    }
    expect(files).toBe(12);
    for (const flash of cameras(dataDir)) {
      expect(flash.clips()).toHaveLength(0);
      expect(flash.releaseMarks()).toHaveLength(4);
    }
    expectReleasesAfterStore(dataDir);
    const report = await verifyCustody(dataDir);
    expect(report.ok).toBe(true);
    expect(report.objects.checked).toBe(12);
    expect(report.released).toBe(12);
    // Nothing is left in the spool once released.
    expect(readdirSync(join(dataDir, 'spool')).flatMap((s) => readdirSync(join(dataDir, 'spool', s)))).toEqual([]);
  });

  it('quarantines corrupt and tampered clips, never releases them (the camera still holds them), stores the rest', async () => {
    const { dataDir, summary } = await runToIdle({ faults: 'corrupt=1,tamper=1' });
    expect(summary).toMatchObject({ clips: 12, quarantined: 6, stored: 6, released: 6 });
    for (const flash of cameras(dataDir)) {
      const planted = [...flash.identity.planted.corrupt, ...flash.identity.planted.tamper];
      expect(planted).toHaveLength(2);
      for (const id of planted) {
        expect(flash.clip(id), `${id} must stay on the camera`).toBeDefined();
        expect(flash.releaseMark(id)).toBeUndefined();
        const serial = flash.identity.serial;
        expect(existsSync(join(dataDir, 'quarantine', serial, `${id}.bin`))).toBe(true);
        expect(JSON.parse(readFileSync(join(dataDir, 'quarantine', serial, `${id}.reason.json`), 'utf8')).check).toBe(flash.identity.planted.corrupt.includes(id) ? 'hash' : 'signature');
        expect(existsSync(join(dataDir, 'vault', serial, `${id}.bin`))).toBe(false);
      }
      expect(flash.releaseMarks()).toHaveLength(2);
    }
    expectReleasesAfterStore(dataDir);
    const report = await verifyCustody(dataDir);
    expect(report.ok).toBe(true);
    expect(report.quarantined).toHaveLength(6);
  });

  it('gets every clip through bit errors, lost frames, stalls and unplugs', async () => {
    const { dataDir, summary } = await runToIdle({ faults: 'ber=1e-5,drop=0.01,stall=0.02,unplug=0.3' });
    expect(summary).toMatchObject({ clips: 12, stored: 12, released: 12 });
    expect(ledger(dataDir).some((e) => e.event === 'undocked' || e.event === 'pulled' && Number(e.details['resumedFrom']) > 0)).toBe(true);
    expect((await verifyCustody(dataDir)).ok).toBe(true);
  });

  it('records a gap in a camera chain loudly and still ingests the clips that are there', async () => {
    const { dataDir, summary } = await runToIdle({ faults: 'gap=1', cameras: 1, clips: 5, seed: 3 });
    expect(summary).toMatchObject({ clips: 4, stored: 4, released: 4 });
    const gap = cameras(dataDir)[0]!.identity.planted.gap[0]!;
    const events = ledger(dataDir).filter((e) => e.event === 'chain_gap');
    const seqOfGap = Number(/-(\d+)$/.exec(gap)![1]);
    if (seqOfGap < 5) expect(events).toHaveLength(1);
    const report = await verifyCustody(dataDir);
    expect(report.ok).toBe(true);
    expect(report.chain.gaps.length).toBe(events.length);
  });

  it('refuses a camera whose key is not the enrolled one: nothing of it is stored', async () => {
    const { dataDir, summary } = await runToIdle({ faults: 'rogue', cameras: 2 });
    expect(summary).toMatchObject({ cameras: 2, clips: 0, stored: 0 });
    const refused = ledger(dataDir).filter((e) => e.event === 'refused');
    expect(refused).toHaveLength(2);
    expect(String(refused[0]!.details['code'])).toBe('PROTO_AUTH');
    expect(existsSync(join(dataDir, 'vault'))).toBe(false);
  });

  // Regression: a done camera kept its serving slot while docked, so with more
  // cameras than bays the rest waited for ever.
  it('serves more cameras than bays, a bay at a time: every camera is offloaded', async () => {
    const { summary } = await runToIdle({ cameras: 3, clips: 1 }, { bays: 1 });
    expect(summary).toMatchObject({ cameras: 3, clips: 3, stored: 3, released: 3 });
  });

  it('resumes on restart: a second run over the same data dir finds everything done and duplicates nothing', async () => {
    const { dataDir } = await runToIdle({ cameras: 2, clips: 2 });
    const before = ledger(dataDir).filter((e) => e.event === 'stored').length;
    const again = await Daemon.open({ dataDir, hashThreads: 1, spool: { minFreeBytes: 1024 * 1024 }, sim: { cameras: 2, clips: 2, seed: 7, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 400_000 }, faults: parseFaults('') } });
    await again.start();
    const summary = await again.whenIdle();
    await again.close();
    expect(summary).toMatchObject({ clips: 4, stored: 4, released: 4 });
    expect(ledger(dataDir).filter((e) => e.event === 'stored').length).toBe(before);
    expect((await verifyCustody(dataDir)).ok).toBe(true);
  });

  it('keeps released clips\' spool copies for the keep period, and the janitor removes them once it is over', async () => {
    const { dataDir, summary } = await runToIdle({ cameras: 1, clips: 2 }, { spool: { minFreeBytes: 1024 * 1024, keepAfterReleaseMs: 3_600_000 } });
    expect(summary).toMatchObject({ stored: 2, released: 2 });
    const spooled = (): string[] => readdirSync(join(dataDir, 'spool')).flatMap((s) => readdirSync(join(dataDir, 'spool', s)));
    expect(spooled()).toHaveLength(2);
    // the next start, with a keep period that has passed, reclaims them
    const again = await Daemon.open({ dataDir, hashThreads: 1, spool: { minFreeBytes: 1024 * 1024, keepAfterReleaseMs: 1 } });
    await again.start();
    expect(spooled()).toHaveLength(0);
    expect(again.store.keptSpoolCopies(Number.MAX_SAFE_INTEGER)).toEqual([]);
    await again.close();
    expect((await verifyCustody(dataDir)).ok).toBe(true);
  });

  it('a sink that refuses for good: the clip is failed with the reason, kept spooled and on the camera, never released', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dockside-ingest-'));
    dirs.push(dataDir);
    const daemon = await Daemon.open({
      dataDir,
      sink: 'dir:/dev/null/vault',
      spool: { minFreeBytes: 1024 * 1024 },
      sim: { cameras: 1, clips: 1, seed: 7, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 10_000 }, faults: parseFaults('') },
    });
    await daemon.start();
    const summary = await daemon.whenIdle();
    expect(summary).toMatchObject({ clips: 1, stored: 0, released: 0, failed: 1, failures: [{ reason: expect.stringMatching(/^SINK_REFUSED: .*ENOTDIR.*queue retry/) }] });
    const clip = daemon.store.clips()[0]!;
    expect(clip).toMatchObject({ state: 'failed', attempts: 1 });
    expect(existsSync(daemon.spool.clipPath(clip.serial, clip.clipId, clip.container))).toBe(true);
    await daemon.close();
    expect(cameras(dataDir)[0]!.clips()).toHaveLength(1);
    const events = ledger(dataDir).filter((e) => e.clipId === clip.clipId).map((e) => e.event);
    expect(events).toContain('upload_failed');
    expect(events).not.toContain('stored');
    expect(events).not.toContain('released');
  });
});

describe('chain order when a clip cannot be pulled', () => {
  // Regression: clips were chain-checked against the last chain value seen, so when
  // clip 1 failed to pull and clip 2 arrived first, a false chain_gap was recorded.
  it('a later clip waits for the earlier one (no false gap); the next docking completes both', async () => {
    const { RemoteError } = await import('../src/protocol/Endpoint.js');
    const dataDir = mkdtempSync(join(tmpdir(), 'dockside-ingest-'));
    dirs.push(dataDir);
    const sim = { cameras: 1, clips: 2, seed: 4, link: 'loopback' as const, record: { mode: 'synthetic' as const, syntheticBytes: 50_000 }, faults: parseFaults('') };
    const first = await Daemon.open({ dataDir, spool: { minFreeBytes: 1024 * 1024 }, sim });
    const camera = first.simFleet!.cameras[0]!;
    const clip1 = camera.flash.clips()[0]!.manifest.clipId;
    const read = camera.defaultBehaviour('READ');
    let failures = 0;
    camera.override('READ', (req, ctx) => {
      if (req.clipId !== clip1) return read(req, ctx);
      failures++;
      throw new RemoteError('BAD_RANGE', 'flash read error (test)');
    });
    await first.start();
    const s1 = await first.whenIdle();
    const c1 = first.store.clip(camera.serial, clip1)!;
    await first.close();
    expect(failures).toBeGreaterThan(0);
    expect(c1.state).toBe('pulling');
    expect(s1).toMatchObject({ stored: 0, released: 0 });
    expect(ledger(dataDir).filter((e) => e.event === 'chain_gap')).toEqual([]);
    const second = await Daemon.open({ dataDir, spool: { minFreeBytes: 1024 * 1024 }, sim });
    await second.start();
    const s2 = await second.whenIdle();
    await second.close();
    expect(s2).toMatchObject({ clips: 2, stored: 2, released: 2 });
    expect(ledger(dataDir).filter((e) => e.event === 'chain_gap')).toEqual([]);
    expect((await verifyCustody(dataDir)).ok).toBe(true);
  });
});

describe('custody verify catches tampering with what the dock kept', () => {
  it('a custody line removed from a sidecar, a sidecar of the wrong shape, a changed quarantined file', async () => {
    const { writeFileSync } = await import('node:fs');
    const { dataDir } = await runToIdle({ faults: 'corrupt=1', cameras: 1, clips: 3 });
    expect((await verifyCustody(dataDir)).ok).toBe(true);
    const serial = readdirSync(join(dataDir, 'vault'))[0]!;
    const [first, second] = readdirSync(join(dataDir, 'vault', serial)).filter((n) => n.endsWith('.json'));
    const p1 = join(dataDir, 'vault', serial, first!);
    const sc = JSON.parse(readFileSync(p1, 'utf8')) as Sidecar;
    sc.custody.splice(1, 1); // hide the "pulled" line
    writeFileSync(p1, JSON.stringify(sc));
    const p2 = join(dataDir, 'vault', serial, second!);
    writeFileSync(p2, JSON.stringify({ ...(JSON.parse(readFileSync(p2, 'utf8')) as object), custody: 5 }));
    const qdir = join(dataDir, 'quarantine', serial);
    const qfile = readdirSync(qdir).find((f) => f.endsWith('.bin'))!;
    writeFileSync(join(qdir, qfile), 'not what was quarantined');
    const report = await verifyCustody(dataDir);
    expect(report.ok).toBe(false);
    const problems = report.objects.problems.map((p) => p.problem).join('\n');
    expect(problems).toMatch(/lines were removed or added/);
    expect(problems).toMatch(/is not a dockside-sidecar-v1 document/);
    expect(problems).toMatch(/the quarantined file no longer hashes/);
  });
});

describe('dockside run: media check and spool space', () => {
  it('a clip that fails the media check but matches its signed hash is stored and flagged, not quarantined', async () => {
    const { randomBytes } = await import('node:crypto');
    const { writeFileSync } = await import('node:fs');
    const { sealManifest, signManifest } = await import('../src/custody/manifest.js');
    const { simSerial } = await import('../src/sim/SimCamera.js');
    const dataDir = mkdtempSync(join(tmpdir(), 'dockside-ingest-'));
    dirs.push(dataDir);
    // A camera whose flash holds one "mp4" that is not playable, honestly signed.
    const serial = simSerial(5, 0);
    const flash = Flash.create(join(dataDir, 'sim', serial), {
      serial, model: 'Sentinel BC4', vendor: 'Dockside Simulated Devices', hardware: 'rev C', firmware: '4.2.1', officerId: 'OFC-1', seed: 5,
      createdMs: Date.now(), clockOffsetMs: 0, clockSetAtMs: Date.now(), driftPpm: 0, batteryPct: 50,
    });
    const clipId = '20261130T060000Z-000001';
    const bytes = randomBytes(50_000);
    writeFileSync(flash.clipPath(clipId, 'mp4'), bytes);
    const { bytes: manifest } = sealManifest(
      sampleManifest(bytes, { serial, clipId, officerId: 'OFC-1', startMs: Date.UTC(2026, 10, 30, 6), endMs: Date.UTC(2026, 10, 30, 6) + 3000, gps: null }),
    );
    flash.addClip(manifest, signManifest(manifest, flash.privateKey));
    flash.updateIdentity({ lastSeq: 1 });
    await flash.close();
    const daemon = await Daemon.open({ dataDir, spool: { minFreeBytes: 1024 * 1024 }, sim: { cameras: 1, clips: 0, seed: 5, link: 'loopback', faults: parseFaults('') } });
    daemon.store.enroll(serial, 'Sentinel BC4', Flash.open(join(dataDir, 'sim', serial)).publicKeyRaw);
    await daemon.start();
    const summary = await daemon.whenIdle();
    const row = daemon.store.clip(serial, clipId)!;
    await daemon.close();
    expect(summary).toMatchObject({ stored: 1, released: 1, quarantined: 0 });
    expect(row.flags).toMatch(/^media: ffprobe cannot read it/);
    expect(ledger(dataDir).some((e) => e.event === 'media_flagged' && e.clipId === clipId)).toBe(true);
    expect(sha256(join(dataDir, 'vault', serial, `${clipId}.mp4`))).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('pauses pulls while the spool is short of space (nothing half-stored), and resumes when space returns', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dockside-ingest-'));
    dirs.push(dataDir);
    const daemon = await Daemon.open({
      dataDir,
      spool: { minFreeBytes: 1024 * 1024 },
      sim: { cameras: 2, clips: 2, seed: 7, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 100_000 }, faults: parseFaults('') },
    });
    // The disk says it is full (test/spool-full.test.ts fills a real one where mounting is allowed).
    const realFree = daemon.spool.freeBytes.bind(daemon.spool);
    daemon.spool.freeBytes = async () => 512 * 1024;
    await daemon.start();
    const idle = daemon.whenIdle();
    let settled = false;
    void idle.then(() => (settled = true));
    for (let i = 0; i < 100 && daemon.store.clips({ state: 'listed' }).length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false);
    expect(daemon.store.countByState()).toMatchObject({ listed: 4, pulling: 0, spooled: 0, stored: 0 });
    daemon.spool.freeBytes = realFree; // space returns
    const summary = await idle;
    await daemon.close();
    expect(summary).toMatchObject({ clips: 4, stored: 4, released: 4 });
  });
});
