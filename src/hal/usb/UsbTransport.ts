/**
 * USB backend: the camera's vendor interface with one bulk IN and one bulk OUT
 * endpoint, as a Transport. Written against the small handle interfaces of device.ts;
 * libusb.ts wraps a real `usb.Device` (the `usb` package, 2.x legacy API) in them.
 *
 *   open   device.open ─► kernel driver on the interface? detach (remember it)
 *          ─► claim ─► bulk endpoints by the profile's addresses ─► N reads queued on IN
 *   data   each completed IN read ─► 'data'
 *   write  bulk OUT transfers one at a time, each with a timeout, plus a zero-length
 *          packet after a write that fills its last packet exactly
 *   close  cancel the reads (and wait for them) ─► release ─► re-attach the kernel
 *          driver if we detached it ─► device.close; never throws
 *
 * A failed IN read, a NO_DEVICE error or the device's detach event means the camera
 * is gone: `disconnected` fires once with HAL_DISCONNECTED and the handle is freed.
 */
import { BaseTransport, type TransportKind } from '../Transport.js';
import { DockError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import type { CameraProfile } from '../profiles.js';
import { hex4, TRANSFER_TYPE_BULK, usbPath, type UsbDeviceHandle, type UsbInEndpointHandle, type UsbInterfaceHandle, type UsbOutEndpointHandle } from './device.js';
import { usbErrorName, usbFailure } from './libusbErrors.js';

export interface UsbTransportOptions {
  transferTimeoutMs?: number; // each OUT and control transfer; default: the profile's usb.transferTimeoutMs
  pollTransfers?: number; // IN reads kept queued in the kernel; default 4
  pollTransferBytes?: number; // bytes per IN read, rounded down to whole max-size packets; default 16384
  closeTimeoutMs?: number; // longest close() waits for queued reads and writes to settle; default 2000
  log?: Logger;
}

export const USB_TRANSPORT_DEFAULTS = {
  pollTransfers: 4,
  pollTransferBytes: 16 * 1024,
  closeTimeoutMs: 2000,
} as const;

const ZERO_LENGTH_PACKET = Buffer.alloc(0);

export class UsbTransport extends BaseTransport {
  readonly kind: TransportKind = 'usb';
  readonly path: string;
  readonly profile: CameraProfile;
  readonly #device: UsbDeviceHandle;
  readonly #timeoutMs: number;
  readonly #pollTransfers: number;
  readonly #pollTransferBytes: number;
  readonly #closeTimeoutMs: number;
  readonly #log: Logger;
  readonly #details: Record<string, unknown>;
  #iface: UsbInterfaceHandle | undefined;
  #in: UsbInEndpointHandle | undefined;
  #out: UsbOutEndpointHandle | undefined;
  #maxPacket: number;
  // What open() acquired, so teardown gives back exactly that, in reverse order.
  #deviceOpen = false;
  #claimed = false;
  #kernelDriverDetached = false;
  #polling = false;
  #unsubscribeDetach: (() => void) | undefined;
  /** Tail of the write queue: OUT transfers go one at a time, in call order. */
  #writes: Promise<void> = Promise.resolve();
  #teardown: Promise<void> | undefined;

  constructor(device: UsbDeviceHandle, profile: CameraProfile, options: UsbTransportOptions = {}) {
    super();
    this.#device = device;
    this.profile = profile;
    this.path = usbPath(device.busNumber, device.portNumbers, device.deviceAddress);
    this.#timeoutMs = positiveInteger('transferTimeoutMs', options.transferTimeoutMs ?? profile.usb.transferTimeoutMs);
    this.#pollTransfers = positiveInteger('pollTransfers', options.pollTransfers ?? USB_TRANSPORT_DEFAULTS.pollTransfers);
    this.#pollTransferBytes = positiveInteger('pollTransferBytes', options.pollTransferBytes ?? USB_TRANSPORT_DEFAULTS.pollTransferBytes);
    this.#closeTimeoutMs = positiveInteger('closeTimeoutMs', options.closeTimeoutMs ?? USB_TRANSPORT_DEFAULTS.closeTimeoutMs);
    this.#log = options.log ?? silentLogger();
    this.#maxPacket = profile.usb.maxPacketBytes;
    this.#details = { path: this.path, kind: 'usb', profile: profile.id, vendorId: device.vendorId, productId: device.productId };
  }

  /** Bytes per IN read actually queued (a whole number of max-size packets). */
  get pollTransferBytes(): number {
    const packet = this.#in?.maxPacketSize || this.profile.usb.maxPacketBytes;
    return Math.max(packet, Math.floor(this.#pollTransferBytes / packet) * packet);
  }

  async open(): Promise<void> {
    if (this.isOpen) return;
    if (this.#teardown) await this.#teardown;
    this.#teardown = undefined;
    try {
      this.#acquire();
      this.#startReading();
      this.markOpen();
    } catch (err) {
      this.markClosed();
      await this.#release();
      this.#teardown = undefined;
      throw err instanceof DockError ? err : this.#openError(err, 'open the device');
    }
  }

  write(data: Buffer): Promise<void> {
    const out = this.#out;
    if (!this.isOpen || !out) return Promise.reject(this.notOpen());
    const sent = this.#writes.then(() => this.#send(out, data));
    this.#writes = sent.catch(() => undefined);
    return sent;
  }

  async close(): Promise<void> {
    this.markClosed();
    await this.#release();
  }

  #acquire(): void {
    const dev = this.#device;
    const want = this.profile.usb;
    try {
      dev.open();
    } catch (err) {
      throw this.#openError(err, 'open the device');
    }
    this.#deviceOpen = true;
    dev.timeout = this.#timeoutMs;

    const iface = dev.interface(want.interface.number);
    if (!iface) {
      throw new DockError(
        'HAL_OPEN',
        `USB device ${this.path} (${this.#ids()}) has no interface ${want.interface.number}, which profile ${this.profile.id} expects: the camera may be in another mode (charging only, firmware update), or the profile in hardware/models/ is wrong. Re-dock the camera`,
        this.#details,
      );
    }
    if (iface.interfaceClass !== want.interface.class || iface.interfaceSubclass !== want.interface.subclass || iface.interfaceProtocol !== want.interface.protocol) {
      throw new DockError(
        'HAL_OPEN',
        `interface ${iface.number} of USB device ${this.path} is class ${triple(iface.interfaceClass, iface.interfaceSubclass, iface.interfaceProtocol)}, not the vendor interface ${triple(want.interface.class, want.interface.subclass, want.interface.protocol)} that profile ${this.profile.id} expects; check hardware/models/${this.profile.id}.json against the camera's firmware`,
        this.#details,
      );
    }
    this.#iface = iface;

    // A kernel driver bound to the interface makes claim() fail with BUSY; it is given
    // back at close so the camera works for the rest of the system afterwards.
    if (this.#kernelDriverActive(iface)) {
      try {
        iface.detachKernelDriver();
      } catch (err) {
        throw this.#openError(err, `detach the kernel driver from interface ${iface.number}`);
      }
      this.#kernelDriverDetached = true;
    }
    try {
      iface.claim();
    } catch (err) {
      throw this.#openError(err, `claim interface ${iface.number}`);
    }
    this.#claimed = true;

    const inEp = iface.endpoint(want.endpoints.in);
    const outEp = iface.endpoint(want.endpoints.out);
    if (!inEp || inEp.direction !== 'in' || inEp.transferType !== TRANSFER_TYPE_BULK) throw this.#missingEndpoint('IN', want.endpoints.in);
    if (!outEp || outEp.direction !== 'out' || outEp.transferType !== TRANSFER_TYPE_BULK) throw this.#missingEndpoint('OUT', want.endpoints.out);
    outEp.timeout = this.#timeoutMs;
    // The descriptor is the truth: a camera on a full-speed port has 64-byte packets, not the profile's 512.
    this.#maxPacket = outEp.maxPacketSize || want.maxPacketBytes;
    if (this.#maxPacket !== want.maxPacketBytes && this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ path: this.path, maxPacket: this.#maxPacket, profileMaxPacket: want.maxPacketBytes }, 'endpoint max packet size differs from the profile');
    }
    this.#in = inEp;
    this.#out = outEp;
    this.#unsubscribeDetach = dev.onDetach(() => this.#gone('the camera was unplugged'));
  }

  #kernelDriverActive(iface: UsbInterfaceHandle): boolean {
    try {
      return iface.isKernelDriverActive();
    } catch (err) {
      // Some platforms (and emulated devices) cannot tell; claim() is the definitive
      // test and fails with BUSY if a driver does hold the interface.
      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ path: this.path, err: usbErrorName(err) }, 'cannot query the kernel driver; claiming anyway');
      return false;
    }
  }

  #startReading(): void {
    const inEp = this.#in!;
    // Each read is a whole number of max-size packets: a packet that does not fit the
    // space left in a read is an overflow ("babble") error, which would end the poll.
    // A poll read waits for the camera to speak and so has no timeout (a timed-out read
    // would stop the poll); a silent camera is the session's idle timer's business.
    // A read that cannot even be submitted fails inside startPoll; that is open()
    // failing (HAL_OPEN), not a disconnect of a link that was never up.
    let starting = true;
    let failedAtStart: unknown;
    try {
      inEp.startPoll(
        this.#pollTransfers,
        this.pollTransferBytes,
        (chunk) => {
          // A zero-length packet right after a full read completes an empty one: nothing to pass on.
          if (chunk.length > 0 && this.isOpen) this.emit('data', chunk);
        },
        (err) => {
          if (starting) {
            failedAtStart ??= err;
            return;
          }
          const name = usbErrorName(err);
          this.#gone(usbFailure(err) === 'gone' ? `the camera was unplugged (${name})` : `reading bulk IN endpoint 0x${hex2(inEp.address)} failed (${name})`, err);
        },
      );
    } catch (err) {
      failedAtStart ??= err;
    } finally {
      starting = false;
    }
    this.#polling = true; // even after a failure: teardown waits for the reads that did start
    if (failedAtStart !== undefined) throw this.#openError(failedAtStart, `start reading bulk IN endpoint 0x${hex2(inEp.address)}`);
  }

  async #send(out: UsbOutEndpointHandle, data: Buffer): Promise<void> {
    if (!this.isOpen) throw this.notOpen(); // the camera went away while this write waited its turn
    if (data.length === 0) return;
    await this.#bulkOut(out, data);
    // A bulk transfer ends at a short packet. When a write fills its last packet
    // exactly, the camera's read (a buffer of several packets) cannot tell the frame
    // is complete and keeps waiting for more, so the request would sit there until the
    // next write happened to push it through. A zero-length packet ends the transfer.
    if (data.length % this.#maxPacket === 0) await this.#bulkOut(out, ZERO_LENGTH_PACKET);
  }

  #bulkOut(out: UsbOutEndpointHandle, data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        out.transfer(data, (err, actual) => {
          if (err) reject(this.#writeError(err, out, data.length, actual));
          else if (actual !== data.length) {
            reject(new DockError('HAL_WRITE', `bulk OUT endpoint 0x${hex2(out.address)} of ${this.path} took only ${actual} of ${data.length} bytes; the session resends. If it keeps happening, re-dock the camera`, this.#details));
          } else resolve();
        });
      } catch (err) {
        reject(this.#writeError(err, out, data.length, 0));
      }
    });
  }

  #writeError(err: unknown, out: UsbOutEndpointHandle, length: number, actual: number): DockError {
    const name = usbErrorName(err);
    const ep = `bulk OUT endpoint 0x${hex2(out.address)} of ${this.path}`;
    switch (usbFailure(err)) {
      case 'gone':
        this.#gone(`the camera was unplugged during a write (${name})`, err);
        return new DockError('HAL_DISCONNECTED', `USB device ${this.path} went away during a write (${name}). Re-dock the camera; work resumes where it stopped`, this.#details, { cause: err });
      case 'timeout':
        return new DockError(
          'HAL_WRITE',
          `write to ${ep} timed out after ${this.#timeoutMs} ms with ${actual} of ${length} bytes taken: the camera is not reading. The session resends; if this keeps happening, re-dock the camera and run \`dockside diag\``,
          { ...this.#details, timeoutMs: this.#timeoutMs, bytes: length, actual },
          { cause: err },
        );
      case 'stall':
        return new DockError('HAL_WRITE', `${ep} stalled (${name}): the camera refused the data. Re-dock the camera; if it keeps happening, its firmware needs attention`, this.#details, { cause: err });
      default:
        return new DockError('HAL_WRITE', `write to ${ep} failed (${name}); the session resends. If it keeps happening, re-dock the camera`, this.#details, { cause: err });
    }
  }

  /** The camera went away unasked: tell the user of the transport once, then free the handle. */
  #gone(reason: string, cause?: unknown): void {
    if (!this.isOpen) return;
    this.lost(reason, cause);
    void this.#release();
  }

  #release(): Promise<void> {
    this.#teardown ??= this.#freeAll();
    return this.#teardown;
  }

  /** Gives back what #acquire took, in reverse order. Logs, never throws. */
  async #freeAll(): Promise<void> {
    const log = this.#log;
    const iface = this.#iface;
    this.#unsubscribeDetach?.();
    this.#unsubscribeDetach = undefined;
    if (this.#polling && this.#in) {
      const inEp = this.#in;
      this.#polling = false;
      const stopped = await settleWithin(this.#closeTimeoutMs, (done) => inEp.stopPoll(done));
      if (stopped !== true) log.warn({ path: this.path, err: stopped === false ? 'timeout' : usbErrorName(stopped.error) }, 'queued USB reads did not all cancel; releasing the interface anyway');
    }
    // libusb refuses to release an interface under a transfer still in flight; every OUT
    // transfer ends by its own timeout, so this wait is bounded.
    await settleWithin(this.#closeTimeoutMs, (done) => void this.#writes.then(done));
    if (this.#claimed && iface) {
      this.#claimed = false;
      const released = await settleWithin(this.#closeTimeoutMs, (done) => iface.release((err) => (err ? done(err) : done())));
      if (released !== true) log.debug({ path: this.path, err: released === false ? 'timeout' : usbErrorName(released.error) }, 'release of the USB interface failed');
    }
    // Re-attach after release (the kernel cannot bind a claimed interface) and before
    // close (it needs the open handle).
    if (this.#kernelDriverDetached && iface) {
      this.#kernelDriverDetached = false;
      try {
        iface.attachKernelDriver();
      } catch (err) {
        log.warn({ path: this.path, err: usbErrorName(err) }, `could not give interface ${iface.number} back to its kernel driver; re-dock the camera to restore it`);
      }
    }
    if (this.#deviceOpen) {
      this.#deviceOpen = false;
      try {
        this.#device.close();
      } catch (err) {
        log.debug({ path: this.path, err: usbErrorName(err) }, 'closing the USB device handle failed');
      }
    }
    this.#iface = undefined;
    this.#in = undefined;
    this.#out = undefined;
  }

  #openError(err: unknown, what: string): DockError {
    const name = usbErrorName(err);
    const n = this.profile.usb.interface.number;
    const base = { ...this.#details, libusb: name };
    switch (usbFailure(err)) {
      case 'access':
        return new DockError(
          'HAL_OPEN',
          `permission denied trying to ${what} on USB device ${this.path} (${this.#ids()}, ${name}): this user may not use the camera. Install hardware/udev/70-dockside-cameras.rules as its header says, put the service user in group dockside, then re-dock the camera`,
          base,
          { cause: err },
        );
      case 'busy':
        return new DockError(
          'HAL_OPEN',
          `cannot ${what} on USB device ${this.path} (${name}): interface ${n} is in use by another program or a kernel driver. Stop the other dockside process (or whatever holds the camera), then re-dock it`,
          base,
          { cause: err },
        );
      case 'gone':
        return new DockError('HAL_OPEN', `the camera at ${this.path} went away while trying to ${what} (${name}); re-dock it`, base, { cause: err });
      default:
        return new DockError('HAL_OPEN', `cannot ${what} on USB device ${this.path} (${this.#ids()}, ${name}); re-dock the camera, and if it keeps failing run \`dockside diag\``, base, { cause: err });
    }
  }

  #missingEndpoint(direction: 'IN' | 'OUT', address: number): DockError {
    return new DockError(
      'HAL_OPEN',
      `interface ${this.profile.usb.interface.number} of USB device ${this.path} has no bulk ${direction} endpoint 0x${hex2(address)}, which profile ${this.profile.id} expects: the camera's firmware does not match hardware/models/${this.profile.id}.json`,
      this.#details,
    );
  }

  #ids(): string {
    return `${hex4(this.#device.vendorId)}:${hex4(this.#device.productId)}`;
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new DockError('CONFIG_INVALID', `usb transport option ${name} must be a positive integer, got ${String(value)}`);
  return value;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function triple(cls: number, subclass: number, protocol: number): string {
  return `${hex2(cls)}/${hex2(subclass)}/${hex2(protocol)}`;
}

/**
 * Runs a callback-style operation and waits at most `ms` for it: true when it
 * finished, false on timeout, the error when it failed (thrown or passed to `done`).
 */
function settleWithin(ms: number, start: (done: (err?: unknown) => void) => void): Promise<true | false | { error: unknown }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = (err?: unknown): void => {
      clearTimeout(timer);
      resolve(err === undefined ? true : { error: err });
    };
    try {
      start(done);
    } catch (err) {
      done(err);
    }
  });
}
