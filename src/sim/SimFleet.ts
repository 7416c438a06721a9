/**
 * A set of simulated cameras sitting in a dock: creates or reopens N cameras under
 * a directory (camera i of seed S is always the same serial, so a restart finds the
 * same flash) and docks each one over a link:
 *
 *   loopback  an in-process pair; the dock's end is announced with 'docked'
 *   pty       a socat pseudo-terminal pair; the dock's end appears as
 *             <portsDir>/<serial>, for any process that reads the ports directory
 *
 * The unplug fault is carried out here: the link is torn down, and the camera docks
 * again after `redockMs`.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LoopbackTransport } from '../hal/LoopbackTransport.js';
import { SerialTransport } from '../hal/serial/SerialTransport.js';
import type { Transport } from '../hal/Transport.js';
import { defaultProfile, type CameraProfile } from '../hal/profiles.js';
import { silentLogger, type Logger } from '../log.js';
import { NO_FAULTS, type Faults } from './faults.js';
import { Flash } from './Flash.js';
import { PtyLink } from './PtyLink.js';
import { Random } from './Random.js';
import { recordClips, type RecordOptions } from './recorder.js';
import { SimCamera, simSerial } from './SimCamera.js';

export type SimLinkKind = 'loopback' | 'pty';

export interface SimFleetOptions {
  dir: string; // flash of every camera lives under DIR/<serial>
  cameras: number; // default 2
  clips: number; // clips recorded when a camera is first created; default 4
  seed: number; // default 1
  faults?: Faults;
  link?: SimLinkKind; // default loopback
  portsDir?: string; // pty only: where the dock-side links appear; default DIR/ports
  linkRateBytesPerS?: number; // 0 = unlimited
  latencyMs?: number;
  redockMs?: number; // after an unplug fault; default 300
  record?: Partial<Pick<RecordOptions, 'mode' | 'syntheticBytes' | 'video'>>;
  profile?: CameraProfile;
  log?: Logger;
}

export interface DockedCamera {
  serial: string;
  model: string;
  link: SimLinkKind;
  /** The dock's end: a pty path, or a loopback name. */
  path: string;
  /** Loopback only: the dock's end of the pair. */
  transport?: Transport;
  /** Raw Ed25519 key to enroll (base64 of SPKI DER in `publicKeySpki`). */
  publicKeyRaw: Buffer;
  publicKeySpki: string;
}

export interface SimFleetEvents {
  docked: [camera: DockedCamera];
  undocked: [serial: string];
  error: [error: Error];
}

interface Bay {
  camera: SimCamera;
  pty?: PtyLink;
  loopback?: LoopbackTransport; // the camera's end
  redockTimer?: NodeJS.Timeout;
  docked?: DockedCamera;
}

export class SimFleet extends EventEmitter<SimFleetEvents> {
  readonly dir: string;
  readonly portsDir: string;
  readonly link: SimLinkKind;
  readonly #opts: SimFleetOptions;
  readonly #bays = new Map<string, Bay>();
  readonly #log: Logger;
  #closed = false;

  private constructor(opts: SimFleetOptions) {
    super();
    this.#opts = opts;
    this.dir = resolve(opts.dir);
    this.link = opts.link ?? 'loopback';
    this.portsDir = resolve(opts.portsDir ?? join(opts.dir, 'ports'));
    this.#log = opts.log ?? silentLogger();
  }

