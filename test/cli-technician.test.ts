// The technician's commands, run as a user runs them (the built binary, in its own
// process), first against a daemon (`dockside run --sim 2`) in another process, which
// they reach through its control socket, then against `dockside sim` alone, where
// they open the camera's serial port themselves; `pull` is also driven in a
// pseudo-terminal (util-linux `script`) to see its progress bar.
import { generateKeyPairSync } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, CliChildren, onlyJson, type CliResult, type SimHandle } from './helpers/cliProcess.js';

const kids = new CliChildren();
const VENDOR_KEY = new URL('../fixtures/keys/sim-vendor-firmware.key.pem', import.meta.url).pathname;
let root = '';

beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'dockside-tech-')));
});
afterAll(async () => {
  await kids.killAll();
  if (root) rmSync(root, { recursive: true, force: true });
});

function said(r: CliResult): string {
  return `exit ${String(r.code ?? r.signal)}${r.killed ? ' (killed at the safety limit: it hung)' : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

interface BayRow {
  bay: string;
  serial: string | null;
  state: string;
  camera: { batteryPct: number; storageTotal: number; clockSkewMs: number; link: { frameErrors: number; errorRate: number } } | null;
  lastOffloadMs: number | null;
  problems: string[];
}

interface DeviceRow {
  serial: string;
  firmware: string;
  state: string;
}

/** Polls `devices --json` until `n` cameras are in one of `states`. */
async function waitForDevices(dataDir: string, n: number, states: string[], extra: string[] = []): Promise<DeviceRow[]> {
  const until = Date.now() + 60_000;
  let last = '';
  while (Date.now() < until) {
    const r = await kids.run(['devices', '--data-dir', dataDir, '--json', ...extra]);
    last = said(r);
    if (r.code === 0) {
      const devices = (onlyJson(r) as { devices: DeviceRow[] }).devices;
      if (devices.length === n && devices.every((d) => states.includes(d.state))) return devices;
    }
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`cameras never reached ${states.join('/')}; last answer:\n${last}`);
}

function pack(dir: string, version: string, key: string = VENDOR_KEY, model = 'Sentinel BC4'): string {
  const image = join(dir, `fw-${version}.img`);
  writeFileSync(image, Buffer.alloc(200_000, version));
  const out = join(dir, `fw-${version}-${Math.random().toString(36).slice(2)}.dsfw`);
  execFileSync(process.execPath, [BIN, 'firmware', 'pack', image, '--key', key, '--model', model, '--fw-version', version, '--out', out]);
  return out;
}

function otherVendorKey(dir: string): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const path = join(dir, 'not-the-vendor.key.pem');
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return path;
}

describe('against a running daemon (dockside run --sim 2), through its control socket', () => {
  let dataDir = '';
  let serials: string[] = [];

  beforeAll(async () => {
    dataDir = join(root, 'dock');
    kids.spawn(['run', '--sim', '2', '--sim-clips', '2', '--sim-mode', 'synthetic', '--sim-clip-bytes', '300000', '--data-dir', dataDir, '--metrics', 'off'], { persistent: true });
    serials = (await waitForDevices(dataDir, 2, ['done'])).map((d) => d.serial);
  }, 90_000);

  it('devices --json says the daemon answered and lists both cameras, done', async () => {
    const r = await kids.run(['devices', '--data-dir', dataDir, '--json']);
    expect(r.code, said(r)).toBe(0);
    const doc = onlyJson(r) as { daemon: boolean; devices: (DeviceRow & { transport: string })[] };
    expect(doc.daemon).toBe(true);
    expect(doc.devices.map((d) => d.serial)).toEqual([...serials].sort());
    expect(doc.devices.every((d) => d.transport === 'loopback' && d.state === 'done')).toBe(true);
  });

  it('diag --all reports every bay healthy, with battery, storage, clock, link errors and last offload', async () => {
    const r = await kids.run(['diag', '--all', '--data-dir', dataDir, '--json']);
    expect(r.code, said(r)).toBe(0);
    const doc = onlyJson(r) as { daemon: boolean; bays: BayRow[]; dock: { clips: Record<string, number> } };
    expect(doc.daemon).toBe(true);
    expect(doc.bays.map((b) => b.serial).sort()).toEqual([...serials].sort());
    for (const b of doc.bays) {
      expect(b.state).toBe('done');
      expect(b.problems).toEqual([]);
      expect(b.camera!.storageTotal).toBeGreaterThan(0);
      expect(b.camera!.link.frameErrors).toBe(0);
      expect(b.lastOffloadMs).toBeGreaterThan(Date.now() - 120_000);
    }
    expect(doc.dock.clips['released']).toBe(4);
    const human = await kids.run(['diag', '--all', '--data-dir', dataDir]);
    expect(human.code, said(human)).toBe(0);
    expect(human.stdout).toMatch(/^BAY\s+CAMERA\s+STATE\s+BATTERY\s+STORAGE\s+CLOCK\s+LINK ERRORS\s+LAST OFFLOAD\s+HEALTH/m);
    expect(human.stdout).toContain('Every bay is healthy.');
  });

  it('diag SERIAL runs the full check-up over the daemon\'s session', async () => {
    const r = await kids.run(['diag', serials[0]!, '--data-dir', dataDir, '--json', '--link-seconds', '0.5'], { limitMs: 30_000 });
    expect(r.code, said(r)).toBe(0);
    const d = onlyJson(r) as { serial: string; transport: string; selftest: { passed: boolean }; link: { bytes: number } };
    expect(d.serial).toBe(serials[0]);
    expect(d.transport).toBe('loopback'); // only the daemon can reach an in-process camera
    expect(d.selftest.passed).toBe(true);
    expect(d.link.bytes).toBeGreaterThan(0);
  });

  it('logs SERIAL shows the camera log, with the releases the dock made', async () => {
    const r = await kids.run(['logs', serials[0]!, '--data-dir', dataDir, '--all']);
    expect(r.code, said(r)).toBe(0);
    expect(r.lines.filter((l) => / INFO {2}RELEASE /.test(l))).toHaveLength(2);
    const tail = onlyJson(await kids.run(['logs', serials[0]!, '--data-dir', dataDir, '-n', '3', '--json'])) as { entries: unknown[]; truncated: boolean };
    expect(tail.entries).toHaveLength(3);
    expect(tail.truncated).toBe(true);
  });

  it('firmware refuses an unsigned image and a package signed by another key before sending anything, then installs a signed one', async () => {
    const dir = join(root, 'fw');
    mkdirSync(dir, { recursive: true });
    const raw = join(dir, 'raw.img');
    writeFileSync(raw, Buffer.alloc(1000, 1));
    const unsigned = await kids.run(['firmware', serials[0]!, raw, '--data-dir', dataDir]);
    expect(unsigned.code, said(unsigned)).toBe(4);
    expect(unsigned.stderr).toMatch(/not a usable firmware package.*\[FIRMWARE_INVALID\]/);
    const forged = await kids.run(['firmware', serials[0]!, pack(dir, '6.6.6', otherVendorKey(dir)), '--data-dir', dataDir]);
    expect(forged.code, said(forged)).toBe(4);
    expect(forged.stderr).toMatch(/signature does not verify against the Sentinel BC4 vendor key.*nothing was sent/);
    const ok = await kids.run(['firmware', serials[0]!, pack(dir, '4.3.0'), '--data-dir', dataDir, '--json'], { limitMs: 60_000 });
    expect(ok.code, said(ok)).toBe(0);
    expect(onlyJson(ok)).toMatchObject({ daemon: true, serial: serials[0], from: '4.2.1', to: '4.3.0' });
    const devices = await waitForDevices(dataDir, 2, ['done']);
    expect(devices.find((d) => d.serial === serials[0])!.firmware).toBe('4.3.0');
    expect(devices.find((d) => d.serial === serials[1])!.firmware).toBe('4.2.1');
    // Nothing of the refused packages reached the camera; the update is in its log and in the ledger.
    const log = (await kids.run(['logs', serials[0]!, '--data-dir', dataDir, '--all'])).stdout;
    expect(log).not.toContain('6.6.6');
    expect(log).toContain('booted firmware 4.3.0 (was 4.2.1)');
    const ledger = readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; serial: string; details: { to?: string } });
    expect(ledger.filter((e) => e.event === 'firmware_updated')).toEqual([expect.objectContaining({ serial: serials[0], details: expect.objectContaining({ from: '4.2.1', to: '4.3.0' }) })]);
    const custody = await kids.run(['custody', 'verify', '--data-dir', dataDir]);
    expect(custody.code, said(custody)).toBe(0);
  });

  it('pull by port path asks the daemon to offload again and reports what the dock holds of that camera', async () => {
    const r = await kids.run(['pull', `sim:${serials[1]!}:a`, '--data-dir', dataDir, '--json'], { limitMs: 30_000 });
    expect(r.code, said(r)).toBe(0);
    expect(onlyJson(r)).toMatchObject({ serial: serials[1], state: 'done', pulled: 0, clips: { released: 2 }, quarantined: [], failed: [] });
  });

  it('a camera that is not docked is exit 3, naming the cameras that are', async () => {
    for (const cmd of [['diag', 'BC4-NOPE'], ['logs', 'BC4-NOPE'], ['pull', 'BC4-NOPE']]) {
      const r = await kids.run([...cmd, '--data-dir', dataDir]);
      expect(r.code, said(r)).toBe(3);
      expect(r.stderr).toContain(`no camera BC4-NOPE is docked at this dock; docked: `);
      for (const s of serials) expect(r.stderr).toContain(s);
    }
  });
});

describe('enroll through the daemon', () => {
  it('a refused camera (its key is not the enrolled one) is enrolled while docked, admitted at once, and --list/--revoke go through the daemon', async () => {
    const dataDir = join(root, 'rogue');
    kids.spawn(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '100000', '--sim-faults', 'rogue', '--data-dir', dataDir], { persistent: true });
    let serial = '';
    const until = Date.now() + 60_000;
    while (Date.now() < until && !serial) {
      const r = await kids.run(['diag', '--all', '--data-dir', dataDir, '--json']);
      const bays = r.lines.length === 1 ? ((onlyJson(r) as { bays?: BayRow[] }).bays ?? []) : [];
      if (bays[0]?.state === 'refused') serial = bays[0].serial!;
      else await new Promise((res) => setTimeout(res, 300));
    }
    expect(serial).not.toBe('');
    const refused = await kids.run(['pull', serial, '--data-dir', dataDir, '--json']);
    expect(refused.code, said(refused)).toBe(4);
    expect(onlyJson(refused)).toMatchObject({ state: 'refused', error: { code: 'PROTO_AUTH' } });
    const before = onlyJson(await kids.run(['enroll', '--list', '--data-dir', dataDir, '--json'])) as { cameras: { serial: string; fingerprint: string }[] };
    const r = await kids.run(['enroll', serial, '--yes', '--data-dir', dataDir]);
    expect(r.code, said(r)).toBe(0);
    expect(r.stdout).toContain(`WARNING: ${serial} was enrolled with a different key (sha256:${before.cameras[0]!.fingerprint})`);
    expect(r.stdout).toContain('The daemon is offloading it now.');
    const fp = /Device key ed25519 sha256:([0-9a-f]{64})/.exec(r.stdout)![1]!;
    expect(fp).not.toBe(before.cameras[0]!.fingerprint);
    // Admitted: it authenticates with the new key and is offloaded (a rogue camera's
    // clips were signed by its old key, so they are quarantined, and never released).
    const devices = await waitForDevices(dataDir, 1, ['done']);
    expect(devices[0]!.serial).toBe(serial);
    const after = onlyJson(await kids.run(['enroll', '--list', '--data-dir', dataDir, '--json'])) as { cameras: { serial: string; fingerprint: string; revoked: boolean }[] };
    expect(after.cameras).toEqual([expect.objectContaining({ serial, fingerprint: fp, revoked: false })]);
    const revoke = await kids.run(['enroll', '--revoke', serial, '--data-dir', dataDir]);
    expect(revoke.code, said(revoke)).toBe(0);
    const list = onlyJson(await kids.run(['enroll', '--list', '--data-dir', dataDir, '--json'])) as { cameras: { revoked: boolean }[] };
    expect(list.cameras[0]!.revoked).toBe(true);
    const ledger = readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8');
    expect(ledger).toContain(`"fingerprint":"${fp}"`);
    expect(ledger).toMatch(/"event":"revoked"/);
  }, 90_000);
});

describe('a camera with a bad link (--sim-faults ber=1e-3), in diag --all', () => {
  it('shows the damaged frames as a problem with what to do, and exits 4', async () => {
    const dataDir = join(root, 'noisy');
    kids.spawn(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '200000', '--sim-faults', 'ber=1e-3', '--data-dir', dataDir, '--metrics', 'off', '--sim-seed', '3'], { persistent: true });
    const until = Date.now() + 90_000;
    let report: { bays: BayRow[] } | undefined;
    let r: CliResult | undefined;
    while (Date.now() < until) {
      r = await kids.run(['diag', '--all', '--data-dir', dataDir, '--json'], { limitMs: 30_000 });
      if (r.code !== null && r.lines.length === 1) {
        report = onlyJson(r) as { bays: BayRow[] };
        expect(report.bays, said(r)).toBeDefined();
        if (report.bays.length === 1 && report.bays[0]!.state === 'done') break;
      }
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(r!.code, said(r!)).toBe(4);
    const bay = report!.bays[0]!;
    expect(bay.state, JSON.stringify(bay)).toBe('done');
    expect(bay.camera, JSON.stringify(bay)).not.toBeNull();
    expect(bay.camera!.link.frameErrors).toBeGreaterThan(0);
    expect(bay.problems.join('\n')).toMatch(/link: [\d.]+% of frames damaged .*reseat the camera/);
  }, 120_000);
});

describe('against `dockside sim` alone: no daemon, the commands open the serial port themselves', () => {
  let sim: SimHandle;
  let ports = '';
  let dataDir = '';
  let serial = '';

  beforeAll(async () => {
    const dir = join(root, 'alone');
    ports = join(dir, 'ports');
    dataDir = join(dir, 'dock');
    sim = await kids.startSim(['--cameras', '1', '--clips', '3', '--dir', join(dir, 'sim'), '--ports-dir', ports, '--mode', 'synthetic', '--clip-bytes', '1500000', '--link-rate', '1500000'], 1, { persistent: true });
    serial = sim.cameras[0]!.serial;
  });

  it('devices and diag --all work without a daemon (diag --all runs a short link test)', async () => {
    const d = await kids.run(['devices', '--data-dir', dataDir, '--ports-dir', ports, '--json']);
    expect(d.code, said(d)).toBe(0);
    expect(onlyJson(d)).toMatchObject({ daemon: false, devices: [{ serial, transport: 'serial', state: 'docked' }] });
    const r = await kids.run(['diag', '--all', '--data-dir', dataDir, '--ports-dir', ports, '--json', '--link-seconds', '0.3'], { limitMs: 30_000 });
    expect(r.code, said(r)).toBe(0);
    const doc = onlyJson(r) as { daemon: boolean; bays: BayRow[] };
    expect(doc.daemon).toBe(false);
    expect(doc.bays).toHaveLength(1);
    expect(doc.bays[0]).toMatchObject({ serial, state: 'docked', problems: [], lastOffloadMs: null });
  });

  it('logs and firmware open the port themselves', async () => {
    const l = await kids.run(['logs', serial, '--ports-dir', ports, '--data-dir', dataDir, '--json']);
    expect(l.code, said(l)).toBe(0);
    expect((onlyJson(l) as { entries: { message: string }[] }).entries.some((e) => e.message.includes('HELLO'))).toBe(true);
    const dir = join(root, 'fw-alone');
    mkdirSync(dir, { recursive: true });
    const wrongModel = await kids.run(['firmware', serial, pack(dir, '5.0.0', VENDOR_KEY, 'Sentinel BC9'), '--ports-dir', ports, '--data-dir', dataDir]);
    expect(wrongModel.code, said(wrongModel)).toBe(4);
    expect(wrongModel.stderr).toMatch(/no vendor firmware key is known for the model "Sentinel BC9"/);
    const ok = await kids.run(['firmware', serial, pack(dir, '4.4.0'), '--ports-dir', ports, '--data-dir', dataDir, '--json'], { limitMs: 60_000 });
    expect(ok.code, said(ok)).toBe(0);
    expect(onlyJson(ok)).toMatchObject({ daemon: false, serial, to: '4.4.0' });
  });

  it('pull in a terminal shows a progress bar per clip, stores every clip, and releases it', async () => {
    const enroll = await kids.run(['enroll', serial, '--yes', '--ports-dir', ports, '--data-dir', dataDir]);
    expect(enroll.code, said(enroll)).toBe(0);
    // `script` gives the command a pseudo-terminal, as a technician's shell would.
    const cmd = [process.execPath, BIN, 'pull', serial, '--ports-dir', ports, '--data-dir', dataDir].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 90_000, env: { ...process.env, DOCKSIDE_LOG_LEVEL: 'warn', COLUMNS: '120' } });
    const out = r.stdout;
    expect(r.status, out + r.stderr).toBe(0);
    expect(out).toMatch(/\|[█░]+\| \d+% [\d.]+ (KiB|MiB) of 1\.43 MiB {2}[\d.]+ (B|KiB|MiB)\/s {2}ETA/); // bar, bytes, rate, ETA
    expect(out).toContain('\x1b['); // drawn with terminal control sequences
    expect(out).toContain(`${serial}: done. 3 pulled now; at this dock: 3 released`);
    const again = await kids.run(['pull', serial, '--ports-dir', ports, '--data-dir', dataDir, '--json']);
    expect(again.code, said(again)).toBe(0);
    expect(onlyJson(again)).toMatchObject({ pulled: 0, clips: { released: 3 } });
    // Without a terminal and without --json: no bar, plain lines.
    const plain = await kids.run(['pull', serial, '--ports-dir', ports, '--data-dir', dataDir]);
    expect(plain.code, said(plain)).toBe(0);
    expect(plain.stdout).not.toContain('\x1b[');
    expect(plain.lines).toEqual([`${serial}: done`, `${serial}: done. 0 pulled now; at this dock: 3 released`]);
  }, 120_000);
});
