import { describe, it, expect } from 'vitest';
import { UsbDiscovery, type RefusedUsbDevice, type UsbCandidate } from './UsbDiscovery.js';
import { UsbTransport } from './UsbTransport.js';
import { matchingProfiles } from './fingerprint.js';
import type { UsbBus, UsbDeviceHandle, UsbDeviceRecord, UsbInterfaceDescription } from './device.js';
import { defaultProfile, type CameraProfile } from '../profiles.js';
import type { DockError } from '../../errors.js';

const bc4 = defaultProfile();
const VENDOR_IFACE: UsbInterfaceDescription = { number: 1, interfaceClass: 0xff, interfaceSubclass: 0x44, interfaceProtocol: 0x01 };
const DFU_IFACE: UsbInterfaceDescription = { number: 0, interfaceClass: 0xfe, interfaceSubclass: 0x01, interfaceProtocol: 0x01 };

function record(ports: number[], address: number, opts: { vendorId?: number; productId?: number; interfaces?: UsbInterfaceDescription[] | 'unreadable' } = {}): UsbDeviceRecord & { handles: number } {
  const r = {
    busNumber: 1,
    deviceAddress: address,
    portNumbers: ports,
    vendorId: opts.vendorId ?? 0x1209,
    productId: opts.productId ?? 0xd0c4,
    handles: 0,
    interfaces: () => (opts.interfaces === 'unreadable' ? undefined : (opts.interfaces ?? [DFU_IFACE, VENDOR_IFACE])),
    handle(): UsbDeviceHandle {
      r.handles++;
      return { busNumber: 1, deviceAddress: address, portNumbers: ports, vendorId: r.vendorId, productId: r.productId, timeout: 0 } as unknown as UsbDeviceHandle;
    },
  };
  return r;
}

/** A bus whose devices a test plugs in and pulls out, with or without hotplug events. */
class FakeBus implements UsbBus {
  readonly devices: UsbDeviceRecord[] = [];
  watching = false;
  #onAttach: ((d: UsbDeviceRecord) => void) | undefined;
  #onDetach: ((d: UsbDeviceRecord) => void) | undefined;

  list(): UsbDeviceRecord[] {
    return [...this.devices];
  }

  watch(onAttach: (d: UsbDeviceRecord) => void, onDetach: (d: UsbDeviceRecord) => void): () => void {
    this.watching = true;
    this.#onAttach = onAttach;
    this.#onDetach = onDetach;
    return () => {
      this.watching = false;
      this.#onAttach = undefined;
      this.#onDetach = undefined;
    };
  }

  plug(d: UsbDeviceRecord, event = true): void {
    this.devices.push(d);
    if (event) this.#onAttach?.(d);
  }

  /** An attach event for a device already listed (libusb may report one twice). */
  repeatAttach(d: UsbDeviceRecord): void {
    this.#onAttach?.(d);
  }

  pull(d: UsbDeviceRecord, event = true): void {
    this.devices.splice(this.devices.indexOf(d), 1);
    if (event) this.#onDetach?.(d);
  }
}

