import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { rejection } from '../../test/helpers/rejection.js';
import { DockError } from '../errors.js';
import type { Logger } from '../log.js';
import { METRICS_DEFAULT, Metrics, parseMetricsAddress, type HealthReport, type MetricsSource } from './Metrics.js';

/** A source the test changes between scrapes; a field set to an Error makes that method throw it. */
interface FakeState {
  clips: Record<string, number> | Error;
  queue: ReturnType<MetricsSource['queue']> | Error;
  bays: ReturnType<MetricsSource['bays']> | Error;
  health: () => Promise<HealthReport>;
}

function fakeSource(state: FakeState): MetricsSource {
  const value = <T>(v: T | Error): T => {
    if (v instanceof Error) throw v;
    return v;
  };
  return {
    clipsByState: () => value(state.clips),
    queue: () => value(state.queue),
    bays: () => value(state.bays),
    health: () => state.health(),
  };
}

function defaultState(): FakeState {
  return {
    clips: { listed: 0, verified: 2, stored: 5 },
    queue: { waiting: 2, inFlight: 1, hold: null },
    bays: [
      { bay: 'sim:CAM1:a', serial: 'CAM1', state: 'pulling', serving: true },
      { bay: 'sim:CAM2:a', serial: null, state: 'connecting', serving: true },
      { bay: 'sim:CAM3:a', serial: 'CAM3', state: 'done', serving: false },
    ],
    health: () => Promise.resolve({ ok: true, checks: [{ name: 'spool', ok: true, detail: 'fine' }] }),
  };
}

