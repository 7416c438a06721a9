/**
 * Finding serial-attached cameras.
 *
 * - A ports directory of links (on Linux /dev/serial/by-id, where udev names each
 *   port after the device's vendor, model and serial; or the simulator's --ports-dir)
 *   is listed, and watched with chokidar for links that come and go.
 * - SerialPort.list() is asked too, filtered by the profiles' USB ids, as a rescan.
 *   It shells out to `udevadm`, and when that binary is missing the spawn error is
 *   thrown where no caller can catch it (it kills the process): so it is only called
 *   when udevadm is on PATH.
 *
 * In a ports directory every entry is a candidate (the simulator names links by
 * serial); in /dev/serial/by-id only names that match a profile's byIdPattern are.
 * A name that matches two profiles is refused, never guessed. Whatever the path, the
 * camera is identified later by the serial number in its HELLO.
 */
import { EventEmitter } from 'node:events';
import { accessSync, constants, existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { SerialPort } from 'serialport';
import { DockError } from '../../errors.js';
import type { CameraProfile } from '../profiles.js';
import { SerialTransport } from './SerialTransport.js';

export const DEFAULT_BY_ID_DIR = '/dev/serial/by-id';

export interface SerialCandidate {
  kind: 'serial';
  path: string; // as found (the link), used for display and reopening
  device: string; // the link's target, for de-duplication
  profile: CameraProfile | undefined; // undefined: to be identified by HELLO alone
  createTransport(): SerialTransport;
}

export interface SerialScanResult {
  candidates: SerialCandidate[];
  refused: { path: string; error: DockError }[];
}

export interface SerialScanOptions {
  portsDir?: string; // default /dev/serial/by-id, filtered by profile patterns
  profiles: CameraProfile[];
  useSystemList?: boolean; // default: true when no portsDir is given
}

function onPath(bin: string): boolean {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      continue;
    }
  }
  return false;
}

function candidate(path: string, profile: CameraProfile | undefined): SerialCandidate {
  let device = path;
  try {
    device = realpathSync(path);
  } catch {
    // a dangling link is still reported; opening it will say what is wrong
  }
  const baudRate = profile?.serial.baudRate ?? 115200;
  return { kind: 'serial', path, device, profile, createTransport: () => new SerialTransport(path, { baudRate }) };
}

/** Classifies one port name; throws HAL_AMBIGUOUS when more than one profile matches. */
export function matchByIdName(name: string, profiles: CameraProfile[]): CameraProfile | undefined {
  const hits = profiles.filter((p) => new RegExp(p.serial.byIdPattern).test(name));
  if (hits.length > 1) {
    throw new DockError('HAL_AMBIGUOUS', `serial port ${name} matches several camera profiles (${hits.map((p) => p.id).join(', ')}); refusing to guess. Make the byIdPattern of those profiles in hardware/models distinct`, {
      name,
      profiles: hits.map((p) => p.id),
    });
  }
  return hits[0];
}

function isPortEntry(path: string): boolean {
  try {
    const st = statSync(path); // follows the link
    return st.isCharacterDevice();
  } catch {
    return false;
  }
}

export async function scanSerial(options: SerialScanOptions): Promise<SerialScanResult> {
  const result: SerialScanResult = { candidates: [], refused: [] };
  const seen = new Set<string>();
  const add = (c: SerialCandidate): void => {
    if (seen.has(c.device)) return;
    seen.add(c.device);
    result.candidates.push(c);
  };
  const dir = options.portsDir ?? DEFAULT_BY_ID_DIR;
  const filtered = options.portsDir === undefined;
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (!isPortEntry(path)) continue;
      try {
        const profile = matchByIdName(name, options.profiles);
        if (filtered && !profile) continue;
        add(candidate(path, profile));
      } catch (err) {
        result.refused.push({ path, error: err as DockError });
      }
    }
  }
  if ((options.useSystemList ?? filtered) && onPath('udevadm')) {
    const ports = await SerialPort.list().catch(() => []);
    for (const p of ports) {
      const vid = p.vendorId ? parseInt(p.vendorId, 16) : NaN;
      const pid = p.productId ? parseInt(p.productId, 16) : NaN;
      const hits = options.profiles.filter((pr) => pr.usb.vendorId === vid && pr.usb.productId === pid);
      if (hits.length > 1) {
        result.refused.push({ path: p.path, error: new DockError('HAL_AMBIGUOUS', `serial port ${p.path} (${p.vendorId}:${p.productId}) matches several camera profiles; refusing to guess`, { path: p.path }) });
      } else if (hits.length === 1) {
        add(candidate(p.path, hits[0]));
      }
    }
  }
  return result;
}

export interface SerialWatcherEvents {
  attach: [candidate: SerialCandidate];
  detach: [path: string];
  refused: [path: string, error: DockError];
}

/**
 * Watches a ports directory: 'attach' when a port link appears, 'detach' when it
 * goes. A periodic rescan (rescanMs) catches anything the watcher missed.
 */
export class SerialWatcher extends EventEmitter<SerialWatcherEvents> {
  readonly #options: SerialScanOptions & { rescanMs: number };
  readonly #known = new Map<string, SerialCandidate>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;

  constructor(options: SerialScanOptions & { rescanMs?: number }) {
    super();
    this.#options = { ...options, rescanMs: options.rescanMs ?? 5000 };
  }

  async start(): Promise<void> {
    const dir = this.#options.portsDir ?? DEFAULT_BY_ID_DIR;
    if (existsSync(dir)) {
      this.#watcher = watch(dir, { depth: 0, ignoreInitial: true, followSymlinks: false });
      this.#watcher.on('all', () => void this.rescan());
      await new Promise<void>((r) => this.#watcher!.once('ready', () => r()));
    }
    await this.rescan();
    this.#timer = setInterval(() => void this.rescan(), this.#options.rescanMs);
    this.#timer.unref();
  }

  get known(): SerialCandidate[] {
    return [...this.#known.values()];
  }

  rescan(): Promise<void> {
    this.#scanning ??= this.#scan().finally(() => (this.#scanning = undefined));
    return this.#scanning;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#watcher?.close();
    await this.#scanning;
  }

  async #scan(): Promise<void> {
    const { candidates, refused } = await scanSerial(this.#options);
    // Same link, new target (a re-dock made a new pty): that is a detach and an attach.
    const now = new Map(candidates.map((c) => [c.path, c.device]));
    for (const [path, known] of this.#known) {
      if (now.get(path) !== known.device) {
        this.#known.delete(path);
        this.emit('detach', path);
      }
    }
    for (const c of candidates) {
      if (this.#known.has(c.path)) continue;
      this.#known.set(c.path, c);
      this.emit('attach', c);
    }
    for (const r of refused) this.emit('refused', r.path, r.error);
  }
}