function watch(discovery: UsbDiscovery): { attached: UsbCandidate[]; detached: UsbCandidate[]; refused: [RefusedUsbDevice, DockError][] } {
  const seen = { attached: [] as UsbCandidate[], detached: [] as UsbCandidate[], refused: [] as [RefusedUsbDevice, DockError][] };
  discovery.on('attach', (c) => seen.attached.push(c));
  discovery.on('detach', (c) => seen.detached.push(c));
  discovery.on('refused', (d, e) => seen.refused.push([d, e]));
  return seen;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('USB fingerprint matching', () => {
  it('needs the ids, and the vendor interface class when descriptors are readable', () => {
    const base = { vendorId: 0x1209, productId: 0xd0c4 };
    expect(matchingProfiles({ ...base, interfaces: [VENDOR_IFACE] }, [bc4])).toEqual([bc4]);
    expect(matchingProfiles({ ...base, interfaces: undefined }, [bc4])).toEqual([bc4]);
    expect(matchingProfiles({ ...base, interfaces: [{ ...VENDOR_IFACE, interfaceClass: 0x02 }] }, [bc4])).toEqual([]);
    expect(matchingProfiles({ ...base, interfaces: [{ ...VENDOR_IFACE, number: 2 }] }, [bc4])).toEqual([]);
    expect(matchingProfiles({ vendorId: 0x1209, productId: 0x0001, interfaces: [VENDOR_IFACE] }, [bc4])).toEqual([]);
  });
});

describe('UsbDiscovery', () => {
  it('announces docked cameras at start with their path and profile, and ignores everything else', async () => {
    const bus = new FakeBus();
    bus.plug(record([1, 3], 5));
    bus.plug(record([1, 2], 4, { vendorId: 0x046d, productId: 0xc52b, interfaces: [{ number: 0, interfaceClass: 3, interfaceSubclass: 1, interfaceProtocol: 1 }] }));
    bus.plug(record([1, 4], 6, { interfaces: [{ ...VENDOR_IFACE, interfaceClass: 0x08 }] })); // our ids, wrong class
    bus.plug(record([2, 1], 9, { interfaces: 'unreadable' }));
    const discovery = new UsbDiscovery({ bus, profiles: [bc4] });
    const seen = watch(discovery);
    discovery.start();
    expect(seen.attached.map((c) => [c.path, c.profileId, c.vendorId, c.productId])).toEqual([
      ['usb:1-1.3', 'sentinel-bc4', 0x1209, 0xd0c4],
      ['usb:1-2.1', 'sentinel-bc4', 0x1209, 0xd0c4],
    ]);
    expect(discovery.candidates.map((c) => c.path)).toEqual(['usb:1-1.3', 'usb:1-2.1']);
    await discovery.close();
  });

  it('follows hotplug, announcing each path once even when the rescan sees it too', async () => {
    const bus = new FakeBus();
    const discovery = new UsbDiscovery({ bus, profiles: [bc4] });
    const seen = watch(discovery);
    discovery.start();
    const cam = record([1, 1], 11);
    bus.plug(cam);
    discovery.rescan();
    bus.repeatAttach(record([1, 1], 11));
    expect(seen.attached).toHaveLength(1);
    bus.pull(cam);
    discovery.rescan();
    expect(seen.detached.map((c) => c.path)).toEqual(['usb:1-1.1']);
    expect(discovery.candidates).toEqual([]);
    await discovery.close();
  });

  it('finds what hotplug missed by rescanning, including a re-dock at the same socket', async () => {
    const bus = new FakeBus();
    const discovery = new UsbDiscovery({ bus, profiles: [bc4], rescanMs: 20 });
    const seen = watch(discovery);
    discovery.start();
    const first = record([1, 3], 5);
    bus.plug(first, false);
    await sleep(60); // the timer's rescan, not a test's call
    expect(seen.attached.map((c) => c.deviceAddress)).toEqual([5]);
    bus.pull(first, false);
    bus.plug(record([1, 3], 8), false); // re-docked: same socket, new bus address
    discovery.rescan();
    expect(seen.detached.map((c) => c.deviceAddress)).toEqual([5]);
    expect(seen.attached.map((c) => c.deviceAddress)).toEqual([5, 8]);
    // The late detach event for the old address must not remove the new camera.
    bus.pull(first, true);
    expect(discovery.candidates.map((c) => c.deviceAddress)).toEqual([8]);
    await discovery.close();
  });

  it('refuses a device that matches two profiles with HAL_AMBIGUOUS, once, and never attaches it', async () => {
    const clone: CameraProfile = { ...bc4, id: 'sentinel-bc4-clone', model: 'BC4 clone' };
    const bus = new FakeBus();
    bus.plug(record([1, 3], 5));
    const discovery = new UsbDiscovery({ bus, profiles: [bc4, clone] });
    const seen = watch(discovery);
    discovery.start();
    discovery.rescan();
    expect(seen.attached).toEqual([]);
    expect(seen.refused).toHaveLength(1);
    const [device, error] = seen.refused[0]!;
    expect(device.path).toBe('usb:1-1.3');
    expect(device.profileIds).toEqual(['sentinel-bc4', 'sentinel-bc4-clone']);
    expect(error.code).toBe('HAL_AMBIGUOUS');
    expect(error.message).toMatch(/matches 2 camera profiles \(sentinel-bc4, sentinel-bc4-clone\); dockside will not guess/);
    await discovery.close();
  });

  it('hands out a transport for the candidate without opening anything', async () => {
    const bus = new FakeBus();
    const cam = record([1, 3], 5);
    bus.plug(cam);
    const discovery = new UsbDiscovery({ bus, profiles: [bc4], transport: { pollTransfers: 2 } });
    const seen = watch(discovery);
    discovery.start();
    const transport = seen.attached[0]!.createTransport();
    expect(transport).toBeInstanceOf(UsbTransport);
    expect(transport.path).toBe('usb:1-1.3');
    expect(transport.profile.id).toBe('sentinel-bc4');
    expect(transport.isOpen).toBe(false);
    expect(cam.handles).toBe(1);
    await discovery.close();
  });

  it('close stops hotplug and the rescan timer', async () => {
    const bus = new FakeBus();
    const discovery = new UsbDiscovery({ bus, profiles: [bc4], rescanMs: 10 });
    const seen = watch(discovery);
    discovery.start();
    expect(bus.watching).toBe(true);
    await discovery.close();
    expect(bus.watching).toBe(false);
    bus.plug(record([1, 3], 5), false);
    await sleep(40);
    discovery.rescan();
    expect(seen.attached).toEqual([]);
    expect(() => discovery.start()).toThrow(/closed/);
  });

  it('validates rescanMs, naming it', () => {
    expect(() => new UsbDiscovery({ bus: new FakeBus(), profiles: [bc4], rescanMs: 0 })).toThrow(/rescanMs must be a positive integer/);
  });
});