/** A logger whose lines the test can read. */
function capturingLogger(): { log: Logger; lines: { level: number; msg: string; [k: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString('utf8')) as { level: number; msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

/** `name{labels}` → value, from the text exposition (comment lines skipped). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Metric names that have a HELP line. */
function helped(text: string): Set<string> {
  return new Set([...text.matchAll(/^# HELP (\S+) /gm)].map((m) => m[1]!));
}

const open: Metrics[] = [];

async function serve(state: FakeState = defaultState(), opts: ConstructorParameters<typeof Metrics>[1] = {}): Promise<{ m: Metrics; url: string }> {
  const m = new Metrics(fakeSource(state), opts);
  open.push(m);
  const url = await m.listen({ host: '127.0.0.1', port: 0 });
  return { m, url };
}

async function scrape(url: string): Promise<{ text: string; s: Map<string, number> }> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, s: samples(text) };
}

afterEach(async () => {
  for (const m of open.splice(0)) await m.close();
});

describe('parseMetricsAddress', () => {
  it('takes an IPv4 address, a bracketed IPv6 address or localhost with a port, and off', () => {
    expect(parseMetricsAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseMetricsAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseMetricsAddress('localhost:9464')).toEqual({ host: 'localhost', port: 9464 });
    expect(parseMetricsAddress('0.0.0.0:9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseMetricsAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseMetricsAddress('off')).toBe('off');
    expect(parseMetricsAddress(METRICS_DEFAULT)).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it.each(['', '9464', ':9464', '127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', '127.0.0.1:94x4', '256.0.0.1:9464', 'dock1.example:9464', '::1:9464', '[127.0.0.1]:9464', '[::1]', '[::1:9464', 'http://127.0.0.1:9464', ' 127.0.0.1:9464', 'on'])(
    'refuses %j with CONFIG_INVALID, naming the value and the expected form',
    (spec) => {
      let err: unknown;
      try {
        parseMetricsAddress(spec);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DockError);
      expect((err as DockError).code).toBe('CONFIG_INVALID');
      expect((err as DockError).message).toContain(JSON.stringify(spec));
      expect((err as DockError).message).toContain('HOST:PORT');
      expect((err as DockError).message).toContain('off');
    },
  );
});

describe('GET /metrics', () => {
  it('serves every dockside metric, with HELP, in the registry content type, and the default metrics with the dockside_ prefix', async () => {
    const { m, url } = await serve();
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(m.registry.contentType);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const names = helped(await res.text());
    for (const name of [
      'dockside_pulled_bytes_total',
      'dockside_uploaded_bytes_total',
      'dockside_verified_bytes_total',
      'dockside_verified_clips_total',
      'dockside_verify_seconds_total',
      'dockside_upload_retries_total',
      'dockside_link_errors_total',
      'dockside_quarantined_total',
      'dockside_alerts_total',
      'dockside_clips',
      'dockside_queue_depth',
      'dockside_queue_in_flight',
      'dockside_queue_hold',
      'dockside_bay_state',
      'dockside_bays_serving',
      'dockside_process_cpu_user_seconds_total',
      'dockside_nodejs_heap_size_used_bytes',
      'dockside_nodejs_eventloop_lag_seconds',
    ]) {
      expect(names, name).toContain(name);
    }
    expect([...names].filter((n) => !n.startsWith('dockside_'))).toEqual([]);
  });

  it('uses its own registry: two instances in one process do not collide', async () => {
    const a = await serve();
    const b = await serve();
    a.m.addPulled(10);
    expect((await scrape(a.url)).s.get('dockside_pulled_bytes_total')).toBe(10);
    expect((await scrape(b.url)).s.get('dockside_pulled_bytes_total')).toBe(0);
  });

  it('counts what add*() reports', async () => {
    const { m, url } = await serve();
    const before = (await scrape(url)).s;
    expect(before.get('dockside_pulled_bytes_total')).toBe(0);
    expect(before.get('dockside_verified_clips_total')).toBe(0);

    m.addPulled(1000);
    m.addPulled(24);
    m.addUploaded(512);
    m.addVerified(4096, 0.5);
    m.addVerified(4096, 0.25);
    m.addRetry('unavailable');
    m.addRetry('unavailable');
    m.addRetry('write');
    m.addLinkErrors('CAM1', 3);
    m.addLinkErrors('CAM1', 2);
    m.addLinkErrors('CAM2', 0);
    m.addQuarantined();
    m.addAlert('spool-full');

    const s = (await scrape(url)).s;
    expect(s.get('dockside_pulled_bytes_total')).toBe(1024);
    expect(s.get('dockside_uploaded_bytes_total')).toBe(512);
    expect(s.get('dockside_verified_bytes_total')).toBe(8192);
    expect(s.get('dockside_verify_seconds_total')).toBe(0.75);
    expect(s.get('dockside_verified_clips_total')).toBe(2);
    expect(s.get('dockside_upload_retries_total{kind="unavailable"}')).toBe(2);
    expect(s.get('dockside_upload_retries_total{kind="write"}')).toBe(1);
    expect(s.get('dockside_link_errors_total{serial="CAM1"}')).toBe(5);
    expect(s.get('dockside_link_errors_total{serial="CAM2"}')).toBe(0);
    expect(s.get('dockside_quarantined_total')).toBe(1);
    expect(s.get('dockside_alerts_total{kind="spool-full"}')).toBe(1);
  });

  it('drops and logs a negative or non-finite amount instead of throwing into the caller', async () => {
    const { log, lines } = capturingLogger();
    const { m, url } = await serve(defaultState(), { log });
    m.addPulled(100);
    expect(() => m.addPulled(-1)).not.toThrow();
    expect(() => m.addPulled(Number.NaN)).not.toThrow();
    expect(() => m.addVerified(10, Number.POSITIVE_INFINITY)).not.toThrow();
    const s = (await scrape(url)).s;
    expect(s.get('dockside_pulled_bytes_total')).toBe(100);
    expect(s.get('dockside_verified_bytes_total')).toBe(0); // all or nothing: the bytes of that call were dropped too
    expect(s.get('dockside_verified_clips_total')).toBe(0);
    expect(lines.filter((l) => l.msg === 'metric update dropped').map((l) => l['metric'])).toEqual(['addPulled', 'addPulled', 'addVerified']);
  });

  it('reads the gauges from the source at each scrape', async () => {
    const state = defaultState();
    const { url } = await serve(state);
    let s = (await scrape(url)).s;
    expect(s.get('dockside_clips{state="listed"}')).toBe(0);
    expect(s.get('dockside_clips{state="verified"}')).toBe(2);
    expect(s.get('dockside_clips{state="stored"}')).toBe(5);
    expect(s.get('dockside_queue_depth')).toBe(2);
    expect(s.get('dockside_queue_in_flight')).toBe(1);
    expect([...s.keys()].filter((k) => k.startsWith('dockside_queue_hold'))).toEqual([]);
    expect(s.get('dockside_bay_state{bay="sim:CAM1:a",serial="CAM1",state="pulling"}')).toBe(1);
    expect(s.get('dockside_bay_state{bay="sim:CAM2:a",serial="",state="connecting"}')).toBe(1);
    expect(s.get('dockside_bay_state{bay="sim:CAM3:a",serial="CAM3",state="done"}')).toBe(1);
    expect(s.get('dockside_bays_serving')).toBe(2);

    state.clips = { verified: 1, stored: 6 };
    state.queue = { waiting: 0, inFlight: 0, hold: { reason: 'store-unreachable' } };
    state.bays = [{ bay: 'sim:CAM1:a', serial: 'CAM1', state: 'finishing', serving: true }];
    s = (await scrape(url)).s;
    expect(s.get('dockside_clips{state="stored"}')).toBe(6);
    expect(s.has('dockside_clips{state="listed"}')).toBe(false); // no longer in the source: gone, not stale
    expect(s.get('dockside_queue_depth')).toBe(0);
    expect(s.get('dockside_queue_in_flight')).toBe(0);
    expect(s.get('dockside_queue_hold{reason="store-unreachable"}')).toBe(1);
    expect([...s.keys()].filter((k) => k.startsWith('dockside_bay_state'))).toEqual(['dockside_bay_state{bay="sim:CAM1:a",serial="CAM1",state="finishing"}']);
    expect(s.get('dockside_bays_serving')).toBe(1);

    state.queue = { waiting: 3, inFlight: 2, hold: null };
    s = (await scrape(url)).s;
    expect([...s.keys()].filter((k) => k.startsWith('dockside_queue_hold'))).toEqual([]);
  });

  it('a source that throws loses only its own gauges from the scrape, counted and logged once', async () => {
    const state = defaultState();
    const { log, lines } = capturingLogger();
    const { m, url } = await serve(state, { log });
    m.addPulled(7);
    state.clips = new Error('database is locked');
    state.queue = new Error('queue closed');

    for (let i = 0; i < 2; i++) {
      const { text, s } = await scrape(url);
      expect(helped(text)).toContain('dockside_clips');
      expect([...s.keys()].filter((k) => k.startsWith('dockside_clips'))).toEqual([]);
      // absent, not a misleading 0
      expect(s.has('dockside_queue_depth')).toBe(false);
      expect(s.has('dockside_queue_in_flight')).toBe(false);
      expect(s.get('dockside_pulled_bytes_total')).toBe(7);
      expect(s.get('dockside_bays_serving')).toBe(2);
      expect(s.get('dockside_scrape_errors_total{metric="dockside_clips"}')).toBe(i + 1);
      expect(s.get('dockside_scrape_errors_total{metric="dockside_queue_depth"}')).toBe(i + 1);
    }
    const warned = lines.filter((l) => l.msg === 'metric source failed; left out of the scrape');
    expect(warned.map((l) => [l['metric'], l['err']]).sort()).toEqual([
      ['dockside_clips', 'database is locked'],
      ['dockside_queue_depth', 'queue closed'],
      ['dockside_queue_hold', 'queue closed'],
      ['dockside_queue_in_flight', 'queue closed'],
    ]);

    state.clips = { stored: 1 };
    const s = (await scrape(url)).s;
    expect(s.get('dockside_clips{state="stored"}')).toBe(1);
    expect(lines.some((l) => l.msg === 'metric source readable again' && l['metric'] === 'dockside_clips')).toBe(true);
  });

  it('answers HEAD with the headers and no body', async () => {
    const { m, url } = await serve();
    const res = await fetch(`${url}/metrics`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(m.registry.contentType);
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(100);
    expect(await res.text()).toBe('');
  });
});

describe('GET /healthz', () => {
  it('is 200 with the report when every check is ok', async () => {
    const { url } = await serve();
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ ok: true, checks: [{ name: 'spool', ok: true, detail: 'fine' }] });
  });

  it('is 503 with the report when a check fails, for GET and HEAD', async () => {
    const state = defaultState();
    const report: HealthReport = {
      ok: false,
      checks: [
        { name: 'spool', ok: true, detail: 'fine' },
        { name: 'sink', ok: false, detail: 's3://evidence unreachable: ECONNREFUSED' },
      ],
    };
    state.health = () => Promise.resolve(report);
    const { url } = await serve(state);
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual(report);
    const head = await fetch(`${url}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(503);
    expect(await head.text()).toBe('');
  });

  it('is 503, not a 500 or a hang, when health() rejects or never settles', async () => {
    const state = defaultState();
    state.health = () => Promise.reject(new Error('store closed'));
    const { url } = await serve(state, { healthTimeoutMs: 200 });
    let res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as HealthReport).checks).toEqual([{ name: 'health', ok: false, detail: 'the health checks failed: store closed' }]);

    state.health = () => new Promise<HealthReport>(() => undefined);
    const t0 = Date.now();
    res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(((await res.json()) as HealthReport).checks[0]!.detail).toContain('did not finish within 200 ms');
  });
});

describe('other requests', () => {
  it('is 404 for any other path', async () => {
    const { url } = await serve();
    for (const path of ['/', '/metric', '/metrics/x', '/healthz/', '/favicon.ico']) {
      const res = await fetch(`${url}${path}`);
      expect(res.status, path).toBe(404);
      await res.arrayBuffer();
    }
    // a query string does not change the path
    expect((await fetch(`${url}/metrics?x=1`)).status).toBe(200);
  });

  it('is 405 with Allow for methods other than GET and HEAD', async () => {
    const { url } = await serve();
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      for (const path of ['/metrics', '/healthz']) {
        const res = await fetch(`${url}${path}`, { method });
        expect(res.status, `${method} ${path}`).toBe(405);
        expect(res.headers.get('allow')).toBe('GET, HEAD');
        await res.arrayBuffer();
      }
    }
  });
});

describe('listen and close', () => {
  it('a port in use is CONFIG_INVALID naming the address and the ways out', async () => {
    const { url } = await serve();
    const port = Number(new URL(url).port);
    const second = new Metrics(fakeSource(defaultState()));
    open.push(second);
    const err = await rejection(second.listen({ host: '127.0.0.1', port }));
    expect(err).toBeInstanceOf(DockError);
    expect((err as DockError).code).toBe('CONFIG_INVALID');
    expect((err as DockError).message).toBe(`cannot serve metrics on 127.0.0.1:${port}: the port is in use (another dockside, or another exporter?); give --metrics ADDR or --metrics off`);
    expect(second.url).toBeUndefined();
    // the failed instance can still listen elsewhere
    expect(await second.listen({ host: '127.0.0.1', port: 0 })).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('returns the URL with the port the OS gave, IPv6 in brackets', async () => {
    const { m, url } = await serve();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
    expect(m.url).toBe(url);
    const v6 = new Metrics(fakeSource(defaultState()));
    open.push(v6);
    let u6: string;
    try {
      u6 = await v6.listen({ host: '::1', port: 0 });
    } catch (err) {
      // a host without IPv6 loopback: say so rather than pass quietly
      throw new Error(`this host cannot bind ::1 (${(err as Error).message}); the IPv6 URL form is untested here`, { cause: err });
    }
    expect(u6).toMatch(/^http:\/\/\[::1\]:\d+$/);
    expect((await fetch(`${u6}/healthz`)).status).toBe(200);
  });

  it('refuses a second listen while serving', async () => {
    const { m } = await serve();
    const err = await rejection(m.listen({ host: '127.0.0.1', port: 0 }));
    expect((err as DockError).code).toBe('INTERNAL');
  });

  it('warns when bound beyond loopback (no authentication), not on loopback', async () => {
    const quiet = capturingLogger();
    await serve(defaultState(), { log: quiet.log });
    expect(quiet.lines.filter((l) => l.level === 40)).toEqual([]);

    const loud = capturingLogger();
    const m = new Metrics(fakeSource(defaultState()), { log: loud.log });
    open.push(m);
    await m.listen({ host: '0.0.0.0', port: 0 });
    const warns = loud.lines.filter((l) => l.level === 40);
    expect(warns).toHaveLength(1);
    expect(warns[0]!.msg).toContain('without authentication');
    expect(warns[0]!['metrics']).toBe('0.0.0.0:0');
  });

  it('close() cuts a request in flight at once and stops serving', async () => {
    const state = defaultState();
    let asked!: () => void;
    const healthAsked = new Promise<void>((r) => (asked = r));
    state.health = () => {
      asked();
      return new Promise<HealthReport>(() => undefined); // a check that hangs
    };
    const { m, url } = await serve(state, { healthTimeoutMs: 60_000 });
    const inFlight = fetch(`${url}/healthz`);
    inFlight.catch(() => undefined);
    await healthAsked;
    const t0 = Date.now();
    await m.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect(inFlight).rejects.toThrow();
    expect(m.url).toBeUndefined();
    await expect(fetch(`${url}/metrics`)).rejects.toThrow();
    await m.close(); // twice is fine
  });
});
