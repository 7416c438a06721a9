/**
 * Prometheus metrics and /healthz for the daemon, on loopback by default.
 *
 *   daemon events ─► add*() ─► counters ─┐
 *   MetricsSource (read at scrape) ──────┼─► own Registry ─► GET /metrics
 *   MetricsSource.health() ──────────────┴───────────────► GET /healthz (200 | 503)
 *
 * Counters are pushed as things happen; gauges are read from the source when scraped
 * (prom-client `collect()`), so they are never stale. A source that throws loses its
 * gauges from that scrape (counted in dockside_scrape_errors_total{metric}, logged
 * once per new error), and the scrape still answers. Nothing here throws into the
 * ingest path: a bad value given to add*() is logged and dropped.
 *
 * The server is not unref()ed: while it listens it serves, and the daemon closes it
 * in close() with everything else. Metrics have no authentication, so a bind beyond
 * loopback is logged as a warning.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DockError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { HealthReport } from './health.js';

export type { HealthCheck, HealthReport } from './health.js';

/** What the gauges and /healthz read, at scrape time. */
export interface MetricsSource {
  clipsByState(): Record<string, number>;
  /** `hold.reason` is a label: give a bounded word (the Hold's kind), not free text. */
  queue(): { waiting: number; inFlight: number; hold: { reason: string } | null };
  bays(): { bay: string; serial: string | null; state: string; serving: boolean }[];
  health(): Promise<HealthReport>;
}

export interface MetricsAddress {
  host: string; // an IP address (IPv6 without brackets) or localhost
  port: number; // 0: any free port (listen() returns the URL)
}

export interface MetricsOptions {
  log?: Logger; // default silent
  healthTimeoutMs?: number; // /healthz answers 503 when source.health() takes longer; default 5000
}

export const METRICS_DEFAULT = '127.0.0.1:9464';
const HEALTH_TIMEOUT_MS = 5000;

