// The daemon's Prometheus endpoint and /healthz, scraped over HTTP from a real
// `dockside run` process, as Prometheus and a load balancer would.
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliChildren, onlyJson, type CliResult } from './helpers/cliProcess.js';
import { freePort } from './helpers/s3Server.js';

const kids = new CliChildren();
let root = '';

beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'dockside-metrics-')));
});
afterAll(async () => {
  await kids.killAll();
  if (root) rmSync(root, { recursive: true, force: true });
});

function said(r: CliResult): string {
  return `exit ${String(r.code ?? r.signal)}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** One sample's value from the text exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what} never happened (${String(last)})`);
}

describe('metrics and /healthz of a running daemon', () => {
  let url = '';
  let dataDir = '';

  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    dataDir = join(root, 'dock');
    kids.spawn(['run', '--sim', '2', '--sim-clips', '2', '--sim-mode', 'synthetic', '--sim-clip-bytes', '300000', '--data-dir', dataDir, '--metrics', `127.0.0.1:${port}`], { persistent: true });
    await until('both cameras offloaded', async () => {
      const r = await kids.run(['devices', '--data-dir', dataDir, '--json']);
      const d = r.code === 0 ? (onlyJson(r) as { devices: { state: string }[] }).devices : [];
      return d.length === 2 && d.every((x) => x.state === 'done') ? true : undefined;
    });
  }, 90_000);

  it('/metrics counts what the dock did, under dockside_ names', async () => {
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const clipBytes = 4 * 300_000;
    expect(sample(text, 'dockside_pulled_bytes_total')).toBe(clipBytes);
    expect(sample(text, 'dockside_uploaded_bytes_total')).toBe(clipBytes);
    expect(sample(text, 'dockside_verified_bytes_total')).toBe(clipBytes);
    expect(sample(text, 'dockside_verified_clips_total')).toBe(4);
    expect(sample(text, 'dockside_verify_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'dockside_clips', { state: 'released' })).toBe(4);
    expect(sample(text, 'dockside_clips', { state: 'quarantined' })).toBe(0);
    expect(sample(text, 'dockside_queue_depth')).toBe(0);
    expect(sample(text, 'dockside_bays_serving')).toBe(0);
    expect(text.match(/^dockside_bay_state\{.*state="done"\} 1$/gm)).toHaveLength(2);
    expect(sample(text, 'dockside_process_resident_memory_bytes')).toBeGreaterThan(0);
    // Every sample is ours: nothing unprefixed leaks from the process-wide registry.
    const names = text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]!);
    expect(names.filter((n) => !n.startsWith('dockside_'))).toEqual([]);
  });

  it('/healthz is 200 with the state store, spool and sink checked', async () => {
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; checks: { name: string; ok: boolean }[] };
    expect(body.ok).toBe(true);
    expect(body.checks.map((c) => c.name).sort()).toEqual(['sink', 'spool', 'state-store']);
    expect(body.checks.every((c) => c.ok)).toBe(true);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
  });
});

describe('health and addresses', () => {
  it('/healthz is 503 naming the sink when the evidence store is unusable, and the daemon keeps serving', async () => {
    const port = await freePort();
    const blocker = join(root, 'not-a-dir');
    writeFileSync(blocker, 'a file where the vault should be');
    const dataDir = join(root, 'bad-sink');
    kids.spawn(['run', '--sim', '1', '--sim-clips', '1', '--sim-mode', 'synthetic', '--sim-clip-bytes', '100000', '--data-dir', dataDir, '--sink', `dir:${join(blocker, 'vault')}`, '--metrics', `127.0.0.1:${port}`]);
    const res = await until('a /healthz answer', async () => fetch(`http://127.0.0.1:${port}/healthz`));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] };
    expect(body.ok).toBe(false);
    const sink = body.checks.find((c) => c.name === 'sink')!;
    expect(sink.ok).toBe(false);
    expect(sink.detail).toContain(blocker);
    expect(body.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['sink']);
    await kids.killTransient();
  }, 60_000);

  it('a bad --metrics address is a usage error naming it', async () => {
    const r = await kids.run(['run', '--sim', '1', '--data-dir', join(root, 'x'), '--metrics', 'everywhere', '--until-idle']);
    expect(r.code, said(r)).toBe(2);
    expect(r.stderr).toMatch(/metrics address "everywhere": expected HOST:PORT/);
  });
});
