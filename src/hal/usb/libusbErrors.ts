/**
 * What a libusb failure means for the dock. The `usb` package throws errors whose
 * `errno` is either a libusb error code (negative: LIBUSB_ERROR_*, from calls such as
 * open or claim, and from a transfer that could not be submitted) or a transfer status
 * (positive: LIBUSB_TRANSFER_*, from a transfer that completed badly). The numbers are
 * libusb's ABI (libusb.h), written out here so this module loads without the native
 * addon; the message is libusb_error_name() of the same number.
 */

export type UsbFailure = 'gone' | 'timeout' | 'access' | 'busy' | 'stall' | 'cancelled' | 'unsupported' | 'other';

const BY_ERRNO = new Map<number, UsbFailure>([
  [-3, 'access'], // LIBUSB_ERROR_ACCESS
  [-4, 'gone'], // LIBUSB_ERROR_NO_DEVICE
  [-6, 'busy'], // LIBUSB_ERROR_BUSY
  [-7, 'timeout'], // LIBUSB_ERROR_TIMEOUT
  [-9, 'stall'], // LIBUSB_ERROR_PIPE
  [-12, 'unsupported'], // LIBUSB_ERROR_NOT_SUPPORTED
  [2, 'timeout'], // LIBUSB_TRANSFER_TIMED_OUT
  [3, 'cancelled'], // LIBUSB_TRANSFER_CANCELLED
  [4, 'stall'], // LIBUSB_TRANSFER_STALL
  [5, 'gone'], // LIBUSB_TRANSFER_NO_DEVICE
]);

const BY_NAME = new Map<string, UsbFailure>([
  ['LIBUSB_ERROR_ACCESS', 'access'],
  ['LIBUSB_ERROR_NO_DEVICE', 'gone'],
  ['LIBUSB_ERROR_BUSY', 'busy'],
  ['LIBUSB_ERROR_TIMEOUT', 'timeout'],
  ['LIBUSB_ERROR_PIPE', 'stall'],
  ['LIBUSB_ERROR_NOT_SUPPORTED', 'unsupported'],
  ['LIBUSB_TRANSFER_TIMED_OUT', 'timeout'],
  ['LIBUSB_TRANSFER_CANCELLED', 'cancelled'],
  ['LIBUSB_TRANSFER_STALL', 'stall'],
  ['LIBUSB_TRANSFER_NO_DEVICE', 'gone'],
]);

export function usbFailure(err: unknown): UsbFailure {
  if (typeof err !== 'object' || err === null) return 'other';
  const errno = (err as { errno?: unknown }).errno;
  if (typeof errno === 'number') {
    const byErrno = BY_ERRNO.get(errno);
    if (byErrno) return byErrno;
  }
  const message = (err as { message?: unknown }).message;
  if (typeof message === 'string') return BY_NAME.get(message.trim()) ?? 'other';
  return 'other';
}

/** The libusb name of a failure for a log or an error message ("LIBUSB_TRANSFER_STALL"). */
export function usbErrorName(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