/** `--metrics` / `metrics:`: HOST:PORT (IPv4, [IPv6] or localhost), or off. */
export function parseMetricsAddress(spec: string): MetricsAddress | 'off' {
  if (spec === 'off') return 'off';
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(spec);
  const host = m?.[1] ?? m?.[2] ?? '';
  const port = Number(m?.[3] ?? NaN);
  const hostOk = m?.[1] !== undefined ? isIPv6(host) : host === 'localhost' || isIPv4(host);
  if (!m || !hostOk || !(port >= 0 && port <= 65535)) {
    throw new DockError('CONFIG_INVALID', `metrics address ${JSON.stringify(spec)}: expected HOST:PORT with an IP address or localhost (127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464) and a port up to 65535, or off`, {
      metrics: spec,
    });
  }
  return { host, port };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export class Metrics {
  /** Its own registry: the process-wide default one is left to whoever else uses prom-client. */
  readonly registry = new Registry();
  readonly #source: MetricsSource;
  readonly #log: Logger;
  readonly #healthTimeoutMs: number;
  readonly #failing = new Map<string, string>(); // metric → the error last logged for it
  #server: Server | undefined;
  #url: string | undefined;

  readonly #pulledBytes: Counter;
  readonly #uploadedBytes: Counter;
  readonly #verifiedBytes: Counter;
  readonly #verifiedClips: Counter;
  readonly #verifySeconds: Counter;
  readonly #uploadRetries: Counter<'kind'>;
  readonly #linkErrors: Counter<'serial'>;
  readonly #quarantined: Counter;
  readonly #alerts: Counter<'kind'>;
  readonly #scrapeErrors: Counter<'metric'>;

  constructor(source: MetricsSource, opts: MetricsOptions = {}) {
    this.#source = source;
    this.#log = opts.log ?? silentLogger();
    this.#healthTimeoutMs = opts.healthTimeoutMs ?? HEALTH_TIMEOUT_MS;
    const register = this.registry;
    collectDefaultMetrics({ register, prefix: 'dockside_' });
    const counter = <T extends string = never>(name: string, help: string, labelNames: T[] = []): Counter<T> => new Counter<T>({ name, help, labelNames, registers: [register] });

    this.#pulledBytes = counter('dockside_pulled_bytes_total', 'Bytes pulled from cameras into the spool (durable, fsynced).');
    this.#uploadedBytes = counter('dockside_uploaded_bytes_total', 'Bytes of clips the evidence store confirmed as stored.');
    this.#verifiedBytes = counter('dockside_verified_bytes_total', 'Bytes of clips that passed verification (re-read from the spool and hashed).');
    this.#verifiedClips = counter('dockside_verified_clips_total', 'Clips that passed verification; failures count in dockside_quarantined_total.');
    this.#verifySeconds = counter('dockside_verify_seconds_total', 'Seconds spent verifying the clips that passed; rate(verified_bytes_total) / rate(verify_seconds_total) is the verify throughput.');
    this.#uploadRetries = counter('dockside_upload_retries_total', 'Uploads that failed and will be tried again, by kind of failure.', ['kind']);
    this.#linkErrors = counter('dockside_link_errors_total', 'Link errors on a camera (frames discarded: bad CRC, truncated, oversized), by camera serial.', ['serial']);
    this.#quarantined = counter('dockside_quarantined_total', 'Clips quarantined: they failed a custody or media check; kept, never released.');
    this.#alerts = counter('dockside_alerts_total', 'Alerts raised to an operator, by kind.', ['kind']);

    this.#gauge('dockside_clips', 'Clips in the state store, by custody state.', ['state'], (g) => {
      for (const [state, n] of Object.entries(this.#source.clipsByState())) g.set({ state }, n);
    });
    this.#gauge('dockside_queue_depth', 'Clips waiting to be uploaded (verified, not in flight).', [], (g) => g.set(this.#source.queue().waiting));
    this.#gauge('dockside_queue_in_flight', 'Uploads in flight.', [], (g) => g.set(this.#source.queue().inFlight));
    this.#gauge('dockside_queue_hold', 'The upload queue is held (1) for this reason: operator, store-full or store-unreachable; absent while uploads run.', ['reason'], (g) => {
      const hold = this.#source.queue().hold;
      if (hold) g.set({ reason: hold.reason }, 1);
    });
    this.#gauge('dockside_bay_state', 'Each bay in its current state (1): connecting, pulling, finishing, done, refused, failed.', ['bay', 'serial', 'state'], (g) => {
      for (const b of this.#source.bays()) g.set({ bay: b.bay, serial: b.serial ?? '', state: b.state }, 1);
    });
    this.#gauge('dockside_bays_serving', 'Bays serving a camera now (not yet done, refused or failed).', [], (g) => g.set(this.#source.bays().filter((b) => b.serving).length));
    // Registered after the gauges, so a scrape reports the errors of its own collect() calls.
    this.#scrapeErrors = counter('dockside_scrape_errors_total', 'Gauges left out of a scrape because the daemon could not read them, by metric.', ['metric']);
  }

  addPulled(bytes: number): void {
    if (this.#amounts('addPulled', bytes)) this.#pulledBytes.inc(bytes);
  }

  addUploaded(bytes: number): void {
    if (this.#amounts('addUploaded', bytes)) this.#uploadedBytes.inc(bytes);
  }

  /** One clip passed verification: its bytes and the seconds its check took. */
  addVerified(bytes: number, seconds: number): void {
    if (!this.#amounts('addVerified', bytes, seconds)) return;
    this.#verifiedBytes.inc(bytes);
    this.#verifySeconds.inc(seconds);
    this.#verifiedClips.inc();
  }

  addRetry(kind: string): void {
    this.#uploadRetries.inc({ kind });
  }

  addLinkErrors(serial: string, n: number): void {
    if (this.#amounts('addLinkErrors', n)) this.#linkErrors.inc({ serial }, n);
  }

  addQuarantined(): void {
    this.#quarantined.inc();
  }

  addAlert(kind: string): void {
    this.#alerts.inc({ kind });
  }

  /** The text exposition, as GET /metrics answers it. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The base URL while listening (http://127.0.0.1:9464), else undefined. */
  get url(): string | undefined {
    return this.#url;
  }

  /** Serves /metrics and /healthz; resolves to the base URL (with the port the OS gave, for port 0). */
  async listen(addr: MetricsAddress): Promise<string> {
    if (this.#server) throw new DockError('INTERNAL', `metrics are already served at ${this.#url ?? '?'}`);
    const where = hostPort(addr.host, addr.port);
    if (!isLoopback(addr.host)) {
      this.#log.warn({ metrics: where }, 'metrics and /healthz are served beyond loopback without authentication; firewall the port, or bind 127.0.0.1');
    }
    const server = createServer((req, res) => void this.#handle(req, res));
    server.headersTimeout = 10_000; // ms: a scraper that connects and says nothing is let go
    server.requestTimeout = 15_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, where)));
      server.listen({ host: addr.host, port: addr.port }, () => resolve());
    });
    server.removeAllListeners('error');
    server.on('error', (err) => this.#log.error({ err: err.message }, 'metrics server error'));
    const a = server.address() as AddressInfo;
    this.#server = server;
    this.#url = `http://${hostPort(a.address, a.port)}`;
    this.#log.info({ url: this.#url }, 'serving /metrics and /healthz');
    return this.#url;
  }

  /** Stops serving and drops open connections (a scrape in flight is cut). */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#url = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Never throws into the ingest path: a negative or non-finite amount is a bug upstream, logged and dropped. */
  #amounts(method: string, ...ns: number[]): boolean {
    if (ns.every((n) => Number.isFinite(n) && n >= 0)) return true;
    this.#logFailure(method, `${method}(${ns.join(', ')}): amounts must be finite numbers >= 0`, 'metric update dropped');
    return false;
  }

  /** A gauge filled from the source at each scrape; one whose source throws is left out of that scrape. */
  #gauge<T extends string>(name: string, help: string, labelNames: T[], fill: (g: Gauge<T>) => void): void {
    const failed = (g: Gauge<T>, err: unknown): void => {
      g.reset();
      if (labelNames.length === 0) g.remove(); // reset() leaves an unlabelled gauge at 0: absent is the truth
      this.#scrapeErrors.inc({ metric: name });
      this.#logFailure(name, err instanceof Error ? err.message : String(err), 'metric source failed; left out of the scrape');
    };
    const recovered = (): void => {
      if (this.#failing.delete(name)) this.#log.info({ metric: name }, 'metric source readable again');
    };
    new Gauge<T>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect(this: Gauge<T>) {
        this.reset(); // bays that left, states no longer present
        try {
          fill(this);
        } catch (err) {
          failed(this, err);
          return;
        }
        recovered();
      },
    });
  }

  /** Logs a failure once until it changes, not at every scrape or every chunk pulled. */
  #logFailure(metric: string, err: string, msg: string): void {
    if (this.#failing.get(metric) === err) return;
    this.#failing.set(metric, err);
    this.#log.warn({ metric, err }, msg);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume(); // a body (there should be none) is read and dropped
    try {
      const path = new URL(req.url ?? '/', 'http://metrics').pathname;
      if (path !== '/metrics' && path !== '/healthz') return send(req, res, 404, 'text/plain; charset=utf-8', 'not found: this server has /metrics and /healthz\n');
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        return send(req, res, 405, 'text/plain; charset=utf-8', `method ${req.method ?? ''} not allowed: use GET or HEAD\n`);
      }
      if (path === '/metrics') return send(req, res, 200, this.registry.contentType, await this.registry.metrics());
      const report = await this.#health();
      return send(req, res, report.ok ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`);
    } catch (err) {
      this.#log.error({ url: req.url, err: (err as Error).message }, 'metrics request failed');
      send(req, res, 500, 'text/plain; charset=utf-8', `internal error: ${(err as Error).message}\n`);
    }
  }

  /** source.health(), bounded in time; a failure of its own is a failed report, not a 500. */
  async #health(): Promise<HealthReport> {
    let timer: NodeJS.Timeout | undefined;
    const fail = (detail: string): HealthReport => ({ ok: false, checks: [{ name: 'health', ok: false, detail }] });
    const late = new Promise<HealthReport>((resolve) => {
      timer = setTimeout(() => resolve(fail(`the health checks did not finish within ${this.#healthTimeoutMs} ms`)), this.#healthTimeoutMs);
    });
    try {
      return await Promise.race([this.#source.health().catch((err: unknown) => fail(`the health checks failed: ${err instanceof Error ? err.message : String(err)}`)), late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function send(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): void {
  if (res.headersSent || res.destroyed) return; // closed under us (close() mid-scrape)
  const bytes = Buffer.from(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': bytes.length, 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

function listenError(err: NodeJS.ErrnoException, where: string): DockError {
  const why =
    err.code === 'EADDRINUSE'
      ? 'the port is in use (another dockside, or another exporter?)'
      : err.code === 'EACCES'
        ? 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
        : err.code === 'EADDRNOTAVAIL'
          ? 'that address is not one of this host'
          : `${err.code ?? 'error'}: ${err.message}`;
  return new DockError('CONFIG_INVALID', `cannot serve metrics on ${where}: ${why}; give --metrics ADDR or --metrics off`, { metrics: where, errno: err.code }, { cause: err });
}
