// The systemd unit in hardware/systemd: the keys an operator relies on are there (and
// the ones that would break node are not), its paths and flags are the program's, the
// daemon answers its stop and reload signals, and the example config passes
// `dockside config check`. (`npm run build` first: the program is run as built.)
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CliChildren, onlyJson } from './helpers/cliProcess.js';

const HERE = fileURLToPath(new URL('../hardware/systemd/', import.meta.url));
const UNIT = join(HERE, 'dockside.service');
const EXAMPLE = join(HERE, 'config.yaml');

type Unit = Map<string, Map<string, string[]>>;

/** systemd's unit syntax, as far as this file uses it: sections, KEY=VALUE, repeated keys, comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const head = /^\[(\w+)\]$/.exec(line);
    if (head) {
      section = new Map();
      unit.set(head[1]!, section);
      return;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv || !section) throw new Error(`line ${i + 1} is not KEY=VALUE inside a section: ${raw}`);
    section.set(kv[1]!, [...(section.get(kv[1]!) ?? []), kv[2]!]);
  });
  return unit;
}

const unit = parseUnit(readFileSync(UNIT, 'utf8'));
const service = unit.get('Service') ?? new Map<string, string[]>();
/** The last value of a key (as systemd takes it), or undefined. */
const value = (key: string): string | undefined => service.get(key)?.at(-1);

