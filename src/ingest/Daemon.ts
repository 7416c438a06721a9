/**
 * The docking-station daemon: every docked camera in a bay of its own (up to
 * `bays` at once; more wait their turn), one verify pipeline, one upload queue, one
 * state store, one ledger.
 *
 *   Discovery (serial, USB) ─┐
 *   SimFleet (--sim) ────────┴─► attach ─► Bay ─► spool ─► Pipeline ─► UploadQueue ─► sink ─► Bay releases
 *
 * On start, work that a previous run left half done resumes from the state store:
 * spooled clips go to the pipeline, verified and uploading ones to the upload queue;
 * pulls resume at their durable offsets when their camera docks; stored clips are
 * released then.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ControlServer } from '../control/ControlServer.js';
import { createHash } from 'node:crypto';
import type { DockKey } from '../custody/dockKey.js';
import type { Ledger } from '../custody/Ledger.js';
import { DockError, toDockError } from '../errors.js';
import { loadProfiles } from '../hal/profiles.js';
import { MAX_FIRMWARE_BYTES, parseFirmwarePackage, verifyFirmwarePackage, type FirmwarePackage } from '../protocol/firmwarePackage.js';
import { diagnose, summarize } from './cameraProbe.js';
import { cameraHealth, cameraLog, dockRow, pushFirmware, storeFacts, type CameraHealth, type DockRow } from './cameraOps.js';
import { Discovery, type Candidate } from '../hal/discovery.js';
import { silentLogger, type Logger } from '../log.js';
import type { SessionOptions } from '../protocol/Session.js';
import type { Store } from '../queue/Store.js';
import { BandwidthLimiter, parseBwTimetable } from '../queue/Bandwidth.js';
import { DirSink } from '../queue/sinks/DirSink.js';
import { parseS3Spec, S3Sink, type S3SinkOptions } from '../queue/sinks/S3Sink.js';
import type { Sink } from '../queue/sinks/Sink.js';
import { clipView, queueListing } from '../queue/queueListing.js';
import { UploadQueue, type Hold, type UploadQueueOptions } from '../queue/UploadQueue.js';
import { NO_FAULTS, type Faults } from '../sim/faults.js';
import type { RecordOptions } from '../sim/recorder.js';
import { SimFleet, type DockedCamera, type SimLinkKind } from '../sim/SimFleet.js';
import { HashPool } from '../verify/HashPool.js';
import { Metrics, type MetricsAddress } from '../observability/Metrics.js';
import { checkSink, checkSpool, checkStateStore, healthReport } from '../observability/health.js';
import { Bay, type BayActivity } from './Bay.js';
import { DropFolder } from './DropFolder.js';
import { openDataDir, type DataDir } from './dataDir.js';
import { Pipeline } from './Pipeline.js';
import { Spool, type SpoolOptions } from './Spool.js';

export interface SimOptions {
  cameras: number;
  clips: number;
  seed: number;
  faults: Faults;
  link: SimLinkKind;
  record?: Partial<Pick<RecordOptions, 'mode' | 'syntheticBytes' | 'video'>>;
  linkRateBytesPerS?: number;
  latencyMs?: number;
}

/** Options of an s3:// sink besides its bucket and prefix. */
export type S3Options = Omit<S3SinkOptions, 'bucket' | 'prefix' | 'limit'>;

export interface UploadOptions extends Partial<UploadQueueOptions> {
  bandwidth?: string; // rclone --bwlimit syntax; default off
}

export interface DaemonOptions {
  dataDir: string;
  sink?: string; // dir:PATH or s3://bucket/prefix; default dir:DATA_DIR/vault
  s3?: S3Options;
  upload?: UploadOptions;
  bays?: number; // cameras served at once; default 8
  spool?: Partial<SpoolOptions>;
  sim?: SimOptions; // dock simulated cameras whose flash lives in DATA_DIR/sim
  portsDir?: string; // serial discovery only in this directory
  usb?: boolean;
  session?: SessionOptions;
  clockSkewMs?: number; // SET_TIME beyond this; default 2000
  hashThreads?: number;
  /** Prometheus metrics and /healthz; default off here (`dockside run` serves METRICS_DEFAULT). */
  metrics?: MetricsAddress | 'off';
  /** Import clips (with their signed manifests) dropped into this folder. */
  dropDir?: string;
  /** Who holds the data dir lock (`dockside run`, or `dockside pull` serving one camera). */
  owner?: string;
  /** Serve exactly these cameras, without discovery (`dockside pull` when no daemon runs). */
  candidates?: Candidate[];
  log?: Logger;
}