  /** Creates (or reopens) the cameras; call dockAll() to put them in the dock. */
  static async open(opts: SimFleetOptions): Promise<SimFleet> {
    const fleet = new SimFleet(opts);
    mkdirSync(fleet.dir, { recursive: true });
    const profile = opts.profile ?? defaultProfile();
    for (let i = 0; i < opts.cameras; i++) {
      const serial = simSerial(opts.seed, i);
      const dir = join(fleet.dir, serial);
      let flash: Flash;
      if (Flash.exists(dir)) {
        flash = Flash.open(dir);
      } else {
        const rnd = new Random(opts.seed, `${serial}/identity`);
        flash = Flash.create(dir, {
          serial,
          model: profile.model,
          vendor: profile.vendor,
          hardware: 'rev C',
          firmware: '4.2.1',
          officerId: `OFC-${String(rnd.int(1000, 9999))}`,
          seed: opts.seed,
          createdMs: Date.now(),
          clockOffsetMs: rnd.int(-120_000, 120_000),
          clockSetAtMs: Date.now(),
          driftPpm: rnd.int(-40, 40),
          batteryPct: rnd.int(15, 70),
        });
        await recordClips(flash, {
          count: opts.clips,
          mode: opts.record?.mode ?? 'mp4',
          syntheticBytes: opts.record?.syntheticBytes ?? 8 * 1024 * 1024,
          video: opts.record?.video ?? {},
          faults: opts.faults ?? NO_FAULTS,
        });
      }
      const camera = new SimCamera(flash, {
        faults: opts.faults ?? { ...NO_FAULTS },
        linkRateBytesPerS: opts.linkRateBytesPerS ?? 0,
        latencyMs: opts.latencyMs ?? 0,
        profile,
      });
      const bay: Bay = { camera };
      camera.on('unplug', (reason) => void fleet.#unplugFault(bay, reason));
      fleet.#bays.set(serial, bay);
    }
    return fleet;
  }

  get cameras(): SimCamera[] {
    return [...this.#bays.values()].map((b) => b.camera);
  }

  camera(serial: string): SimCamera | undefined {
    return this.#bays.get(serial)?.camera;
  }

  dockedCameras(): DockedCamera[] {
    return [...this.#bays.values()].flatMap((b) => (b.docked ? [b.docked] : []));
  }

  async dockAll(): Promise<DockedCamera[]> {
    const out: DockedCamera[] = [];
    for (const serial of this.#bays.keys()) out.push(await this.dock(serial));
    return out;
  }

  async dock(serial: string): Promise<DockedCamera> {
    const bay = this.#bays.get(serial);
    if (!bay) throw new Error(`no simulated camera ${serial}`);
    if (bay.docked) return bay.docked;
    const { camera } = bay;
    const publicKeySpki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), camera.publicKeyRaw]).toString('base64');
    let docked: DockedCamera;
    if (this.link === 'pty') {
      mkdirSync(this.portsDir, { recursive: true });
      const pty = await PtyLink.open(join(camera.flash.dir, 'tty'), join(this.portsDir, serial));
      const cameraEnd = new SerialTransport(pty.cameraPath);
      await cameraEnd.open();
      bay.pty = pty;
      camera.attach(cameraEnd);
      docked = { serial, model: camera.profile.model, link: 'pty', path: pty.dockPath, publicKeyRaw: camera.publicKeyRaw, publicKeySpki };
    } else {
      const [dockEnd, cameraEnd] = LoopbackTransport.pair(`sim:${serial}`);
      bay.loopback = cameraEnd;
      camera.attach(cameraEnd);
      docked = { serial, model: camera.profile.model, link: 'loopback', path: dockEnd.path, transport: dockEnd, publicKeyRaw: camera.publicKeyRaw, publicKeySpki };
    }
    bay.docked = docked;
    this.#log.info({ serial, link: this.link, path: docked.path }, 'camera docked');
    this.emit('docked', docked);
    return docked;
  }

  async undock(serial: string): Promise<void> {
    const bay = this.#bays.get(serial);
    if (!bay?.docked) return;
    bay.docked = undefined;
    if (bay.redockTimer) clearTimeout(bay.redockTimer);
    bay.redockTimer = undefined;
    if (bay.loopback) {
      bay.loopback.unplug();
      bay.loopback = undefined;
    }
    bay.camera.detach();
    if (bay.pty) {
      await bay.pty.close();
      bay.pty = undefined;
    }
    this.#log.info({ serial }, 'camera undocked');
    this.emit('undocked', serial);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const serial of this.#bays.keys()) await this.undock(serial);
    for (const bay of this.#bays.values()) await bay.camera.close();
  }

  async #unplugFault(bay: Bay, reason: string): Promise<void> {
    const serial = bay.camera.serial;
    this.#log.warn({ serial, reason }, 'simulated unplug');
    try {
      await this.undock(serial);
      if (this.#closed) return;
      bay.redockTimer = setTimeout(() => {
        bay.redockTimer = undefined;
        if (!this.#closed) this.dock(serial).catch((err: Error) => this.emit('error', err));
      }, this.#opts.redockMs ?? 300);
    } catch (err) {
      this.emit('error', err as Error);
    }
  }
}
