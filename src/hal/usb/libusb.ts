/**
 * The one module that touches the `usb` package (2.x, its legacy libusb API; 3.x is
 * WebUSB-only, and its getDevices() rejects on a host without /sys/bus/usb/devices,
 * see shared/stack.md). It adapts `usb.Device` and friends to the handle interfaces
 * of device.ts and the host bus to UsbBus; everything else stays testable without the
 * native addon.
 *
 * The addon is loaded by the first libusbBus() (USB discovery starting), not when this
 * module is imported: a dock that never scans USB (the simulator, a ports directory)
 * does not map libusb or hold its hotplug thread's memory.
 */
import { createRequire } from 'node:module';
import type * as Usb from 'usb';
import type { Device, InEndpoint, Interface, OutEndpoint } from 'usb';
import type { UsbBus, UsbDeviceHandle, UsbDeviceRecord, UsbInEndpointHandle, UsbInterfaceDescription, UsbInterfaceHandle, UsbOutEndpointHandle } from './device.js';

const load = (): typeof Usb => createRequire(import.meta.url)('usb') as typeof Usb;

/** The host's bus through libusb: getDeviceList() and usb.on('attach' | 'detach'). */
export function libusbBus(): UsbBus {
  const { getDeviceList, usb } = load();
  return {
    list: () => getDeviceList().map(deviceRecord),
    watch(onAttach, onDetach) {
      const attached = (d: Device): void => onAttach(deviceRecord(d));
      const detached = (d: Device): void => onDetach(deviceRecord(d));
      // Registering the first attach/detach listener starts libusb hotplug in the `usb`
      // package, and that holds the event loop open until the last one is removed. So
      // the returned stop function must be called (UsbDiscovery.close does); we do not
      // use usb.unrefHotplugEvents(), which is global to the package and would also
      // unref every other user's listeners (a transport's detach watch, for one).
      usb.on('attach', attached);
      usb.on('detach', detached);
      return () => {
        usb.off('attach', attached);
        usb.off('detach', detached);
      };
    },
  };
}

/** Where a device is and what it is: the same for a listing record and an open handle. */
function identity(device: Device): Pick<UsbDeviceRecord, 'busNumber' | 'deviceAddress' | 'portNumbers' | 'vendorId' | 'productId'> {
  return {
    busNumber: device.busNumber,
    deviceAddress: device.deviceAddress,
    portNumbers: device.portNumbers ?? undefined,
    vendorId: device.deviceDescriptor.idVendor,
    productId: device.deviceDescriptor.idProduct,
  };
}

export function deviceRecord(device: Device): UsbDeviceRecord {
  return {
    ...identity(device),
    interfaces: () => readInterfaces(device),
    handle: () => wrapDevice(device),
  };
}

/** Reads the active configuration's interfaces from libusb's cached descriptors (no I/O to the device). */
function readInterfaces(device: Device): UsbInterfaceDescription[] | undefined {
  let config;
  try {
    config = device.configDescriptor;
  } catch {
    return undefined;
  }
  if (!config) return undefined;
  return config.interfaces.flat().map((d) => ({
    number: d.bInterfaceNumber,
    interfaceClass: d.bInterfaceClass,
    interfaceSubclass: d.bInterfaceSubClass,
    interfaceProtocol: d.bInterfaceProtocol,
  }));
}

export function wrapDevice(device: Device): UsbDeviceHandle {
  const { usb } = load(); // loaded already: the device came from it
  return {
    ...identity(device),
    get timeout() {
      return device.timeout;
    },
    set timeout(ms: number) {
      device.timeout = ms;
    },
    open: () => device.open(),
    close: () => device.close(),
    interface(number) {
      const iface = device.interfaces?.find((i) => i.interfaceNumber === number);
      return iface ? wrapInterface(iface) : undefined;
    },
    onDetach(listener) {
      const detached = (d: Device): void => {
        // libusb may hand out a new object for the same device, so compare addresses too.
        if (d === device || (d.busNumber === device.busNumber && d.deviceAddress === device.deviceAddress)) listener();
      };
      usb.on('detach', detached);
      return () => usb.off('detach', detached);
    },
  };
}

function wrapInterface(iface: Interface): UsbInterfaceHandle {
  return {
    number: iface.interfaceNumber,
    interfaceClass: iface.descriptor.bInterfaceClass,
    interfaceSubclass: iface.descriptor.bInterfaceSubClass,
    interfaceProtocol: iface.descriptor.bInterfaceProtocol,
    isKernelDriverActive: () => iface.isKernelDriverActive(),
    detachKernelDriver: () => iface.detachKernelDriver(),
    attachKernelDriver: () => iface.attachKernelDriver(),
    claim: () => iface.claim(),
    release: (done) => iface.release((err) => done(err ?? undefined)),
    endpoint(address) {
      const ep = iface.endpoint(address);
      if (!ep) return undefined;
      return ep.direction === 'in' ? wrapIn(ep as InEndpoint) : wrapOut(ep as OutEndpoint);
    },
  };
}

function wrapIn(ep: InEndpoint): UsbInEndpointHandle {
  // True from startPoll until the package's 'end' (every queued read finished or was
  // cancelled). After a failed read the package stops polling by itself, so
  // `pollActive` goes false while reads are still being cancelled: wait for 'end' then.
  let running = false;
  return {
    direction: 'in',
    address: ep.address,
    transferType: ep.transferType,
    maxPacketSize: ep.descriptor.wMaxPacketSize & 0x7ff, // bits 11-12 count extra transactions per microframe, not bytes
    startPoll(transfers, transferBytes, onData, onError) {
      const data = (chunk: Buffer): void => onData(chunk);
      const error = (err: Error): void => onError(err);
      ep.on('data', data);
      ep.on('error', error);
      ep.once('end', () => {
        running = false;
        ep.off('data', data);
        ep.off('error', error);
      });
      running = true;
      ep.startPoll(transfers, transferBytes);
    },
    stopPoll(done) {
      if (!running) return done();
      if (ep.pollActive) ep.stopPoll(() => done());
      else ep.once('end', () => done());
    },
  };
}

function wrapOut(ep: OutEndpoint): UsbOutEndpointHandle {
  return {
    direction: 'out',
    address: ep.address,
    transferType: ep.transferType,
    maxPacketSize: ep.descriptor.wMaxPacketSize & 0x7ff,
    get timeout() {
      return ep.timeout;
    },
    set timeout(ms: number) {
      ep.timeout = ms;
    },
    transfer: (data, done) => {
      ep.transfer(data, (err, actual) => done(err ?? undefined, actual));
    },
  };
}
