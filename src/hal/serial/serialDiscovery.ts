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
 *
 * A path is not a camera: the same name comes back when a camera re-docks (udev's
 * by-id link, /dev/ttyACM0, the simulator's <portsDir>/<serial>), often onto the same
 * device number, so the watcher tells dockings apart by the node (SerialNode) and by
 * the transports it handed out, not by the path or the link's target.
 */
import { EventEmitter } from 'node:events';
import { accessSync, constants, existsSync, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { SerialPort } from 'serialport';
import { DockError } from '../../errors.js';
import type { CameraProfile } from '../profiles.js';
import { SerialTransport, type SerialOptions } from './SerialTransport.js';

export const DEFAULT_BY_ID_DIR = '/dev/serial/by-id';

export interface SerialCandidate {
  kind: 'serial';
  path: string; // as found (the link), used for display and reopening
  device: string; // the link's target, for de-duplication
  node: SerialNode; // which node it was when found: a re-docked camera makes another
  profile: CameraProfile | undefined; // undefined: to be identified by HELLO alone
  createTransport(): SerialTransport;
}

/**
 * What tells one device node from the next at the same path: the link itself (udev
 * and socat make a new one per docking, though the file system may reuse its inode)
 * and the character device it leads to (a new node per docking, though the kernel
 * reuses the number: /dev/pts/N, /dev/ttyACM0). The change times are what differ
 * then; birth times too where the file system keeps them (devpts does not).
 */
export interface SerialNode {
  linkIno: bigint;
  linkCtimeNs: bigint;
  ino: bigint;
  rdev: bigint; // the device number: major and minor
  ctimeNs: bigint;
  birthtimeNs: bigint;
}

function sameNode(a: SerialNode, b: SerialNode): boolean {
  return a.linkIno === b.linkIno && a.linkCtimeNs === b.linkCtimeNs && a.ino === b.ino && a.rdev === b.rdev && a.ctimeNs === b.ctimeNs && a.birthtimeNs === b.birthtimeNs;
}

const UNKNOWN_NODE: SerialNode = { linkIno: 0n, linkCtimeNs: 0n, ino: 0n, rdev: 0n, ctimeNs: 0n, birthtimeNs: 0n };

/** The node at a path when it is a character device (through a link), else undefined. */
function serialNodeAt(path: string): SerialNode | undefined {
  try {
    const link = lstatSync(path, { bigint: true });
    const node = statSync(path, { bigint: true }); // follows the link
    if (!node.isCharacterDevice()) return undefined;
    return { linkIno: link.ino, linkCtimeNs: link.ctimeNs, ino: node.ino, rdev: node.rdev, ctimeNs: node.ctimeNs, birthtimeNs: node.birthtimeNs };
  } catch {
    return undefined; // gone, or a dangling link
  }
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

function candidate(path: string, node: SerialNode, profile: CameraProfile | undefined): SerialCandidate {
  let device = path;
  try {
    device = realpathSync(path);
  } catch {
    // a dangling link is still reported; opening it will say what is wrong
  }
  const baudRate = profile?.serial.baudRate ?? 115200;
  return { kind: 'serial', path, device, node, profile, createTransport: () => new SerialTransport(path, { baudRate }) };
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
      const node = serialNodeAt(path);
      if (!node) continue;
      try {
        const profile = matchByIdName(name, options.profiles);
        if (filtered && !profile) continue;
        add(candidate(path, node, profile));
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
        // Listed by udev, so reported even when it cannot be looked at: opening it will say why.
        add(candidate(p.path, serialNodeAt(p.path) ?? UNKNOWN_NODE, hits[0]));
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
 * A transport the watcher handed out: it tells the watcher when the port is really
 * closed (its file descriptor gone, or its open failed), and whether the device went
 * away unasked. A device that vanished is closed at once, so its file descriptor does
 * not outlive it. Until then its path counts as in use.
 */
class WatchedTransport extends SerialTransport {
  readonly #released: (lost: boolean) => void;
  #closing: Promise<void> | undefined;
  #lost = false;
  #done = false;

  constructor(path: string, options: SerialOptions, released: (lost: boolean) => void) {
    super(path, options);
    this.#released = released;
    this.on('disconnected', () => {
      this.#lost = true;
      void this.close();
    });
  }

  override async open(): Promise<void> {
    try {
      await super.open();
    } catch (err) {
      this.#release();
      throw err;
    }
  }

  // The owner and the watcher may both close it: both wait for the same close.
  override close(): Promise<void> {
    this.#closing ??= super
      .close()
      .catch(() => undefined)
      .finally(() => this.#release());
    return this.#closing;
  }

  #release(): void {
    if (this.#done) return;
    this.#done = true;
    this.#released(this.#lost);
  }
}

interface Announced {
  candidate: SerialCandidate; // as handed to 'attach' listeners
  node: SerialNode;
  device: string;
}

/**
 * Watches a ports directory: 'attach' when a port appears, 'detach' when it goes.
 *
 *   chokidar event ──┐
 *   rescan timer ────┼─► scan: each path's node (link + device node identity) ─► attach / detach
 *   transport lost ──┘
 *
 * A path is announced once per docking. The announcement ends ('detach') when the
 * path goes, when another node is found there (a camera re-docked onto the same name:
 * a pty at the same /dev/pts/N, a /dev/ttyACM0 made again by a replug), or when a
 * transport opened from it reports the device gone; comparing link targets alone
 * misses the first two whenever no scan fell into the moment the path was away.
 *
 * Invariants:
 * - While a transport opened from a path is open, that path is not announced again,
 *   so a port still in use is never opened twice. Another node at its path with the
 *   same device number is left to that transport: a real unplug hangs it up (and it
 *   reports the loss), while udev touching the node's times must not drop a camera
 *   mid-offload. Another device number, or no node at all, ends the announcement.
 * - The attach that follows a detach of the same path comes in a later turn of the
 *   event loop, after every transport of the old announcement has closed: a listener
 *   that frees the path asynchronously has freed it by then.
 * - A scan asked for while one runs runs again after it, so no change is missed.
 */
export class SerialWatcher extends EventEmitter<SerialWatcherEvents> {
  readonly #options: SerialScanOptions & { rescanMs: number };
  readonly #known = new Map<string, Announced>();
  /** Transports handed out and not yet closed, by path: a path in here is in use. */
  readonly #inUse = new Map<string, Set<WatchedTransport>>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Immediate | undefined;
  #scanning: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(options: SerialScanOptions & { rescanMs?: number }) {
    super();
    this.#options = { ...options, rescanMs: options.rescanMs ?? 5000 };
  }

  async start(): Promise<void> {
    const dir = this.#options.portsDir ?? DEFAULT_BY_ID_DIR;
    if (existsSync(dir)) {
      this.#watcher = watch(dir, { depth: 0, ignoreInitial: true, followSymlinks: false });
      this.#watcher.on('all', () => this.#kick());
      this.#watcher.on('error', () => this.#kick()); // the rescans carry on meanwhile
      await new Promise<void>((r) => this.#watcher!.once('ready', () => r()));
    }
    await this.rescan();
    this.#timer = setInterval(() => this.#kick(), this.#options.rescanMs);
    this.#timer.unref();
  }

  get known(): SerialCandidate[] {
    return [...this.#known.values()].map((a) => a.candidate);
  }

  rescan(): Promise<void> {
    if (this.#scanning) {
      this.#again = true;
      return this.#scanning;
    }
    this.#scanning = (async () => {
      do {
        this.#again = false;
        await this.#scan();
      } while (this.#again && !this.#closed);
    })().finally(() => (this.#scanning = undefined));
    return this.#scanning;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#soon) clearImmediate(this.#soon);
    await this.#watcher?.close();
    await this.#scanning?.catch(() => undefined);
  }

  #kick(): void {
    if (!this.#closed) this.rescan().catch(() => undefined); // the next scan tries again
  }

  /** A scan in a later turn of the event loop (once, however often asked). */
  #later(): void {
    if (this.#closed || this.#soon) return;
    this.#soon = setImmediate(() => {
      this.#soon = undefined;
      this.#kick();
    });
  }

  async #scan(): Promise<void> {
    const { candidates, refused } = await scanSerial(this.#options);
    if (this.#closed) return;
    const found = new Map(candidates.map((c) => [c.path, c]));
    const ended = new Set<string>();
    for (const [path, known] of this.#known) {
      const now = found.get(path);
      if (now && sameNode(now.node, known.node)) continue;
      if (now && this.#inUse.has(path) && now.device === known.device && now.node.rdev === known.node.rdev) continue;
      this.#known.delete(path);
      ended.add(path);
      this.emit('detach', path);
    }
    for (const c of candidates) {
      if (this.#known.has(c.path) || this.#inUse.has(c.path)) continue; // in use: looked at again when it closes
      if (ended.has(c.path)) {
        this.#later();
        continue;
      }
      this.#announce(c);
    }
    for (const r of refused) this.emit('refused', r.path, r.error);
  }

  #announce(c: SerialCandidate): void {
    const baudRate = c.profile?.serial.baudRate ?? 115200;
    const entry: Announced = { node: c.node, device: c.device, candidate: { ...c, createTransport: () => this.#handOut(entry, baudRate) } };
    this.#known.set(c.path, entry);
    this.emit('attach', entry.candidate);
  }

  #handOut(entry: Announced, baudRate: number): SerialTransport {
    const { path } = entry.candidate;
    const t: WatchedTransport = new WatchedTransport(path, { baudRate }, (lost) => {
      const open = this.#inUse.get(path);
      open?.delete(t);
      if (open?.size === 0) this.#inUse.delete(path);
      // The device went away: this docking is over, whatever the node looks like now.
      if (lost && this.#known.get(path) === entry) {
        this.#known.delete(path);
        this.emit('detach', path);
      }
      this.#later();
    });
    let open = this.#inUse.get(path);
    if (!open) this.#inUse.set(path, (open = new Set()));
    open.add(t);
    return t;
  }
}
