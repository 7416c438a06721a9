/**
 * Which camera profile a USB device is, by the fingerprint in hardware/models/: vendor
 * and product id, and, when the device's descriptors can be read, the profile's vendor
 * interface (its number and class) present in the active configuration. Several
 * matches are not settled here: the caller refuses such a device (HAL_AMBIGUOUS) rather
 * than guess which camera it is.
 */
import type { CameraProfile } from '../profiles.js';
import type { UsbInterfaceDescription } from './device.js';

export interface UsbFingerprintSubject {
  readonly vendorId: number;
  readonly productId: number;
  /** Undefined when the descriptors cannot be read; then the ids alone decide. */
  readonly interfaces: readonly UsbInterfaceDescription[] | undefined;
}

export function matchingProfiles(subject: UsbFingerprintSubject, profiles: readonly CameraProfile[]): CameraProfile[] {
  return profiles.filter((p) => {
    if (p.usb.vendorId !== subject.vendorId || p.usb.productId !== subject.productId) return false;
    if (subject.interfaces === undefined) return true;
    return subject.interfaces.some((i) => i.number === p.usb.interface.number && i.interfaceClass === p.usb.interface.class);
  });
}
