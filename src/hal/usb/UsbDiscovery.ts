/**
 * Finds docked cameras on USB. Devices are matched against the camera profiles'
 * fingerprints (fingerprint.ts); what matches one profile is announced as a candidate,
 * what matches several is refused with HAL_AMBIGUOUS, the rest is ignored.
 *
 *   start()  watch hotplug (attach / detach) ─┐
 *            list the bus now ────────────────┼─► by path: attach | refused | detach
 *            list again every rescanMs ───────┘   (each path announced once)
 *
 * The periodic listing is the fallback for hotplug events that never come (no udev,
 * a busy hub, a platform without hotplug): a device that appeared is attached, one
 * that vanished is detached, and one whose bus address changed at the same path was
 * re-docked in between and is detached and attached again.
 *
 * A candidate's path names the dock socket, not the camera: the camera is identified
 * later by the serial number in its HELLO, never by where it is plugged in.
 */
import { EventEmitter } from 'node:events';
import { DockError, toDockError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { loadProfiles, type CameraProfile } from '../profiles.js';
import { hex4, usbPath, type UsbBus, type UsbDeviceRecord } from './device.js';
import { matchingProfiles } from './fingerprint.js';
import { libusbBus } from './libusb.js';
import { UsbTransport, type UsbTransportOptions } from './UsbTransport.js';

export interface UsbDiscoveryOptions {
  profiles?: readonly CameraProfile[]; // default: every profile in hardware/models/
  rescanMs?: number; // period of the full re-listing; default 5000
  bus?: UsbBus; // default: the host's bus through libusb
  transport?: UsbTransportOptions; // defaults for every candidate's createTransport()
  log?: Logger;
}

export const USB_DISCOVERY_DEFAULTS = {
  rescanMs: 5000,
} as const;

/** A USB device as discovery saw it. */
export interface UsbSighting {
  readonly path: string; // usb:<bus>-<ports>, the dock socket (see hardware/docks/)
  readonly vendorId: number;
  readonly productId: number;
  readonly busNumber: number;
  readonly deviceAddress: number;
}

/** A device that matches exactly one camera profile. */
export interface UsbCandidate extends UsbSighting {
  readonly profileId: string;
  readonly profile: CameraProfile;
  /** A transport for this device; nothing is opened until its open(). */
  createTransport(options?: UsbTransportOptions): UsbTransport;
}

/** A device that matches several profiles, so it cannot be a candidate. */
export interface RefusedUsbDevice extends UsbSighting {
  readonly profileIds: readonly string[];
}

export interface UsbDiscoveryEvents {
  attach: [candidate: UsbCandidate];
  detach: [candidate: UsbCandidate];
  refused: [device: RefusedUsbDevice, error: DockError];
}

/** Invariant: one entry per path, for as long as a matching device is at that path. */
type Known = { kind: 'candidate'; sighting: UsbCandidate } | { kind: 'refused'; sighting: RefusedUsbDevice };

export class UsbDiscovery extends EventEmitter<UsbDiscoveryEvents> {
  readonly #profiles: readonly CameraProfile[];
  readonly #bus: UsbBus;
  readonly #rescanMs: number;
  readonly #transportOptions: UsbTransportOptions;
  readonly #log: Logger;
  readonly #known = new Map<string, Known>();
  #stopWatching: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #closed = false;

  constructor(options: UsbDiscoveryOptions = {}) {
    super();
    const rescanMs = options.rescanMs ?? USB_DISCOVERY_DEFAULTS.rescanMs;
    if (!Number.isInteger(rescanMs) || rescanMs <= 0) throw new DockError('CONFIG_INVALID', `usb discovery option rescanMs must be a positive integer (ms), got ${String(rescanMs)}`);
    this.#rescanMs = rescanMs;
    this.#profiles = options.profiles ?? loadProfiles();
    this.#bus = options.bus ?? libusbBus();
    this.#transportOptions = options.transport ?? {};
    this.#log = options.log ?? silentLogger();
  }

  /** The candidates docked now. */
  get candidates(): UsbCandidate[] {
    const out: UsbCandidate[] = [];
    for (const k of this.#known.values()) if (k.kind === 'candidate') out.push(k.sighting);
    return out;
  }

  /**
   * Starts watching, then lists what is docked already; events for those devices are
   * emitted before this returns, so attach the listeners first. Throws HAL_UNSUPPORTED
   * when the bus cannot be listed at all.
   */
  start(): void {
    if (this.#closed) throw new DockError('HAL_UNSUPPORTED', 'usb discovery was closed; create a new one');
    if (this.#started) return;
    this.#started = true;
    // Watch before the first listing, so a camera docked in between is not missed;
    // seeing it twice is harmless (one entry per path).
    this.#stopWatching = this.#bus.watch(
      (d) => this.#sighted(d),
      (d) => this.#vanished(d),
    );
    try {
      this.#scan();
    } catch (err) {
      this.#stop();
      throw toDockError(err, 'HAL_UNSUPPORTED', 'cannot list USB devices through libusb; check that /dev/bus/usb and /sys/bus/usb exist on this host (inside a container, pass them through)');
    }
    this.#timer = setInterval(() => this.rescan(), this.#rescanMs);
    // The hotplug watch holds the event loop while discovery runs; the fallback timer
    // must not be one more reason for a process to outlive its work.
    this.#timer.unref();
  }

  /** Lists the bus now and reconciles; called every rescanMs, and by anyone who knows better. */
  rescan(): void {
    if (this.#closed || !this.#started) return;
    try {
      this.#scan();
    } catch (err) {
      this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'usb rescan failed; trying again at the next one');
    }
  }

  /** Stops hotplug notifications and the rescan timer; candidates already handed out stay usable. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stop();
  }

  #stop(): void {
    // Removing our attach/detach listeners lets the `usb` package stop hotplug (and
    // release the event loop) once no one else listens.
    this.#stopWatching?.();
    this.#stopWatching = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #scan(): void {
    const present = new Set<string>();
    for (const device of this.#bus.list()) {
      const path = usbPath(device.busNumber, device.portNumbers, device.deviceAddress);
      present.add(path);
      this.#consider(device, path);
    }
    for (const [path, known] of [...this.#known]) if (!present.has(path)) this.#forget(path, known);
  }

  #sighted(device: UsbDeviceRecord): void {
    if (this.#closed) return;
    this.#consider(device, usbPath(device.busNumber, device.portNumbers, device.deviceAddress));
  }

  #vanished(device: UsbDeviceRecord): void {
    if (this.#closed) return;
    const path = usbPath(device.busNumber, device.portNumbers, device.deviceAddress);
    const known = this.#known.get(path);
    // A detach for an older address at this path is stale: a newer device is there now.
    if (known && known.sighting.deviceAddress === device.deviceAddress) this.#forget(path, known);
  }

  #consider(device: UsbDeviceRecord, path: string): void {
    const known = this.#known.get(path);
    if (known) {
      if (known.sighting.deviceAddress === device.deviceAddress) return;
      // Same socket, new bus address: re-docked between two looks, events missed.
      this.#forget(path, known);
    }
    const matches = matchingProfiles({ vendorId: device.vendorId, productId: device.productId, interfaces: device.interfaces() }, this.#profiles);
    if (matches.length === 0) return;
    const sighting: UsbSighting = { path, vendorId: device.vendorId, productId: device.productId, busNumber: device.busNumber, deviceAddress: device.deviceAddress };
    const ids = `${hex4(device.vendorId)}:${hex4(device.productId)}`;
    if (matches.length > 1) {
      const refused: RefusedUsbDevice = { ...sighting, profileIds: matches.map((p) => p.id) };
      this.#known.set(path, { kind: 'refused', sighting: refused });
      const error = new DockError(
        'HAL_AMBIGUOUS',
        `USB device ${path} (${ids}) matches ${matches.length} camera profiles (${refused.profileIds.join(', ')}); dockside will not guess which camera it is. Make their fingerprints in hardware/models/ distinct (ids, interface number or class), then re-dock the camera`,
        { path, vendorId: device.vendorId, productId: device.productId, profiles: refused.profileIds },
      );
      this.#log.warn({ path, profiles: refused.profileIds }, 'ambiguous usb device refused');
      this.emit('refused', refused, error);
      return;
    }
    const profile = matches[0]!;
    const defaults = this.#transportOptions;
    const candidate: UsbCandidate = {
      ...sighting,
      profileId: profile.id,
      profile,
      createTransport: (options = {}) => new UsbTransport(device.handle(), profile, { ...defaults, ...options }),
    };
    this.#known.set(path, { kind: 'candidate', sighting: candidate });
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ path, profile: profile.id, ids }, 'usb camera attached');
    this.emit('attach', candidate);
  }

  #forget(path: string, known: Known): void {
    this.#known.delete(path);
    if (known.kind !== 'candidate') return;
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ path, profile: known.sighting.profileId }, 'usb camera detached');
    this.emit('detach', known.sighting);
  }
}