export const DAEMON_DEFAULTS = { bays: 8 } as const;
const HEARTBEAT_MS = 30_000;

export interface Summary {
  cameras: number;
  clips: number;
  stored: number; // in the evidence store (stored or released)
  quarantined: number;
  released: number;
  failed: number; // refused by the store: kept spooled and on the camera (`dockside queue`)
  failures: { serial: string; clipId: string; reason: string }[];
  queue: { hold: Hold | null; waiting: number };
  bytes: number; // bytes in the evidence store
  seconds: number;
}

export interface BayView {
  bay: string;
  transport: string;
  serial: string | null;
  state: string;
  error: { code: string; message: string } | null;
  activity: BayActivity;
}

export interface DockReport {
  dock: { dataDir: string; sink: string; bays: number; queue: { hold: Hold | null; waiting: number; inFlight: number }; clips: Record<string, number> };
  bays: DockRow[];
}

/** A camera answers a technician's question within this, or the report says it did not. */
const TECH_ANSWER_MS = 5000;

const keyFingerprint = (raw: Buffer): string => createHash('sha256').update(raw).digest('hex');

function bounded<T>(p: Promise<T>, ms = TECH_ANSWER_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DockError('PROTO_TIMEOUT', `the camera did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Reads a firmware package file (the daemon reads it itself; the CLI sends only its
 * path). Only a regular file of package size: a FIFO, a device or a huge file given
 * as the path must not hold the daemon.
 */
export async function readFirmwarePackageFile(path: string, who: string): Promise<FirmwarePackage> {
  let bytes: Buffer;
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    const st = await fh.stat();
    if (!st.isFile()) throw new DockError('FIRMWARE_INVALID', `${path} is not a regular file; give the firmware package file itself`, { path });
    if (st.size > MAX_FIRMWARE_BYTES + 8192) throw new DockError('FIRMWARE_INVALID', `${path} is ${st.size} bytes, larger than any firmware package (64 MiB of image at most)`, { path });
    bytes = await fh.readFile();
  } catch (err) {
    if (err instanceof DockError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new DockError(code === 'ENOENT' ? 'CLI_USAGE' : 'FIRMWARE_INVALID', `${who} cannot read the firmware package ${path}: ${(err as Error).message}${code === 'EACCES' ? ' (the daemon runs as its own user: put the file where it can read it, e.g. the data directory)' : code === 'ELOOP' ? ' (a symbolic link: give the file itself)' : ''}`, { path });
  } finally {
    await fh?.close();
  }
  return parseFirmwarePackage(bytes, path);
}

/** The vendor firmware key of a camera model, from its profile in hardware/models. */
export function vendorKeyFor(model: string): string {
  const profile = loadProfiles().find((p) => p.model === model);
  if (!profile?.firmwarePublicKey) throw new DockError('FIRMWARE_INVALID', `no vendor firmware key is known for the model ${JSON.stringify(model)}: add firmwarePublicKey to its profile in hardware/models; nothing was sent`, { model });
  return profile.firmwarePublicKey;
}

export type SinkSpec = { kind: 'dir'; path: string } | { kind: 's3'; bucket: string; prefix: string };

export function parseSink(spec: string): SinkSpec {
  if (spec.startsWith('dir:') && spec.length > 4) return { kind: 'dir', path: resolve(spec.slice(4)) };
  if (spec.startsWith('s3://')) return { kind: 's3', ...parseS3Spec(spec) };
  throw new DockError('CONFIG_INVALID', `sink ${JSON.stringify(spec)} is not one this dock knows: use dir:PATH (a local vault) or s3://BUCKET/PREFIX (an S3-compatible store)`, { sink: spec });
}

export class Daemon {
  readonly dataDir: string;
  readonly store: Store;
  readonly ledger: Ledger;
  readonly dockKey: DockKey;
  readonly spool: Spool;
  readonly sink: Sink;
  readonly pipeline: Pipeline;
  readonly queue: UploadQueue;
  readonly bandwidth: BandwidthLimiter;
  readonly metrics: Metrics;
  readonly drop: DropFolder | undefined;
  readonly #hashes: HashPool;
  readonly #dir: DataDir;
  readonly #opts: DaemonOptions;
  readonly #log: Logger;
  readonly #bays = new Map<string, Bay>(); // by candidate path
  readonly #bySerial = new Map<string, Bay>();
  readonly #waiting: Candidate[] = [];
  readonly #startMs = Date.now();
  readonly #idleWaiters: { resolve: (s: Summary) => void; reject: (e: Error) => void }[] = [];
  #fleet: SimFleet | undefined;
  #discovery: Discovery | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #control: ControlServer | undefined;
  #closed = false;

  private constructor(opts: DaemonOptions, dir: DataDir) {
    this.#opts = opts;
    this.#log = opts.log ?? silentLogger();
    this.#dir = dir;
    this.dataDir = this.#dir.path;
    this.store = this.#dir.store;
    this.dockKey = this.#dir.dockKey;
    this.ledger = this.#dir.ledger;
    this.spool = new Spool(this.dataDir, opts.spool);
    this.#hashes = new HashPool({ threads: opts.hashThreads });
    this.bandwidth = new BandwidthLimiter(parseBwTimetable(opts.upload?.bandwidth ?? 'off'));
    const sink = parseSink(opts.sink ?? `dir:${join(this.dataDir, 'vault')}`);
    this.sink = sink.kind === 'dir' ? new DirSink(sink.path, this.#hashes, this.bandwidth) : new S3Sink({ ...opts.s3, bucket: sink.bucket, prefix: sink.prefix, limit: this.bandwidth });
    this.pipeline = new Pipeline({ store: this.store, ledger: this.ledger, spool: this.spool, hashes: this.#hashes, log: this.#log.child({ part: 'pipeline' }) });
    const { bandwidth: _bandwidth, ...queueOptions } = opts.upload ?? {};
    this.queue = new UploadQueue({ store: this.store, ledger: this.ledger, spool: this.spool, sink: this.sink, dockKey: this.dockKey, log: this.#log.child({ part: 'upload' }), options: queueOptions });
    this.pipeline.on('verified', () => this.queue.kick());
    this.pipeline.on('idle', () => this.#checkIdle());
    this.pipeline.on('stuck', () => this.#checkIdle());
    this.queue.on('stored', (serial) => void this.#bySerial.get(serial)?.releaseStored().catch((err: Error) => this.#log.warn({ serial, err: err.message }, 'release failed')));
    this.queue.on('changed', () => this.#checkIdle());
    this.metrics = new Metrics(
      {
        clipsByState: () => this.store.countByState(),
        queue: () => {
          const q = this.queue.status();
          return { waiting: q.waiting, inFlight: q.inFlight.length, hold: q.hold ? { reason: q.hold.kind } : null };
        },
        bays: () => this.#allBays().map((b) => ({ bay: b.candidate.path, serial: b.serial ?? null, state: b.state, serving: !b.settled })),
        health: () => healthReport(checkStateStore(this.store), checkSpool(this.spool.dir, this.spool.options.minFreeBytes), checkSink(this.sink)),
      },
      { log: this.#log.child({ part: 'metrics' }) },
    );
    this.drop = opts.dropDir
      ? new DropFolder({ dir: resolve(opts.dropDir), store: this.store, ledger: this.ledger, spool: this.spool, pipeline: this.pipeline, log: this.#log.child({ part: 'drop' }), docked: (s) => this.#bySerial.has(s) })
      : undefined;
    this.queue.on('stored', (serial, clipId) => this.drop?.onStored(serial, clipId));
    this.drop?.on('idle', () => this.#checkIdle());
    this.pipeline.on('hashed', (_s, _c, bytes, seconds) => this.metrics.addVerified(bytes, seconds));
    this.pipeline.on('quarantined', () => this.metrics.addQuarantined());
    this.queue.on('stored', (serial, clipId) => this.metrics.addUploaded(this.store.clip(serial, clipId)?.size ?? 0));
    this.queue.on('retry', (code) => this.metrics.addRetry(code));
    this.queue.on('alert', (a) => this.metrics.addAlert(a.kind));
  }

  /** Applies what a config reload may change while running: the bandwidth timetable and the upload concurrency. */
  reconfigure(upload: UploadOptions): void {
    if (upload.bandwidth !== undefined) this.bandwidth.setTimetable(parseBwTimetable(upload.bandwidth));
    if (upload.concurrency !== undefined) this.queue.setConcurrency(upload.concurrency);
    this.#log.info({ bandwidth: upload.bandwidth, concurrency: upload.concurrency }, 'upload settings reloaded');
  }

  static async open(opts: DaemonOptions): Promise<Daemon> {
    const dir = await openWaitingForTools(opts.dataDir, opts.owner ?? 'dockside run');
    let d: Daemon;
    try {
      d = new Daemon(opts, dir);
    } catch (err) {
      await dir.close();
      throw err;
    }
    d.ledger.append('ledger_opened', { details: { dock: d.dockKey.fingerprint, sink: d.sink.name } });
    if (opts.sim) await d.#openSim(opts.sim); // created and enrolled now, docked by start()
    return d;
  }

  /** The simulated cameras, with --sim (tests and the firmware engineers' tooling reach them here). */
  get simFleet(): SimFleet | undefined {
    return this.#fleet;
  }

  get bays(): Bay[] {
    return [...this.#bays.values()];
  }

  async start(): Promise<void> {
    this.pipeline.kick(); // what a previous run left spooled
    this.queue.kick(); // ... and verified or uploading
    await this.drop?.start();
    // The heartbeat keeps the daemon alive when nothing else would (a loopback fleet
    // holds no handles), retries anything left waiting, and removes spool copies
    // kept past their keep period.
    this.#heartbeat = setInterval(() => {
      this.pipeline.kick();
      this.queue.kick();
      void this.#reclaimSpool();
    }, HEARTBEAT_MS);
    await this.#reclaimSpool();
    await this.spool.freeBytes(); // creates the spool directory, so /healthz checks it from the start
    this.#control = await ControlServer.listen(this.dataDir, this.#controlMethods(), this.#log.child({ part: 'control' }));
    const metricsAt = this.#opts.metrics ?? 'off';
    if (metricsAt !== 'off') {
      // Evidence comes first: a dock whose metrics port is taken still ingests, and says so loudly.
      try {
        this.#log.info({ url: await this.metrics.listen(metricsAt) }, 'metrics and /healthz served');
      } catch (err) {
        this.#log.error({ alert: 'metrics-unavailable', err: (err as Error).message }, 'metrics are not served; the dock goes on ingesting');
        this.metrics.addAlert('metrics-unavailable');
      }
    }
    if (this.#fleet) await this.#fleet.dockAll();
    if (this.#opts.candidates) {
      for (const c of this.#opts.candidates) this.#attach(c);
    } else if (!this.#opts.sim || this.#opts.sim.link === 'pty') {
      const discovery = new Discovery({ portsDir: this.#opts.sim ? this.#fleet!.portsDir : this.#opts.portsDir, usb: this.#opts.sim ? false : this.#opts.usb, log: this.#log.child({ part: 'discovery' }) });
      discovery.on('attach', (c) => this.#attach(c));
      discovery.on('detach', (path) => this.#detach(path));
      discovery.on('refused', (r) => this.#log.warn({ path: r.path, code: r.error.code, err: r.error.message }, 'device refused by discovery'));
      this.#discovery = discovery;
      await discovery.start();
    }
    this.#checkIdle();
  }

  /** Resolves when every docked camera is offloaded and nothing is in flight. */
  whenIdle(): Promise<Summary> {
    return new Promise((resolve, reject) => {
      this.#idleWaiters.push({ resolve, reject });
      this.#checkIdle();
    });
  }

  summary(): Summary {
    const n = this.store.countByState();
    const q = this.queue.status();
    return {
      cameras: this.store.cameras().length,
      clips: Object.values(n).reduce((a, b) => a + b, 0),
      stored: n.stored + n.released,
      quarantined: n.quarantined,
      released: n.released,
      failed: n.failed,
      failures: this.store.clips({ state: 'failed' }).map((c) => ({ serial: c.serial, clipId: c.clipId, reason: c.reason ?? '' })),
      queue: { hold: q.hold, waiting: q.waiting + q.inFlight.length },
      bytes: this.store.storedBytes(),
      seconds: Math.round((Date.now() - this.#startMs) / 10) / 100,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    await this.#control?.close();
    await this.metrics.close();
    await this.#discovery?.close();
    for (const bay of this.#bays.values()) await bay.close();
    await this.drop?.close();
    await this.pipeline.close();
    await this.queue.close();
    await this.sink.close();
    await this.#fleet?.close();
    await this.#hashes.close();
    await this.#dir.close();
  }

  async #openSim(sim: SimOptions): Promise<void> {
    const fleet = await SimFleet.open({
      dir: join(this.dataDir, 'sim'),
      cameras: sim.cameras,
      clips: sim.clips,
      seed: sim.seed,
      faults: sim.faults ?? NO_FAULTS,
      link: sim.link,
      record: sim.record,
      linkRateBytesPerS: sim.linkRateBytesPerS,
      latencyMs: sim.latencyMs,
      log: this.#log.child({ part: 'sim' }),
    });
    this.#fleet = fleet;
    // The dock enrolls the cameras it simulates when it creates them.
    for (const cam of fleet.cameras) {
      if (this.store.camera(cam.serial)) continue;
      this.ledger.append('enrolled', { serial: cam.serial, details: { fingerprint: createHash('sha256').update(cam.publicKeyRaw).digest('hex'), by: 'simulator' } });
      this.store.enroll(cam.serial, cam.profile.model, cam.publicKeyRaw);
    }
    if (sim.link === 'loopback') {
      fleet.on('docked', (d) => this.#attach(loopbackCandidate(d)));
      fleet.on('undocked', (serial) => this.#detach(`sim:${serial}:a`));
    }
    fleet.on('error', (err) => this.#log.error({ err: err.message }, 'simulator error'));
  }

  #attach(c: Candidate): void {
    if (this.#closed) return;
    // The path's last camera is still being closed (its bay may be writing its last
    // bytes): the new docking waits for that, then gets a bay (it was lost before).
    if (this.#detaching.has(c.path)) return void this.#detaching.set(c.path, c);
    if (this.#bays.has(c.path)) return;
    // The limit is on cameras being served: one that is done stays docked (charging)
    // without holding a slot.
    const serving = [...this.#bays.values()].filter((b) => !b.settled).length;
    if (serving >= (this.#opts.bays ?? DAEMON_DEFAULTS.bays)) {
      if (!this.#waiting.some((w) => w.path === c.path)) this.#waiting.push(c);
      return;
    }
    const bay = new Bay(c, {
      store: this.store,
      ledger: this.ledger,
      spool: this.spool,
      pipeline: this.pipeline,
      queue: this.queue,
      spoolKeepMs: this.#opts.spool?.keepAfterReleaseMs,
      reclaimSpool: () => this.#reclaimSpool(true),
      importing: (serial, clipId) => this.drop?.importing(serial, clipId) ?? false,
      hashes: this.#hashes,
      log: this.#log.child({ part: 'bay' }),
      session: this.#opts.session,
      clockSkewMs: this.#opts.clockSkewMs,
      claim: (serial, b) => {
        const other = this.#bySerial.get(serial);
        if (other && other !== b && !other.settled) return false;
        this.#bySerial.set(serial, b);
        return true;
      },
    });
    this.#bays.set(c.path, bay);
    bay.on('state', (state) => {
      if (bay.settled) this.#free(c.path, bay, state);
      this.#checkIdle();
    });
    bay.on('releasesDone', () => this.#checkIdle());
    bay.on('bytes', (n) => this.metrics.addPulled(n));
    bay.on('linkError', () => this.metrics.addLinkErrors(bay.serial ?? c.path, 1));
    void bay.run();
  }

  /**
   * A settled bay frees its serving slot for the next waiting camera. A done, refused
   * or failed camera stays in its bay until it is undocked (no retry loop); a gone one
   * leaves it.
   */
  #free(path: string, bay: Bay, state: string): void {
    if (state === 'gone') {
      if (this.#bays.get(path) === bay) this.#bays.delete(path);
      if (bay.serial && this.#bySerial.get(bay.serial) === bay) this.#bySerial.delete(bay.serial);
    }
    const next = this.#waiting.shift();
    if (next) this.#attach(next);
  }

  /** Paths whose bay is closing after a detach, with the docking that came meanwhile. */
  readonly #detaching = new Map<string, Candidate | undefined>();

  #detach(path: string): void {
    const w = this.#waiting.findIndex((c) => c.path === path);
    if (w >= 0) this.#waiting.splice(w, 1);
    const bay = this.#bays.get(path);
    if (!bay || this.#detaching.has(path)) return;
    this.#detaching.set(path, undefined);
    void bay.close().then(() => {
      this.#free(path, bay, 'gone');
      const again = this.#detaching.get(path);
      this.#detaching.delete(path);
      if (again) this.#attach(again);
    });
  }

  #checkIdle(): void {
    if (this.#closed || this.#idleWaiters.length === 0) return; // a bay settling after close() must not touch the closed store
    const stuck = this.pipeline.stuck;
    if (stuck.length > 0) {
      const e = stuck[0]!.error;
      const err = new DockError(e.code, `cannot reach idle: ${e.message}`, { ...e.details, serial: stuck[0]!.serial });
      for (const w of this.#idleWaiters.splice(0)) w.reject(err);
      return;
    }
    if (this.#waiting.length > 0 || this.pipeline.busy || this.queue.busy || this.drop?.busy) return;
    const bays = [...this.#bays.values()];
    if (!bays.every((b) => b.state === 'done' || b.state === 'refused' || b.state === 'failed')) return;
    if (bays.some((b) => b.releasing)) return;
    if (this.#fleet) {
      // Every simulated camera must be docked (an unplug fault re-docks it shortly) and settled.
      const docked = new Set(this.#fleet.dockedCameras().map((d) => d.serial));
      if (this.#fleet.cameras.some((c) => !docked.has(c.serial))) return;
      const settled = new Set(bays.filter((b) => b.serial).map((b) => b.serial));
      if (this.#fleet.cameras.some((c) => !settled.has(c.serial))) return;
    }
    const summary = this.summary();
    for (const w of this.#idleWaiters.splice(0)) w.resolve(summary);
  }

  /** What `dockside queue` and the other technician commands ask a running daemon. */
  #controlMethods(): Record<string, (p: Record<string, unknown>) => unknown> {
    const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
    return {
      'queue.list': (p) => queueListing(this.store, { all: p['all'] === true, status: this.queue.status(), bandwidth: this.bandwidth.current() }),
      'queue.retry': (p) => ({ retried: this.queue.retry({ serial: str(p['serial']), clipId: str(p['clipId']) }).map(clipView) }),
      'queue.pause': (p) => ({ hold: this.queue.pause(str(p['reason'])) }),
      'queue.resume': () => {
        this.queue.resume();
        return { hold: this.queue.status().hold };
      },
      status: () => this.summary(),
      bays: () => ({ bays: this.#bayViews(), hold: this.queue.status().hold }),
      devices: async () => ({ devices: await Promise.all(this.#allBays().map(async (b) => ({ ...this.#bayView(b), device: b.liveSession ? await bounded(summarize(b.liveSession)).catch(() => null) : null }))) }),
      diag: async (p) => {
        const bay = this.#liveBay(str(p['serial']));
        // Bounded, whatever the request says: the link test holds the camera meanwhile.
        const num = (v: unknown, max: number): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.min(v, max) : undefined);
        return bay.operate('diagnosis', (s) => diagnose(s, { linkSeconds: num(p['linkSeconds'], 30), linkBytes: num(p['linkBytes'], 64 * 1024 * 1024) }));
      },
      'diag.all': () => this.dockReport(),
      logs: async (p) => {
        const tail = p['tail'] === null ? Infinity : typeof p['tail'] === 'number' && Number.isInteger(p['tail']) && p['tail'] >= 1 ? p['tail'] : 100;
        return cameraLog(this.#liveBay(str(p['serial'])).liveSession!, tail);
      },
      firmware: async (p) => {
        const bay = this.#liveBay(str(p['serial']));
        const path = str(p['path']);
        if (!path) throw new DockError('CLI_USAGE', 'firmware needs the path of the package');
        const pkg = await readFirmwarePackageFile(path, 'the daemon');
        return bay.operate('firmware update', async (s) => {
          verifyFirmwarePackage(pkg, s.info.model, vendorKeyFor(s.info.model), path);
          const r = await pushFirmware(s, pkg, undefined, this.store.camera(s.serial)?.publicKey);
          this.ledger.append('firmware_updated', { serial: r.serial, details: { from: r.from, to: r.to, packageSha256: pkg.sha256.toString('hex'), by: 'technician' } });
          this.#log.info({ serial: r.serial, from: r.from, to: r.to }, 'camera firmware updated');
          return r;
        });
      },
      'enroll.list': () => ({ cameras: this.store.cameras().map((c) => ({ serial: c.serial, model: c.model, fingerprint: keyFingerprint(c.publicKey), enrolledMs: c.enrolledMs, revoked: c.revoked })) }),
      'enroll.identify': async (p) => {
        const bay = this.#bayOf(str(p['camera']));
        const id = await bounded(bay.identify());
        const existing = this.store.camera(id.serial);
        return { serial: id.serial, model: id.model, path: id.path, fingerprint: keyFingerprint(id.key), enrolled: existing ? { fingerprint: keyFingerprint(existing.publicKey), revoked: existing.revoked } : null };
      },
      'enroll.confirm': async (p) => {
        const bay = this.#bayOf(str(p['camera']));
        const id = await bounded(bay.identify());
        const fp = keyFingerprint(id.key);
        // What the technician confirmed must be the key the camera proves now.
        if (fp !== str(p['fingerprint'])) throw new DockError('PROTO_AUTH', `camera ${id.serial} now proves key sha256:${fp}, not the sha256:${String(p['fingerprint'])} you confirmed; nothing was enrolled. Run \`dockside enroll\` again`, { serial: id.serial });
        const existing = this.store.camera(id.serial);
        this.ledger.append('enrolled', { serial: id.serial, details: { fingerprint: fp, by: 'technician', path: id.path, replaced: existing ? keyFingerprint(existing.publicKey) : null } });
        this.store.enroll(id.serial, id.model, id.key);
        this.#log.info({ serial: id.serial, fingerprint: fp }, 'camera enrolled by a technician');
        return { enrolled: id.serial, model: id.model, fingerprint: fp, admitted: bay.readmit() };
      },
      'enroll.revoke': (p) => {
        const serial = str(p['serial']);
        if (!serial || !this.store.camera(serial)) throw new DockError('HAL_NOT_FOUND', `no enrolled camera ${serial ?? '(none given)'}; see \`dockside enroll --list\``, { serial });
        this.ledger.append('revoked', { serial, details: { by: 'technician' } });
        this.store.revoke(serial);
        this.#log.warn({ serial }, 'camera revoked by a technician; it is refused at its next dock');
        return { revoked: serial };
      },
      pull: (p) => {
        const camera = str(p['serial']);
        if (!camera) throw new DockError('CLI_USAGE', 'pull needs the serial or port path of a docked camera');
        const bay = this.#bayOf(camera);
        const serial = bay.serial;
        if (!serial) throw new DockError('CAMERA_BUSY', `the camera at ${bay.candidate.path} is still connecting; try again in a moment`, { path: bay.candidate.path });
        if (bay.state === 'refused') return { started: false, bays: [this.#bayView(bay)] }; // the summary says why
        if (bay.state === 'failed') {
          if (bay.candidate.kind === 'loopback') throw new DockError(bay.error?.code ?? 'INTERNAL', `camera ${serial} failed: ${bay.error?.message ?? 'see the log'}; undock and re-dock it`, { serial });
          // A serial or USB camera can be opened again: a fresh bay.
          this.#bays.delete(bay.candidate.path);
          if (this.#bySerial.get(serial!) === bay) this.#bySerial.delete(serial!);
          this.#attach(bay.candidate);
        } else if (bay.state === 'done' && !bay.offloadAgain()) {
          throw new DockError('CAMERA_BUSY', `camera ${serial} is busy (${bay.activity.operation ?? 'releasing clips'}); try again when it finishes`, { serial });
        }
        return { started: true, bays: this.#bayViews().filter((v) => v.serial === serial) };
      },
    };
  }

  /** The dock health report (`dockside diag --all`): a row per bay, and the dock's own state. */
  async dockReport(): Promise<DockReport> {
    const bays = this.#allBays();
    const rows = await Promise.all(
      bays.map(async (b) => {
        const s = b.liveSession;
        let camera: CameraHealth | null = null;
        let error = b.error ? { code: b.error.code, message: b.error.message } : null;
        if (s) {
          try {
            camera = await bounded(cameraHealth(s));
          } catch (err) {
            // Mid-offload on a slow link a STATUS may wait behind the pull's READs: that
            // is the link being busy, not a fault, and the bay's own state says the rest.
            const offloading = b.state === 'pulling' || b.state === 'finishing';
            const e = toDockError(err, 'PROTO_TIMEOUT', 'the camera did not answer STATUS');
            if (!offloading) error = { code: e.code, message: e.message };
          }
        }
        return dockRow({ bay: b.candidate.path, transport: b.candidate.kind, serial: b.serial ?? null, state: b.state, error, camera, ...storeFacts(this.store, b.serial ?? null) });
      }),
    );
    for (const w of this.#waiting) rows.push(dockRow({ bay: w.path, transport: w.kind, serial: null, state: 'waiting', error: null, camera: null, lastOffloadMs: null, clips: { pending: 0, quarantined: 0, failed: 0 } }));
    const q = this.queue.status();
    return { dock: { dataDir: this.dataDir, sink: this.sink.name, bays: this.#opts.bays ?? DAEMON_DEFAULTS.bays, queue: { hold: q.hold, waiting: q.waiting, inFlight: q.inFlight.length }, clips: this.store.countByState() }, bays: rows };
  }

  #allBays(): Bay[] {
    return [...this.#bays.values()];
  }

  #bayView(b: Bay): BayView {
    return { bay: b.candidate.path, transport: b.candidate.kind, serial: b.serial ?? null, state: b.state, error: b.error ? { code: b.error.code, message: b.error.message } : null, activity: b.activity };
  }

  #bayViews(): BayView[] {
    return this.#allBays().map((b) => this.#bayView(b));
  }

  #notDocked(serial: string | undefined): DockError {
    const docked = this.#allBays().flatMap((b) => (b.serial && b.state !== 'gone' ? [b.serial] : []));
    return new DockError('HAL_NOT_FOUND', `no camera ${serial ?? '(none given)'} is docked at this dock${docked.length ? `; docked: ${docked.join(', ')}` : ' (no camera is docked)'}`, { serial });
  }

  /** The bay of a docked camera (any state but gone), by serial or port path. */
  #bayOf(camera: string | undefined): Bay {
    const bay = this.#allBays()
      .filter((b) => b.state !== 'gone')
      .find((b) => b.serial === camera || b.candidate.path === camera);
    if (!bay) throw this.#notDocked(camera);
    return bay;
  }

  /** The bay of a docked, authenticated camera, for an operation over its session. */
  #liveBay(serial: string | undefined): Bay {
    // A camera is named by its serial, or by the port path `devices` shows.
    const bay = serial ? (this.#bySerial.get(serial) ?? this.#allBays().find((b) => b.candidate.path === serial && b.serial && this.#bySerial.get(b.serial) === b)) : undefined;
    if (!bay || bay.state === 'gone') {
      const refused = this.#allBays().find((b) => b.serial === serial && b.state === 'refused');
      if (refused) throw new DockError(refused.error?.code ?? 'INGEST_UNENROLLED', `camera ${serial} was refused, so the daemon does not talk to it: ${refused.error?.message ?? ''}`, { serial });
      throw this.#notDocked(serial);
    }
    if (!bay.liveSession) throw new DockError('HAL_NOT_FOUND', `camera ${serial} is in its bay but not connected (state ${bay.state}); reseat it`, { serial });
    return bay;
  }

  /**
   * Removes the spool copies of released clips whose keep period is over, or with
   * `now`, every kept copy (the spool is full and a pull needs the space). Returns how
   * many were removed.
   */
  async #reclaimSpool(now = false): Promise<number> {
    const keepMs = now ? 0 : (this.#opts.spool?.keepAfterReleaseMs ?? 0);
    let removed = 0;
    for (const c of this.store.keptSpoolCopies(now ? Number.MAX_SAFE_INTEGER : Date.now() - keepMs)) {
      try {
        await this.spool.remove(c.serial, c.clipId, c.container);
        this.store.spoolCopyRemoved(c.serial, c.clipId);
        removed++;
      } catch (err) {
        this.#log.warn({ serial: c.serial, clipId: c.clipId, err: (err as Error).message }, 'cannot remove a kept spool copy; tried again later');
      }
    }
    if (removed > 0) this.#log.info({ removed, early: now }, 'kept spool copies of released clips removed');
    return removed;
  }
}

/** How long the daemon waits for a technician command that holds the data dir for a moment. */
const TOOL_LOCK_WAIT_MS = 5000;

/**
 * Opens the data dir for the daemon. A technician command (`dockside queue`, `enroll`)
 * run while no daemon listens holds the lock for a moment: wait for it rather than
 * refuse to start. Another daemon is refused at once.
 */
async function openWaitingForTools(path: string, me: string): Promise<DataDir> {
  const t0 = Date.now();
  for (;;) {
    try {
      return openDataDir(path, me);
    } catch (err) {
      const owner = err instanceof DockError ? err.details['owner'] : undefined;
      if (typeof owner !== 'string' || owner === 'dockside run' || Date.now() - t0 > TOOL_LOCK_WAIT_MS) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function loopbackCandidate(d: DockedCamera): Candidate {
  let used = false;
  return {
    kind: 'loopback',
    path: d.path,
    profileId: undefined,
    createTransport: () => {
      if (used || !d.transport) throw new DockError('HAL_OPEN', `loopback ${d.path} was already opened`);
      used = true;
      return d.transport;
    },
  };
}
