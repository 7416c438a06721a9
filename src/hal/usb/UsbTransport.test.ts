import { randomBytes } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import { UsbTransport } from './UsbTransport.js';
import { TRANSFER_TYPE_BULK, type UsbDeviceHandle, type UsbInEndpointHandle, type UsbInterfaceHandle, type UsbOutEndpointHandle } from './device.js';
import { LoopbackTransport } from '../LoopbackTransport.js';
import { defaultProfile } from '../profiles.js';
import { Endpoint } from '../../protocol/Endpoint.js';
import { Session } from '../../protocol/Session.js';
import { CAP } from '../../protocol/messages.js';
import { DockError, isDockError } from '../../errors.js';

/** An error shaped like the `usb` package's LibUSBException. */
function libusbError(name: string, errno: number): Error {
  return Object.assign(new Error(name), { errno });
}

interface FakeOptions {
  kernelDriverActive?: boolean; // default true: a kernel driver is bound to the vendor interface
  maxPacket?: number; // default 512
  outTimesOut?: boolean; // every OUT transfer times out after the endpoint's timeout
  openError?: Error;
  claimError?: Error;
  stopPollHangs?: boolean;
  releaseError?: Error;
  attachKernelDriverError?: Error;
  closeError?: Error;
}

/**
 * A USB device handle whose bulk endpoints are the far end of a loopback pair: the
 * camera's firmware (a real protocol Endpoint) runs on `firmware`. Bytes move as a
 * USB controller moves them: OUT transfers are cut into max-size packets; IN data is
 * packed into the host's queued reads, and a read completes when it is full or at a
 * short packet (the firmware ends a write that fills its last packet with a ZLP).
 */
class FakeUsbCamera implements UsbDeviceHandle {
  readonly busNumber = 1;
  readonly deviceAddress = 7;
  readonly portNumbers = [1, 3];
  readonly vendorId = 0x1209;
  readonly productId = 0xd0c4;
  timeout = 0;
  readonly calls: string[] = [];
  readonly outTransfers: number[] = []; // bytes of each OUT transfer (0 = a zero-length packet)
  readonly inTransfers: number[] = []; // bytes of each completed IN read
  readonly firmware: LoopbackTransport;
  readonly out: UsbOutEndpointHandle;
  readonly in: UsbInEndpointHandle;
  readonly #wire: LoopbackTransport;
  readonly #opts: FakeOptions;
  readonly #mps: number;
  readonly #detachListeners = new Set<() => void>();
  #kernelDriver: boolean;
  #gone = false;
  #poll: { transferBytes: number; onData: (b: Buffer) => void; onError: (e: Error) => void } | undefined;
  #current: Buffer[] = [];
  #currentBytes = 0;

