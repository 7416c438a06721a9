// The dock's security claims (docs/security.md), each checked the way an attacker or
// an auditor would look: an unenrolled or revoked camera gets nothing stored; the
// control socket is 0600 and the kernel refuses another uid; metrics listen on
// loopback unless told otherwise (and warn when told); secrets from the environment
// never reach a log or the data dir, even at debug level with the store refusing
// them. The config-file secret is checked in test/cli-upload.test.ts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { controlSocketPath } from '../src/control/ControlServer.js';
import type { LedgerEntry } from '../src/custody/Ledger.js';
import { Daemon } from '../src/ingest/Daemon.js';
import { METRICS_DEFAULT, parseMetricsAddress } from '../src/observability/Metrics.js';
import { BIN, CliChildren } from './helpers/cliProcess.js';
import { hostileCamera, manifestFor } from './helpers/hostileCamera.js';
import { startS3Server, stopAll } from './helpers/s3Server.js';
import { filesUnder } from './helpers/files.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'dockside-security-'));
  dirs.push(d);
  return d;
};
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(async () => {
  await stopAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('security: a camera the dock does not trust', () => {
  it('unenrolled, or enrolled and revoked: refused after HELLO (INGEST_UNENROLLED in the ledger), never asked for a clip, nothing spooled or stored', async () => {
    const dataDir = tmp();
    const clips = (s: string) => {
      const bytes = Buffer.alloc(5000, 3);
      return [{ id: 'c1', bytes, manifest: manifestFor(s, 'c1', 1, bytes) }];
    };
    const stranger = hostileCamera('NOT-ENROLLED-1', clips);
    const revoked = hostileCamera('REVOKED-0001', clips);
    const daemon = await Daemon.open({ dataDir, hashThreads: 1, spool: { minFreeBytes: 1024 * 1024 }, candidates: [stranger.candidate, revoked.candidate] });
    try {
      daemon.store.enroll(revoked.serial, 'Scripted', revoked.publicKeyRaw);
      expect(daemon.store.revoke(revoked.serial)).toBe(true);
      await daemon.start();
      for (let i = 0; i < 200 && !daemon.bays.every((b) => b.state === 'refused'); i++) await new Promise((r) => setTimeout(r, 20));
      expect(daemon.bays.map((b) => [b.serial, b.state, b.error?.code])).toEqual([
        [stranger.serial, 'refused', 'INGEST_UNENROLLED'],
        [revoked.serial, 'refused', 'INGEST_UNENROLLED'],
      ]);
      expect(daemon.store.clips()).toEqual([]);
    } finally {
      await daemon.close();
    }
    // The camera side: it was asked who it is, and nothing else (no AUTH, no listing, no READ, no RELEASE).
    expect(stranger.requests.map((r) => r.name)).toEqual(['HELLO']);
    expect(revoked.requests.map((r) => r.name)).toEqual(['HELLO']);
    const ledger = readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LedgerEntry);
    const refused = ledger.filter((e) => e.event === 'refused');
    expect(refused.map((e) => [e.serial, e.details['code']])).toEqual([
      [stranger.serial, 'INGEST_UNENROLLED'],
      [revoked.serial, 'INGEST_UNENROLLED'],
    ]);
    expect(refused.map((e) => String(e.details['reason']))).toEqual([expect.stringContaining('is not enrolled; nothing is taken from it'), expect.stringContaining('is revoked; nothing is taken from it')]);
    expect(ledger.filter((e) => ['listed', 'pulled', 'verified', 'stored', 'released', 'docked'].includes(e.event))).toEqual([]);
    for (const part of ['spool', 'quarantine', 'vault']) expect(filesUnder(join(dataDir, part)), part).toEqual([]);
  });
});

describe('security: the control socket', () => {
  it('is a socket of mode 0600 owned by the daemon user; the kernel refuses a connection from another uid (and allows it once the mode allows it)', async () => {
    expect(process.getuid?.(), 'this check switches to uid 65534 (nobody) for the connecting side, which needs root; CI runs as root').toBe(0);
    const dataDir = join(tmp(), 'data');
    const daemon = await Daemon.open({ dataDir, hashThreads: 1, candidates: [], metrics: 'off' });
    try {
      await daemon.start();
      const sock = controlSocketPath(dataDir);
      const st = statSync(sock);
      expect(st.isSocket()).toBe(true);
      expect((st.mode & 0o777).toString(8)).toBe('600');
      expect(st.uid).toBe(process.getuid!());
      // Open every directory on the way, so that only the socket's own mode can stand in the way.
      chmodSync(join(dataDir, '..'), 0o755);
      chmodSync(dataDir, 0o755);
      const asNobody = (): Promise<string> =>
        new Promise((resolve, reject) => {
          const script = `const c=require('net').connect(${JSON.stringify(sock)});c.on('error',e=>{console.log(e.code);process.exit(0)});c.on('connect',()=>{c.write('{"id":1,"method":"status"}\\n')});c.on('data',d=>{console.log('ANSWERED',JSON.parse(String(d).split('\\n')[0]).ok);process.exit(0)})`;
          const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
          children.push(child);
          let out = '';
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
          child.once('error', reject);
          child.once('exit', () => resolve(out.trim()));
        });
      expect(await asNobody()).toBe('EACCES');
      // The control: the same connection with the mode opened up is served, so the refusal above was the mode's.
      chmodSync(sock, 0o666);
      expect(await asNobody()).toBe('ANSWERED true');
      chmodSync(sock, 0o600);
      expect(await asNobody()).toBe('EACCES');
    } finally {
      await daemon.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Metrics: what the daemon process really listens on, read from the kernel (/proc/PID/net/tcp*).

/** host:port of every TCP socket in LISTEN that the process `pid` holds. */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const row of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f[3] !== '0A' || !inodes.has(f[9]!)) continue; // 0A: LISTEN
      const [addr, port] = f[1]!.split(':') as [string, string];
      const bytes = Buffer.from(addr, 'hex');
      for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse(); // each 32-bit word is host order
      const host = table === 'tcp' ? [...bytes].join('.') : bytes.every((b) => b === 0) ? '::' : bytes.subarray(0, 15).every((b) => b === 0) && bytes[15] === 1 ? '::1' : bytes.toString('hex');
      out.push(`${host}:${parseInt(port, 16)}`);
    }
  }
  return out.sort();
}

/** unshare(1) can give a child a network namespace of its own (root, CAP_SYS_ADMIN). */
const NETNS = spawnSync('unshare', ['--net', 'true']).status === 0;

/**
 * Starts `dockside run` with one simulated camera and `env` (no DOCKSIDE_METRICS unless
 * given), in its own network namespace when it can, so that the default port is free
 * whatever else runs on this machine; resolves once metrics are served or refused.
 */
async function runDaemon(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; stderr: () => string }> {
  const base: NodeJS.ProcessEnv = { ...process.env, DOCKSIDE_LOG_LEVEL: 'info', ...env };
  if (!('DOCKSIDE_METRICS' in env)) delete base['DOCKSIDE_METRICS'];
  const dockside = [BIN, 'run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--data-dir', join(tmp(), 'data'), ...args];
  const child = NETNS ? spawn('unshare', ['--net', '--', process.execPath, ...dockside], { env: base, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, dockside, { env: base, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  for (let i = 0; i < 300 && !/metrics and \/healthz served|metrics are not served/.test(stderr) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  if (!/metrics and \/healthz served/.test(stderr)) throw new Error(`the daemon did not serve metrics:\n${stderr}`);
  return { child, stderr: () => stderr };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

describe('security: metrics listen on loopback by default', () => {
  it('the default address is loopback', () => {
    expect(parseMetricsAddress(METRICS_DEFAULT)).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it(
    '`dockside run` with no metrics setting at all listens on 127.0.0.1:9464 and nowhere else',
    async () => {
      if (!NETNS) {
        // Without a namespace of its own, the default port must be free on this machine.
        const probe = spawnSync(process.execPath, ['-e', "require('net').createServer().listen(9464,'127.0.0.1',function(){this.close()}).on('error',()=>process.exit(3))"]);
        expect(probe.status, 'port 9464 is taken on this machine and unshare(1) cannot give the daemon a network namespace: free the port or run as root').toBe(0);
      }
      const { child } = await runDaemon([]);
      expect(listeningSockets(child.pid!)).toEqual(['127.0.0.1:9464']);
      await stop(child);
    },
    30_000,
  );

  it(
    'an explicit loopback address with a free port: every socket the daemon listens on is on loopback',
    async () => {
      const { child } = await runDaemon(['--metrics', '127.0.0.1:0']);
      const sockets = listeningSockets(child.pid!);
      expect(sockets).toHaveLength(1);
      expect(sockets[0]).toMatch(/^127\.0\.0\.1:\d+$/);
      await stop(child);
    },
    30_000,
  );

  it(
    'told to bind 0.0.0.0 (DOCKSIDE_METRICS), it does, and warns that it serves beyond loopback without authentication',
    async () => {
      const { child, stderr } = await runDaemon([], { DOCKSIDE_METRICS: '0.0.0.0:0' });
      expect(listeningSockets(child.pid!)).toEqual([expect.stringMatching(/^0\.0\.0\.0:\d+$/)]);
      const warn = stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['level'] === 40 && String(l['msg']).includes('beyond loopback'));
      expect(warn).toMatchObject({ metrics: '0.0.0.0:0', msg: expect.stringContaining('without authentication') });
      await stop(child);
    },
    30_000,
  );
});

describe('security: no secret reaches a log', () => {
  it(
    'credentials from the environment (the AWS chain), at debug level, with the store refusing them: not in stdout, stderr, the ledger or any file of the data dir',
    async () => {
      const server = await startS3Server({ buckets: ['evidence'] });
      const secret = 'PLANTED-ENV/SECRET+KEY-never-log-0001';
      const sessionToken = 'PLANTED-ENV-SESSION-TOKEN-0001';
      const kids = new CliChildren({ DOCKSIDE_LOG_LEVEL: 'debug', AWS_ACCESS_KEY_ID: 'AKIDPLANTEDENV0001', AWS_SECRET_ACCESS_KEY: secret, AWS_SESSION_TOKEN: sessionToken, AWS_REGION: 'us-east-1' });
      try {
        const d = tmp();
        const config = join(d, 'dock.json');
        writeFileSync(config, JSON.stringify({ sink: 's3://evidence/clips', s3: { endpoint: server.endpoint, pathStyle: true } }));
        const r = await kids.run(['run', '--config', config, '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--data-dir', join(d, 'data'), '--until-idle', '--json'], { limitMs: 60_000 });
        // The store refused the unknown key: the clip failed, kept; the run says so.
        expect(r.code, r.stderr).toBe(1);
        expect(r.stdout).toMatch(/SINK_REFUSED/);
        // The error path was logged (with the store's answer), where a credential would most likely leak.
        expect(r.stderr).toMatch(/"alert":"clip-failed".*HTTP 403 Forbidden.*check the credentials/);
        for (const planted of [secret, sessionToken]) {
          expect(r.stdout + r.stderr).not.toContain(planted);
          for (const f of filesUnder(join(d, 'data'))) expect(readFileSync(join(d, 'data', f)).includes(planted), f).toBe(false);
        }
        // The config check shows where credentials come from, never the environment's values.
        const check = await kids.run(['config', 'check', config, '--json']);
        expect(check.stdout + check.stderr).not.toContain(secret);
      } finally {
        await kids.killAll();
        await server.stop();
      }
    },
    90_000,
  );
});
