/**
 * One view of every docked camera the host can reach, over serial and USB:
 *
 *   SerialWatcher (ports dir via chokidar + rescans) ─┐
 *                                                    ├─► Discovery: attach / detach / refused
 *   UsbDiscovery (hotplug + rescans) ─────────────────┘
 *
 * A candidate is a place a camera may be (a port path, a USB socket); which camera it
 * is comes from its HELLO. A serial port path comes back when a camera re-docks: that
 * is a 'detach' and then, in a later turn of the event loop and once the old transport
 * has closed, an 'attach' with a new candidate (SerialWatcher says how a re-dock is
 * told apart from the same docking). With a ports directory given (the simulator's, or a
 * directory of udev links), only that directory is watched: a technician pointing at
 * one dock means that dock.
 */
import { EventEmitter } from 'node:events';
import { DockError, isDockError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { loadProfiles, type CameraProfile } from './profiles.js';
import { scanSerial, SerialWatcher, type SerialCandidate } from './serial/serialDiscovery.js';
import type { Transport } from './Transport.js';
import { UsbDiscovery, type UsbCandidate } from './usb/UsbDiscovery.js';

export interface Candidate {
  kind: Transport['kind'];
  path: string;
  profileId: string | undefined;
  createTransport(): Transport;
}

export interface Refusal {
  kind: Transport['kind'];
  path: string;
  error: DockError;
}

export interface DiscoveryOptions {
  portsDir?: string; // watch only this directory of serial links; default /dev/serial/by-id plus USB
  usb?: boolean; // default: true unless portsDir is given
  profiles?: CameraProfile[];
  rescanMs?: number; // default 5000
  log?: Logger;
}

export interface DiscoveryEvents {
  attach: [candidate: Candidate];
  detach: [path: string];
  refused: [refusal: Refusal];
}

function fromSerial(c: SerialCandidate): Candidate {
  return { kind: 'serial', path: c.path, profileId: c.profile?.id, createTransport: () => c.createTransport() };
}

function fromUsb(c: UsbCandidate): Candidate {
  return { kind: 'usb', path: c.path, profileId: c.profileId, createTransport: () => c.createTransport() };
}

function usbWanted(options: DiscoveryOptions): boolean {
  return options.usb ?? options.portsDir === undefined;
}

/** Lists what is reachable now (for one-shot technician commands). */
export async function scanOnce(options: DiscoveryOptions = {}): Promise<{ candidates: Candidate[]; refused: Refusal[]; notes: string[] }> {
  const profiles = options.profiles ?? loadProfiles();
  const serial = await scanSerial({ portsDir: options.portsDir, profiles });
  const candidates = serial.candidates.map(fromSerial);
  const refused: Refusal[] = serial.refused.map((r) => ({ kind: 'serial', path: r.path, error: r.error }));
  const notes: string[] = [];
  if (usbWanted(options)) {
    const usb = new UsbDiscovery({ profiles, rescanMs: 60_000, log: options.log });
    usb.on('refused', (d, error) => refused.push({ kind: 'usb', path: d.path, error }));
    try {
      usb.start();
      candidates.push(...usb.candidates.map(fromUsb));
    } catch (err) {
      if (!isDockError(err, 'HAL_UNSUPPORTED')) throw err;
      notes.push(`USB not scanned: ${err.message}`);
    } finally {
      await usb.close();
    }
  }
  return { candidates, refused, notes };
}

/** Watches for cameras coming and going (for the daemon). */
export class Discovery extends EventEmitter<DiscoveryEvents> {
  readonly #options: DiscoveryOptions;
  readonly #log: Logger;
  #serial: SerialWatcher | undefined;
  #usb: UsbDiscovery | undefined;

  constructor(options: DiscoveryOptions = {}) {
    super();
    this.#options = options;
    this.#log = options.log ?? silentLogger();
  }

  async start(): Promise<void> {
    const profiles = this.#options.profiles ?? loadProfiles();
    const serial = new SerialWatcher({ portsDir: this.#options.portsDir, profiles, rescanMs: this.#options.rescanMs });
    serial.on('attach', (c) => this.emit('attach', fromSerial(c)));
    serial.on('detach', (path) => this.emit('detach', path));
    serial.on('refused', (path, error) => this.emit('refused', { kind: 'serial', path, error }));
    this.#serial = serial;
    await serial.start();
    if (usbWanted(this.#options)) {
      const usb = new UsbDiscovery({ profiles, rescanMs: this.#options.rescanMs, log: this.#log });
      usb.on('attach', (c) => this.emit('attach', fromUsb(c)));
      usb.on('detach', (c) => this.emit('detach', c.path));
      usb.on('refused', (d, error) => this.emit('refused', { kind: 'usb', path: d.path, error }));
      try {
        usb.start();
        this.#usb = usb;
      } catch (err) {
        if (!isDockError(err, 'HAL_UNSUPPORTED')) throw err;
        this.#log.warn({ err: err.message }, 'USB discovery unavailable on this host; serial only');
        await usb.close();
      }
    }
  }

  async close(): Promise<void> {
    await this.#serial?.close();
    await this.#usb?.close();
  }
}