  constructor(opts: FakeOptions = {}) {
    this.#opts = opts;
    this.#mps = opts.maxPacket ?? 512;
    this.#kernelDriver = opts.kernelDriverActive ?? true;
    [this.#wire, this.firmware] = LoopbackTransport.pair('usb-fake');
    this.#wire.on('data', (chunk) => this.#deviceWrites(chunk));
    this.out = {
      direction: 'out',
      address: 0x01,
      transferType: TRANSFER_TYPE_BULK,
      maxPacketSize: this.#mps,
      timeout: 0,
      transfer: (data, done) => {
        this.outTransfers.push(data.length);
        if (this.#gone) return void setImmediate(() => done(libusbError('LIBUSB_TRANSFER_NO_DEVICE', 5), 0));
        if (this.#opts.outTimesOut) return void setTimeout(() => done(libusbError('LIBUSB_TRANSFER_TIMED_OUT', 2), 0), this.out.timeout);
        for (let off = 0; off < data.length; off += this.#mps) void this.#wire.write(Buffer.from(data.subarray(off, off + this.#mps)));
        setImmediate(() => done(undefined, data.length));
      },
    };
    this.in = {
      direction: 'in',
      address: 0x81,
      transferType: TRANSFER_TYPE_BULK,
      maxPacketSize: this.#mps,
      startPoll: (transfers, transferBytes, onData, onError) => {
        this.calls.push(`startPoll ${transfers}x${transferBytes}`);
        // A read that is not whole packets overflows on the first packet that does not fit.
        if (transferBytes % this.#mps !== 0) throw libusbError('LIBUSB_TRANSFER_OVERFLOW', 6);
        this.#poll = { transferBytes, onData, onError };
      },
      stopPoll: (done) => {
        this.calls.push('stopPoll');
        this.#poll = undefined;
        if (!this.#opts.stopPollHangs) setImmediate(done);
      },
    };
  }

  open(): void {
    this.calls.push('open');
    if (this.#opts.openError) throw this.#opts.openError;
  }

  close(): void {
    this.calls.push('close');
    if (this.#opts.closeError) throw this.#opts.closeError;
  }

  interface(number: number): UsbInterfaceHandle | undefined {
    this.calls.push(`interface ${number}`);
    if (number !== 1) return undefined;
    return {
      number: 1,
      interfaceClass: 0xff,
      interfaceSubclass: 0x44,
      interfaceProtocol: 0x01,
      isKernelDriverActive: () => {
        this.calls.push('isKernelDriverActive');
        return this.#kernelDriver;
      },
      detachKernelDriver: () => {
        this.calls.push('detachKernelDriver');
        this.#kernelDriver = false;
      },
      attachKernelDriver: () => {
        this.calls.push('attachKernelDriver');
        if (this.#opts.attachKernelDriverError) throw this.#opts.attachKernelDriverError;
        this.#kernelDriver = true;
      },
      claim: () => {
        this.calls.push('claim');
        if (this.#opts.claimError) throw this.#opts.claimError;
      },
      release: (done) => {
        this.calls.push('release');
        setImmediate(() => done(this.#opts.releaseError));
      },
      endpoint: (address) => (address === 0x81 ? this.in : address === 0x01 ? this.out : undefined),
    };
  }

  onDetach(listener: () => void): () => void {
    this.#detachListeners.add(listener);
    return () => this.#detachListeners.delete(listener);
  }

  get kernelDriverActive(): boolean {
    return this.#kernelDriver;
  }

  /** A read fails (the kernel reports it through the poll), as on a cable fault. */
  failRead(error: Error): void {
    const poll = this.#poll;
    this.#poll = undefined;
    poll?.onError(error);
  }

  /** The cable is pulled: queued reads fail with NO_DEVICE and libusb reports the detach. */
  unplug(): void {
    this.#gone = true;
    this.failRead(libusbError('LIBUSB_TRANSFER_NO_DEVICE', 5));
    for (const l of [...this.#detachListeners]) l();
  }

  /** One firmware write: packets into the host's reads, ended by a short packet or a ZLP. */
  #deviceWrites(chunk: Buffer): void {
    for (let off = 0; off < chunk.length; off += this.#mps) this.#packet(chunk.subarray(off, off + this.#mps));
    if (chunk.length % this.#mps === 0) this.#packet(Buffer.alloc(0));
  }

  #packet(packet: Buffer): void {
    const poll = this.#poll;
    if (!poll) return; // no read queued: the device would NAK; nothing in these tests relies on it
    this.#current.push(Buffer.from(packet));
    this.#currentBytes += packet.length;
    if (packet.length < this.#mps || this.#currentBytes === poll.transferBytes) {
      const data = Buffer.concat(this.#current, this.#currentBytes);
      this.#current = [];
      this.#currentBytes = 0;
      if (data.length === 0) return; // a ZLP right after a full read completes nothing new
      this.inTransfers.push(data.length);
      setImmediate(() => this.#poll?.onData(data));
    }
  }
}

/** The camera's firmware: HELLO and a LINK_TEST echo, on the real protocol Endpoint. */
function runFirmware(cam: FakeUsbCamera): Endpoint {
  return new Endpoint(cam.firmware, {
    HELLO: (req, ctx) => {
      ctx.endpoint.maxPayload = Math.min(req.maxPayload, 65536);
      return {
        version: 1,
        vendor: 'Dockside Simulated Devices',
        model: 'Sentinel BC4',
        serial: 'BC4-USB-0001',
        firmware: '1.0.0',
        hardware: 'rev-a',
        capabilities: CAP.LINK_TEST | CAP.PIPELINED_READ,
        maxPayload: 65536,
        window: 8,
      };
    },
    LINK_TEST: (req) => ({ data: req.data }),
  });
}

function waitFor(predicate: () => boolean, ms = 2000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (predicate()) resolve();
      else if (Date.now() - start > ms) reject(new Error('condition not met in time'));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

const profile = defaultProfile();

describe('UsbTransport over a fake USB device running the real protocol', () => {
  it('completes HELLO and echoes 1 MiB of LINK_TEST byte for byte, chunked in max-size packets', async () => {
    const cam = new FakeUsbCamera();
    const firmware = runFirmware(cam);
    const transport = new UsbTransport(cam, profile);
    expect(transport.path).toBe('usb:1-1.3');
    const session = await Session.connect(transport);
    expect(session.serial).toBe('BC4-USB-0001');

    const total = 1024 * 1024;
    const sent = randomBytes(total);
    const chunk = 65536 - 4; // LINK_TEST payload: u32 length ‖ data, within the 64 KiB the camera offers
    const requests: Promise<{ data: Buffer }>[] = [];
    for (let off = 0; off < total; off += chunk) requests.push(session.request('LINK_TEST', { data: sent.subarray(off, off + chunk) }));
    expect(requests.length).toBeGreaterThan(10);
    const echoed = Buffer.concat((await Promise.all(requests)).map((r) => r.data));
    expect(echoed.length).toBe(total);
    expect(echoed.equals(sent)).toBe(true);
    expect(session.stats.retries).toBe(0);
    expect(session.stats.discarded).toBe(0);
    expect(firmware.stats.discarded).toBe(0);

    // IN data came as the host's reads: full 16 KiB reads, ended early by short packets.
    expect(cam.inTransfers.length).toBeGreaterThan(64);
    expect(cam.inTransfers.filter((n) => n === transport.pollTransferBytes).length).toBeGreaterThan(60);
    expect(Math.max(...cam.inTransfers)).toBe(16384);

    await session.close();
    expect(transport.isOpen).toBe(false);
    firmware.close();
  });

  it('detaches the kernel driver before claiming and re-attaches it after release, before close', async () => {
    const cam = new FakeUsbCamera({ kernelDriverActive: true });
    const transport = new UsbTransport(cam, profile);
    await transport.open();
    expect(cam.kernelDriverActive).toBe(false);
    // Timeouts on every transfer that can have one: control (device) and bulk OUT.
    expect(cam.timeout).toBe(profile.usb.transferTimeoutMs);
    expect(cam.out.timeout).toBe(profile.usb.transferTimeoutMs);
    await transport.close();
    expect(cam.calls).toEqual(['open', 'interface 1', 'isKernelDriverActive', 'detachKernelDriver', 'claim', 'startPoll 4x16384', 'stopPoll', 'release', 'attachKernelDriver', 'close']);
    expect(cam.kernelDriverActive).toBe(true);
  });

  it('leaves the kernel driver alone when none is bound', async () => {
    const cam = new FakeUsbCamera({ kernelDriverActive: false });
    const transport = new UsbTransport(cam, profile);
    await transport.open();
    await transport.close();
    expect(cam.calls).not.toContain('detachKernelDriver');
    expect(cam.calls).not.toContain('attachKernelDriver');
    expect(cam.calls.at(-1)).toBe('close');
  });

  it('ends a write that fills its last packet with a zero-length packet, and only then', async () => {
    const cam = new FakeUsbCamera();
    const transport = new UsbTransport(cam, profile);
    await transport.open();
    await transport.write(Buffer.alloc(1024, 1));
    await transport.write(Buffer.alloc(1000, 2));
    await transport.write(Buffer.alloc(512, 3));
    expect(cam.outTransfers).toEqual([1024, 0, 1000, 512, 0]);
    await transport.close();
  });

  it('turns an OUT transfer timeout into HAL_WRITE that says what happened and what to do', async () => {
    const cam = new FakeUsbCamera({ outTimesOut: true });
    const transport = new UsbTransport(cam, profile, { transferTimeoutMs: 40 });
    await transport.open();
    expect(cam.out.timeout).toBe(40);
    const err = await transport.write(Buffer.from('hello')).catch((e: unknown) => e);
    expect(isDockError(err, 'HAL_WRITE')).toBe(true);
    expect((err as DockError).message).toMatch(/usb:1-1\.3 timed out after 40 ms with 0 of 5 bytes taken: the camera is not reading/);
    expect((err as DockError).message).toMatch(/re-dock the camera/);
    // A timeout is not a disconnect: the link stays open and the session may resend.
    expect(transport.isOpen).toBe(true);
    await transport.close();
  });

  it('fires disconnected exactly once when an IN read fails, then refuses writes and frees the device', async () => {
    const cam = new FakeUsbCamera();
    const transport = new UsbTransport(cam, profile);
    const events: DockError[] = [];
    transport.on('disconnected', (e) => events.push(e));
    await transport.open();
    cam.failRead(libusbError('LIBUSB_TRANSFER_STALL', 4));
    cam.unplug(); // the detach that follows must not fire a second one
    cam.failRead(libusbError('LIBUSB_TRANSFER_ERROR', 1));
    await waitFor(() => cam.calls.includes('close'));
    expect(events).toHaveLength(1);
    expect(events[0]!.code).toBe('HAL_DISCONNECTED');
    expect(events[0]!.message).toMatch(/usb device at usb:1-1\.3 went away: reading bulk IN endpoint 0x81 failed \(LIBUSB_TRANSFER_STALL\)/);
    expect(transport.isOpen).toBe(false);
    expect(cam.calls.slice(-4)).toEqual(['stopPoll', 'release', 'attachKernelDriver', 'close']);
    const err = await transport.write(Buffer.from('x')).catch((e: unknown) => e);
    expect(isDockError(err, 'HAL_DISCONNECTED')).toBe(true);
    await expect(transport.close()).resolves.toBeUndefined();
    expect(events).toHaveLength(1);
  });

  it('reports an unplug during a session as HAL_DISCONNECTED on the session too', async () => {
    const cam = new FakeUsbCamera();
    const firmware = runFirmware(cam);
    const transport = new UsbTransport(cam, profile);
    const session = await Session.connect(transport);
    const gone: DockError[] = [];
    session.on('disconnected', (e) => gone.push(e));
    const pending = session.request('LINK_TEST', { data: Buffer.alloc(10) }).catch((e: unknown) => e);
    cam.unplug();
    expect(isDockError(await pending, 'HAL_DISCONNECTED')).toBe(true);
    expect(gone).toHaveLength(1);
    expect(gone[0]!.message).toMatch(/unplugged/);
    await session.close();
    firmware.close();
  });

  it('never throws from close, even when every step of it fails', async () => {
    const cam = new FakeUsbCamera({
      stopPollHangs: true,
      releaseError: libusbError('LIBUSB_ERROR_NO_DEVICE', -4),
      attachKernelDriverError: libusbError('LIBUSB_ERROR_NO_DEVICE', -4),
      closeError: new Error('boom'),
    });
    const transport = new UsbTransport(cam, profile, { closeTimeoutMs: 30 });
    await transport.open();
    await expect(transport.close()).resolves.toBeUndefined();
    expect(cam.calls.slice(-4)).toEqual(['stopPoll', 'release', 'attachKernelDriver', 'close']);
    await expect(transport.close()).resolves.toBeUndefined(); // twice is fine too
  });

  it('points to the udev rules when the device may not be opened', async () => {
    const cam = new FakeUsbCamera({ openError: libusbError('LIBUSB_ERROR_ACCESS', -3) });
    const transport = new UsbTransport(cam, profile);
    const err = await transport.open().catch((e: unknown) => e);
    expect(isDockError(err, 'HAL_OPEN')).toBe(true);
    expect((err as DockError).message).toMatch(/permission denied .* usb:1-1\.3 \(1209:d0c4, LIBUSB_ERROR_ACCESS\).*hardware\/udev\/70-dockside-cameras\.rules/);
    expect(transport.isOpen).toBe(false);
  });

  it('gives back what it took when claim fails as busy, and says who to stop', async () => {
    const cam = new FakeUsbCamera({ claimError: libusbError('LIBUSB_ERROR_BUSY', -6) });
    const transport = new UsbTransport(cam, profile);
    const err = await transport.open().catch((e: unknown) => e);
    expect(isDockError(err, 'HAL_OPEN')).toBe(true);
    expect((err as DockError).message).toMatch(/interface 1 is in use by another program or a kernel driver/);
    // Detached, then the claim failed: the driver goes back and the handle is closed.
    expect(cam.calls).toEqual(['open', 'interface 1', 'isKernelDriverActive', 'detachKernelDriver', 'claim', 'attachKernelDriver', 'close']);
    expect(cam.kernelDriverActive).toBe(true);
  });

  it('reads whole packets only, whatever read size is asked for', async () => {
    const cam = new FakeUsbCamera({ maxPacket: 64 });
    const transport = new UsbTransport(cam, profile, { pollTransferBytes: 1000, pollTransfers: 2 });
    await transport.open();
    expect(transport.pollTransferBytes).toBe(960);
    expect(cam.calls).toContain('startPoll 2x960');
    // And the ZLP rule follows the endpoint's real packet size (a full-speed link), not the profile's.
    await transport.write(Buffer.alloc(128));
    expect(cam.outTransfers).toEqual([128, 0]);
    await transport.close();
  });

  it('validates its options, naming the option', () => {
    expect(() => new UsbTransport(new FakeUsbCamera(), profile, { pollTransfers: 0 })).toThrow(/pollTransfers must be a positive integer/);
  });
});
