/**
 * The few parts of a USB device that the usb backend uses, as small interfaces.
 * UsbTransport and UsbDiscovery are written against these, never against the `usb`
 * package itself: libusb.ts adapts a real `usb.Device` to them, and tests plug in a
 * double that moves bytes through the real protocol stack instead of a cable.
 */

/** libusb's transfer type number for bulk endpoints (LIBUSB_TRANSFER_TYPE_BULK). */
export const TRANSFER_TYPE_BULK = 2;

export interface UsbEndpointHandle {
  readonly direction: 'in' | 'out';
  readonly address: number;
  readonly transferType: number; // libusb numbering: 2 = bulk
  readonly maxPacketSize: number; // bytes, from the endpoint descriptor
}

export interface UsbInEndpointHandle extends UsbEndpointHandle {
  readonly direction: 'in';
  /**
   * Keeps `transfers` reads of `transferBytes` each queued in the kernel, re-queued as
   * each completes. Received bytes go to `onData`; the first failed read goes to
   * `onError`, after which polling has stopped.
   */
  startPoll(transfers: number, transferBytes: number, onData: (chunk: Buffer) => void, onError: (error: Error) => void): void;
  /** Cancels the queued reads; `done` runs once every one has completed or been cancelled. */
  stopPoll(done: () => void): void;
}

export interface UsbOutEndpointHandle extends UsbEndpointHandle {
  readonly direction: 'out';
  timeout: number; // ms for each transfer; 0 would mean forever, which the transport never sets
  /** One bulk OUT transfer; `done` gets the number of bytes the device accepted. */
  transfer(data: Buffer, done: (error: Error | undefined, actualBytes: number) => void): void;
}

export interface UsbInterfaceHandle {
  readonly number: number;
  readonly interfaceClass: number;
  readonly interfaceSubclass: number;
  readonly interfaceProtocol: number;
  isKernelDriverActive(): boolean;
  detachKernelDriver(): void;
  attachKernelDriver(): void;
  claim(): void;
  release(done: (error?: Error) => void): void;
  endpoint(address: number): UsbInEndpointHandle | UsbOutEndpointHandle | undefined;
}

export interface UsbDeviceHandle {
  readonly busNumber: number;
  readonly deviceAddress: number;
  /** Hub port chain from the root hub down, or undefined where the platform cannot tell. */
  readonly portNumbers: readonly number[] | undefined;
  readonly vendorId: number;
  readonly productId: number;
  timeout: number; // ms for control transfers
  open(): void;
  close(): void;
  /** The interface with this number in the active configuration (the device must be open). */
  interface(number: number): UsbInterfaceHandle | undefined;
  /** Calls `listener` when this device is unplugged; returns the function that unsubscribes. */
  onDetach(listener: () => void): () => void;
}

/** What discovery reads about an interface without opening the device. */
export interface UsbInterfaceDescription {
  readonly number: number;
  readonly interfaceClass: number;
  readonly interfaceSubclass: number;
  readonly interfaceProtocol: number;
}

/** One device as the bus lists it; nothing is opened until a transport opens `handle()`. */
export interface UsbDeviceRecord {
  readonly busNumber: number;
  readonly deviceAddress: number;
  readonly portNumbers: readonly number[] | undefined;
  readonly vendorId: number;
  readonly productId: number;
  /** Interfaces of the active configuration, or undefined when the descriptors cannot be read. */
  interfaces(): readonly UsbInterfaceDescription[] | undefined;
  handle(): UsbDeviceHandle;
}

/** The host's USB bus: a listing, and hotplug notifications where the platform has them. */
export interface UsbBus {
  list(): UsbDeviceRecord[];
  /** Starts hotplug notifications; returns the function that stops them. */
  watch(onAttach: (device: UsbDeviceRecord) => void, onDetach: (device: UsbDeviceRecord) => void): () => void;
}

/**
 * `usb:<bus>-<port>.<port>...`, the Linux sysfs name of the socket a device is plugged
 * into (what hardware/docks/*.json maps to bays), so it stays the same across re-docks
 * in the same bay. Without port numbers (some platforms) the bus address stands in,
 * which changes at every plug: `usb:<bus>@<address>`.
 */
export function usbPath(busNumber: number, portNumbers: readonly number[] | undefined, deviceAddress: number): string {
  if (portNumbers && portNumbers.length > 0) return `usb:${busNumber}-${portNumbers.join('.')}`;
  return `usb:${busNumber}@${deviceAddress}`;
}

export function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}