function seconds(v: string | undefined): number {
  const m = /^(\d+)\s*(s|sec|min)?$/.exec(v ?? '');
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

const kids = new CliChildren({ DOCKSIDE_METRICS: 'off', DOCKSIDE_LOG_LEVEL: 'info' });
const tmp = realpathSync(mkdtempSync(join(tmpdir(), 'dockside-unit-')));
afterAll(async () => {
  await kids.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('hardware/systemd/dockside.service', () => {
  it('has the sections systemd needs, and is enabled by multi-user.target', () => {
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('runs the daemon as the dockside user, simple type, with the config and data dir the docs name', () => {
    expect(value('Type')).toBe('simple'); // no sd_notify in the daemon
    expect(value('User')).toBe('dockside');
    expect(value('Group')).toBe('dockside');
    expect(value('SupplementaryGroups')?.split(/\s+/).sort()).toEqual(['dialout', 'plugdev']);
    expect(value('ExecStart')).toBe('/usr/bin/node /opt/dockside/bin/dockside.cjs run --config /etc/dockside/config.yaml --data-dir /var/lib/dockside');
    expect(value('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(value('StateDirectory')).toBe('dockside');
    expect(value('StateDirectoryMode')).toBe('0700');
    // /opt/dockside is a copy of the package: the entry point is the package's.
    expect(existsSync(fileURLToPath(new URL('../bin/dockside.cjs', import.meta.url)))).toBe(true);
    // The udev rules hand the cameras to the group the service runs as.
    const rules = readFileSync(fileURLToPath(new URL('../hardware/udev/70-dockside-cameras.rules', import.meta.url)), 'utf8');
    expect(rules).toContain(`GROUP="${value('Group')}"`);
  });

  it('restarts on failure, but not on a bad config, and stops gracefully with time to spare', () => {
    expect(value('Restart')).toBe('on-failure');
    expect(seconds(value('RestartSec'))).toBeGreaterThanOrEqual(1);
    expect(value('RestartPreventExitStatus')?.split(/\s+/)).toContain('2');
    expect(value('KillSignal')).toBe('SIGTERM');
    expect(seconds(value('TimeoutStopSec'))).toBeGreaterThanOrEqual(30);
  });

  it('is hardened, without the settings that would break node or the cameras', () => {
    for (const key of ['ProtectHome', 'PrivateTmp', 'NoNewPrivileges', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectControlGroups', 'LockPersonality', 'RestrictSUIDSGID', 'RestrictRealtime']) {
      expect(value(key), key).toBe('yes');
    }
    expect(value('ProtectSystem')).toBe('strict');
    expect(value('RestrictAddressFamilies')?.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
    expect(value('CapabilityBoundingSet')).toBe('');
    // V8's JIT needs writable-then-executable memory: node aborts under this.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    // A private /dev has no cameras, and never gets the ones docked later.
    expect(value('PrivateDevices') ?? 'no').toBe('no');
    expect(value('DevicePolicy')).toBe('closed');
    const allowed = service.get('DeviceAllow') ?? [];
    for (const cls of ['char-usb_device rw', 'char-ttyACM rw', 'char-ttyUSB rw']) expect(allowed).toContain(cls);
    // The device classes must exist when the unit starts: their drivers are loaded at boot.
    const modules = readFileSync(join(HERE, 'modules-load.conf'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(modules).toEqual(['cdc_acm', 'usbserial']);
    expect(unit.get('Unit')?.get('After')?.join(' ')).toContain('systemd-modules-load.service');
  });

  it('passes systemd-analyze verify where systemd is installed', () => {
    const where = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (where.error) {
      // Not every CI image has systemd; the checks above still hold the unit to its keys.
      console.warn('systemd-analyze is not installed here: the unit was not verified by systemd');
      return;
    }
    // Verify a copy whose node is this one, where node is not /usr/bin/node.
    const copy = join(tmp, 'dockside.service');
    const text = readFileSync(UNIT, 'utf8');
    writeFileSync(copy, existsSync('/usr/bin/node') ? text : text.replaceAll('/usr/bin/node', process.execPath));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    const about = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('dockside.service'));
    expect(about, `${r.stdout}${r.stderr}`).toEqual([]);
  });

  it('its flags are the program\'s: run takes --config and --data-dir', () => {
    const help = execFileSync(process.execPath, [fileURLToPath(new URL('../bin/dockside.cjs', import.meta.url)), 'run', '--help'], { encoding: 'utf8' });
    for (const flag of (value('ExecStart') ?? '').split(/\s+/).filter((w) => w.startsWith('--'))) expect(help).toContain(flag);
  });

  it('the daemon reloads on ExecReload\'s signal and stops on KillSignal, well within TimeoutStopSec', async () => {
    const d = join(tmp, 'data');
    const config = join(tmp, 'config.yaml');
    writeFileSync(config, 'upload:\n  bandwidth: "off"\n');
    const daemon = kids.spawn(['run', '--config', config, '--data-dir', d, '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000']);
    let stderr = '';
    const running = new Promise<void>((resolve) => {
      daemon.stderr!.setEncoding('utf8').on('data', (s: string) => {
        stderr += s;
        if (stderr.includes('"daemon running"')) resolve();
      });
    });
    const exited = once(daemon, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    await Promise.race([running, exited.then(() => Promise.reject(new Error(`the daemon exited before it ran:\n${stderr}`)))]);
    const reload = /^\/bin\/kill -(\w+) \$MAINPID$/.exec(value('ExecReload') ?? '');
    expect(reload).not.toBeNull();
    daemon.kill(`SIG${reload![1]!}` as NodeJS.Signals);
    await new Promise((r) => setTimeout(r, 500));
    expect(daemon.exitCode, stderr).toBeNull();
    const t0 = Date.now();
    daemon.kill(value('KillSignal') as NodeJS.Signals);
    const [code, signal] = await exited;
    expect({ code, signal }, stderr).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan((seconds(value('TimeoutStopSec')) * 1000) / 3);
  });
});

describe('hardware/systemd/config.yaml', () => {
  it('passes dockside config check, and names the data dir the unit passes', async () => {
    const r = await kids.run(['config', 'check', EXAMPLE, '--json']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const doc = onlyJson(r) as { format: string; config: { dataDir: string; metrics: string }; fromFile: string[] };
    expect(doc.format).toBe('yaml');
    expect(value('ExecStart')).toContain(`--data-dir ${doc.config.dataDir}`);
    expect(value('ExecStart')).toContain('--config /etc/dockside/config.yaml');
    expect(doc.config.metrics).toMatch(/^127\.0\.0\.1:/); // metrics have no authentication: loopback
  });
});
