/**
 * The docking-station daemon: every docked camera in a bay of its own (up to
 * `bays` at once; more wait their turn), one verify-and-store pipeline, one state
 * store, one ledger.
 *
 *   Discovery (serial, USB) ─┐
 *   SimFleet (--sim) ────────┴─► attach ─► Bay ─► spool ─► Pipeline ─► sink ─► Bay releases
 *
 * On start, work that a previous run left half done resumes from the state store:
 * spooled / verified / uploading clips go straight to the pipeline; pulls resume at
 * their durable offsets when their camera docks; stored clips are released then.
 */
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import type { DockKey } from '../custody/dockKey.js';
import type { Ledger } from '../custody/Ledger.js';
import { DockError } from '../errors.js';
import { Discovery, type Candidate } from '../hal/discovery.js';
import { silentLogger, type Logger } from '../log.js';
import type { SessionOptions } from '../protocol/Session.js';
import type { Store } from '../queue/Store.js';
import { DirSink } from '../queue/sinks/DirSink.js';
import type { Sink } from '../queue/sinks/Sink.js';
import { NO_FAULTS, type Faults } from '../sim/faults.js';
import type { RecordOptions } from '../sim/recorder.js';
import { SimFleet, type DockedCamera, type SimLinkKind } from '../sim/SimFleet.js';
import { HashPool } from '../verify/HashPool.js';
import { Bay } from './Bay.js';
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

export interface DaemonOptions {
  dataDir: string;
  sink?: string; // dir:PATH; default dir:DATA_DIR/vault
  bays?: number; // cameras served at once; default 8
  spool?: Partial<SpoolOptions>;
  sim?: SimOptions; // dock simulated cameras whose flash lives in DATA_DIR/sim
  portsDir?: string; // serial discovery only in this directory
  usb?: boolean;
  session?: SessionOptions;
  clockSkewMs?: number; // SET_TIME beyond this; default 2000
  hashThreads?: number;
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
  bytes: number; // bytes in the evidence store
  seconds: number;
}

export function parseSink(spec: string): { kind: 'dir'; path: string } {
  if (spec.startsWith('dir:') && spec.length > 4) return { kind: 'dir', path: resolve(spec.slice(4)) };
  throw new DockError('CONFIG_INVALID', `sink ${JSON.stringify(spec)} is not one this dock knows: use dir:PATH (a local vault)`, { sink: spec });
}

export class Daemon {
  readonly dataDir: string;
  readonly store: Store;
  readonly ledger: Ledger;
  readonly dockKey: DockKey;
  readonly spool: Spool;
  readonly sink: Sink;
  readonly pipeline: Pipeline;
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
  #closed = false;

  private constructor(opts: DaemonOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? silentLogger();
    this.#dir = openDataDir(opts.dataDir, 'dockside run');
    this.dataDir = this.#dir.path;
    this.store = this.#dir.store;
    this.dockKey = this.#dir.dockKey;
    this.ledger = this.#dir.ledger;
    this.spool = new Spool(this.dataDir, opts.spool);
    this.#hashes = new HashPool({ threads: opts.hashThreads });
    const sink = parseSink(opts.sink ?? `dir:${join(this.dataDir, 'vault')}`);
    this.sink = new DirSink(sink.path, this.#hashes);
    this.pipeline = new Pipeline({ store: this.store, ledger: this.ledger, spool: this.spool, hashes: this.#hashes, sink: this.sink, dockKey: this.dockKey, log: this.#log.child({ part: 'pipeline' }) });
    this.pipeline.on('stored', (serial) => void this.#bySerial.get(serial)?.releaseStored().catch((err: Error) => this.#log.warn({ serial, err: err.message }, 'release failed')));
    this.pipeline.on('idle', () => this.#checkIdle());
    this.pipeline.on('stuck', () => this.#checkIdle());
  }

  static async open(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
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
    this.pipeline.kick(); // what a previous run left spooled, verified or uploading
    // The heartbeat keeps the daemon alive when nothing else would (a loopback fleet
    // holds no handles) and retries anything left waiting.
    this.#heartbeat = setInterval(() => this.pipeline.kick(), HEARTBEAT_MS);
    if (this.#fleet) await this.#fleet.dockAll();
    if (!this.#opts.sim || this.#opts.sim.link === 'pty') {
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
    const inVault = this.store.clips({ state: ['stored', 'released'] });
    return {
      cameras: this.store.cameras().length,
      clips: Object.values(n).reduce((a, b) => a + b, 0),
      stored: n.stored + n.released,
      quarantined: n.quarantined,
      released: n.released,
      bytes: inVault.reduce((a, c) => a + c.size, 0),
      seconds: Math.round((Date.now() - this.#startMs) / 10) / 100,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    await this.#discovery?.close();
    for (const bay of this.#bays.values()) await bay.close();
    await this.pipeline.close();
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
    if (this.#closed || this.#bays.has(c.path)) return;
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

  #detach(path: string): void {
    const w = this.#waiting.findIndex((c) => c.path === path);
    if (w >= 0) this.#waiting.splice(w, 1);
    const bay = this.#bays.get(path);
    if (!bay) return;
    void bay.close().then(() => this.#free(path, bay, 'gone'));
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    const stuck = this.pipeline.stuck;
    if (stuck.length > 0) {
      const e = stuck[0]!.error;
      const err = new DockError(e.code, `cannot reach idle: ${e.message}`, { ...e.details, serial: stuck[0]!.serial });
      for (const w of this.#idleWaiters.splice(0)) w.reject(err);
      return;
    }
    if (this.#waiting.length > 0 || this.pipeline.busy) return;
    const bays = [...this.#bays.values()];
    if (!bays.every((b) => b.state === 'done' || b.state === 'refused' || b.state === 'failed')) return;
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
