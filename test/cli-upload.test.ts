// `dockside run` with an S3 sink and `dockside queue`, as a user runs them (the built
// binary), against a real S3-compatible server process. The "done means".
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar } from '../src/custody/sidecar.js';
import { CliChildren } from './helpers/cliProcess.js';
import { startFaultProxy, type FaultProxy } from './helpers/s3FaultProxy.js';
import { fetchObject, startS3Server, stopAll, type S3Server } from './helpers/s3Server.js';

// The standard AWS environment carries the credentials, as on a real dock.
const children = new CliChildren({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' });
const dirs: string[] = [];
let server: S3Server;
let proxy: FaultProxy;

beforeAll(async () => {
  server = await startS3Server({ buckets: ['evidence'] });
  proxy = await startFaultProxy(server.endpoint);
});
afterEach(async () => {
  await children.killAll();
  proxy.mode = 'pass';
});
afterAll(async () => {
  await proxy?.close();
  await stopAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'dockside-cli-upload-'));
  dirs.push(d);
  return d;
};
const lastJson = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function until<T>(what: string, probe: () => Promise<T | undefined>, limitMs = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Listing {
  daemon: boolean;
  status: { hold: { kind: string } | null; failed: number; waiting: number };
  bandwidth: { rate: number | null } | null;
  clips: { serial: string; clipId: string; state: string; reason: string | null }[];
}

describe('dockside run --sink s3://', () => {
  it('--sim 3 --sim-clips 4 against a running S3 server: 12 stored and released; the objects, fetched by plain HTTP, hash to their sidecars', async () => {
    const d = tmp();
    const copy = tmp(); // what `aws s3 sync s3://evidence/dock1 copy` would make
    const r = await children.run(['run', '--sim', '3', '--sim-clips', '4', '--data-dir', d, '--sink', 's3://evidence/dock1', '--s3-endpoint', server.endpoint, '--until-idle', '--json'], { limitMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    const summary = lastJson(r.stdout);
    expect(summary).toMatchObject({ cameras: 3, clips: 12, stored: 12, released: 12, failed: 0, quarantined: 0 });
    const q = await children.run(['queue', 'list', '--all', '--data-dir', d, '--json']);
    expect(q.code, q.stderr).toBe(0);
    const listing = JSON.parse(q.stdout) as Listing;
    expect(listing.daemon).toBe(false);
    expect(listing.clips).toHaveLength(12);
    for (const c of listing.clips) {
      expect(c.state).toBe('released');
      const sidecarBytes = await fetchObject(server.endpoint, 'evidence', `dock1/${c.serial}/${c.clipId}.json`);
      const sidecar = JSON.parse(sidecarBytes.toString('utf8')) as Sidecar;
      const clip = await fetchObject(server.endpoint, 'evidence', `dock1/${c.serial}/${c.clipId}.mp4`);
      expect(sha(clip)).toBe(sidecar.manifest.sha256);
      expect(sidecar.custody.map((e) => e.event)).toEqual(expect.arrayContaining(['stored', 'released']));
      mkdirSync(join(copy, c.serial), { recursive: true });
      writeFileSync(join(copy, c.serial, `${c.clipId}.json`), sidecarBytes);
      writeFileSync(join(copy, c.serial, `${c.clipId}.mp4`), clip);
    }

    // Offline custody: the ledger alone says the clips are remote; a copy of the bucket verifies whole.
    const ledgerOnly = await children.run(['custody', 'verify', '--data-dir', d, '--json']);
    expect(ledgerOnly.code, ledgerOnly.stdout).toBe(0);
    expect(JSON.parse(ledgerOnly.stdout)).toMatchObject({ ok: true, remote: { clips: 12, sinks: ['s3://evidence/dock1'] }, objects: { checked: 0 } });
    const withCopy = await children.run(['custody', 'verify', '--data-dir', d, '--vault', copy, '--json']);
    expect(withCopy.code, withCopy.stdout).toBe(0);
    expect(JSON.parse(withCopy.stdout)).toMatchObject({ ok: true, remote: { clips: 0 }, objects: { checked: 12, problems: [] }, released: 12 });
    const victim = listing.clips[5]!;
    const path = join(copy, victim.serial, `${victim.clipId}.mp4`);
    const bytes = readFileSync(path);
    bytes[1000] = bytes[1000]! ^ 0x01;
    writeFileSync(path, bytes);
    const tampered = await children.run(['custody', 'verify', '--data-dir', d, '--vault', copy, '--json']);
    expect(tampered.code).toBe(4);
    expect(JSON.parse(tampered.stdout)).toMatchObject({ ok: false, objects: { problems: [{ serial: victim.serial, clipId: victim.clipId }] } });
  });

  it('a refusing store: `queue` through the running daemon lists the failed clips, `queue retry --all` once it is fixed stores and releases them; pause and resume', async () => {
    const d = tmp();
    proxy.mode = { status: 403, code: 'AccessDenied', message: 'Access Denied' };
    const daemon = children.spawn(['run', '--sim', '1', '--sim-clips', '2', '--sim-mode', 'synthetic', '--sim-clip-bytes', '50000', '--data-dir', d, '--sink', 's3://evidence/refused', '--s3-endpoint', proxy.endpoint]);
    let stderr = '';
    daemon.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const list = async (): Promise<Listing | undefined> => {
      const r = await children.run(['queue', 'list', '--data-dir', d, '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as Listing) : undefined;
    };
    const failed = await until('two failed clips', async () => {
      const l = await list();
      return l && l.status.failed === 2 ? l : undefined;
    });
    expect(failed.daemon).toBe(true);
    expect(failed.clips.map((c) => c.state)).toEqual(['failed', 'failed']);
    expect(failed.clips[0]!.reason).toMatch(/SINK_REFUSED.*AccessDenied/);
    expect(stderr).toMatch(/"alert":"clip-failed"/);

    const human = await children.run(['queue', '--data-dir', d]);
    expect(human.stdout).toMatch(/upload queue: running, 0 of 3 slots busy/);
    expect(human.stdout).toMatch(/failed\s+.*SINK_REFUSED/);

    const paused = await children.run(['queue', 'pause', '--reason', 'store maintenance', '--data-dir', d, '--json']);
    expect(JSON.parse(paused.stdout)).toMatchObject({ hold: { kind: 'operator', reason: 'store maintenance' }, daemon: true });
    expect((await list())!.status.hold).toMatchObject({ kind: 'operator' });

    proxy.mode = 'pass';
    const retry = await children.run(['queue', 'retry', '--all', '--data-dir', d, '--json']);
    expect(retry.code, retry.stderr).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ daemon: true, retried: [{ state: 'verified' }, { state: 'verified' }] });
    await new Promise((r) => setTimeout(r, 500));
    expect((await list())!.clips.map((c) => c.state)).toEqual(['verified', 'verified']); // paused: nothing goes

    const resumed = await children.run(['queue', 'resume', '--data-dir', d, '--json']);
    expect(JSON.parse(resumed.stdout)).toEqual({ hold: null, daemon: true });
    await until('both stored and released', async () => {
      const r = await children.run(['queue', 'list', '--all', '--data-dir', d, '--json']);
      const l = JSON.parse(r.stdout) as Listing;
      return l.clips.length === 2 && l.clips.every((c) => c.state === 'released') ? true : undefined;
    });
    daemon.kill('SIGTERM');
  });

  it('`queue retry` of an unknown clip, and a bad --bwlimit, are usage errors that say what is wrong', async () => {
    const d = tmp();
    const nowhere = await children.run(['queue', 'pause', '--data-dir', join(d, 'typo'), '--json']);
    expect(nowhere.code).toBe(2);
    expect(JSON.parse(nowhere.stdout)).toMatchObject({ error: { code: 'CLI_USAGE', message: expect.stringContaining('not a dock data directory') } });
    expect(existsSync(join(d, 'typo'))).toBe(false); // nothing was created
    await children.run(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--data-dir', d, '--until-idle', '--json']);
    const retry = await children.run(['queue', 'retry', 'C404', '--data-dir', d, '--json']);
    expect(retry.code).toBe(2);
    expect(JSON.parse(retry.stdout)).toMatchObject({ error: { code: 'CLI_USAGE', message: expect.stringContaining('no clip C404') } });
    const bw = await children.run(['run', '--sim', '1', '--data-dir', d, '--bwlimit', '25:00,1M', '--until-idle', '--json']);
    expect(bw.code).toBe(2);
    expect(JSON.parse(bw.stdout.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'CONFIG_INVALID', message: expect.stringContaining('25:00') } });
  });

  it('credentials from the config file never reach the log, even at debug level with the store refusing them', async () => {
    const d = tmp();
    const config = join(d, 'dock.json');
    writeFileSync(config, JSON.stringify({ sink: 's3://evidence/secret', s3: { endpoint: proxy.endpoint, accessKeyId: 'AKIDPLANTED0001', secretAccessKey: 'PLANTED/SECRET+KEY-do-not-log' } }));
    const quiet = new CliChildren({ DOCKSIDE_LOG_LEVEL: 'debug', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' });
    try {
      const r = await quiet.run(['run', '--config', config, '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--data-dir', d, '--until-idle', '--json'], { limitMs: 60_000 });
      expect(r.code).toBe(1);
      // s3rver itself refuses the planted key (on the first request, a HEAD: no reason in the answer)
      expect(lastJson(r.stdout)).toMatchObject({ failed: 1, failures: [{ reason: expect.stringMatching(/SINK_REFUSED: .*HTTP 403 Forbidden.*check the credentials/) }] });
      expect(r.stderr).toMatch(/"alert":"clip-failed"/);
      expect(r.stderr + r.stdout).not.toContain('PLANTED/SECRET');
      expect(readFileSync(join(d, 'ledger.jsonl'), 'utf8')).not.toContain('PLANTED/SECRET');
    } finally {
      await quiet.killAll();
    }
  });

  it('a data dir whose control socket path is too long: a clear error, and the process exits', async () => {
    const d = join(tmp(), 'x'.repeat(100));
    const r = await children.run(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--data-dir', d, '--until-idle', '--json'], { limitMs: 30_000 });
    expect(r.killed).toBe(false);
    expect(r.code).toBe(2);
    expect(lastJson(r.stdout)).toMatchObject({ error: { code: 'CONFIG_INVALID', message: expect.stringContaining('longer than the 107') } });
  });

  it('SIGHUP reloads the bandwidth timetable from the config file while running', async () => {
    const d = tmp();
    const config = join(d, 'dock.json');
    writeFileSync(config, JSON.stringify({ upload: { bandwidth: 'off' } }));
    const daemon = children.spawn(['run', '--config', config, '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '10000', '--data-dir', d]);
    const rate = async (): Promise<number | null | undefined> => {
      const r = await children.run(['queue', 'list', '--data-dir', d, '--json']);
      if (r.code !== 0) return undefined;
      const l = JSON.parse(r.stdout) as Listing;
      return l.daemon ? (l.bandwidth?.rate ?? null) : undefined;
    };
    expect(await until('the daemon answering', async () => ((await rate()) === undefined ? undefined : await rate()))).toBeNull();
    writeFileSync(config, JSON.stringify({ upload: { bandwidth: '2M' } }));
    daemon.kill('SIGHUP');
    expect(await until('the new rate', async () => ((await rate()) === 2 * 1024 * 1024 ? 2 * 1024 * 1024 : undefined))).toBe(2 * 1024 * 1024);
    writeFileSync(config, JSON.stringify({ upload: { bandwidth: 'nonsense' } }));
    daemon.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    expect(await rate()).toBe(2 * 1024 * 1024); // a bad file is refused; the running settings stay
    daemon.kill('SIGTERM');
  });
});
