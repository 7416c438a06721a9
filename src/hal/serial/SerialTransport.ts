/**
 * Serial backend (CDC-ACM on a real camera; a pseudo-terminal for the simulator)
 * over the `serialport` package's native bindings.
 */
import { SerialPort } from 'serialport';
import { applyBindingsWorkarounds } from './bindingsWorkarounds.js';
import { BaseTransport, type TransportKind } from '../Transport.js';
import { DockError, toDockError } from '../../errors.js';

export interface SerialOptions {
  baudRate?: number; // default 115200; a CDC-ACM device and a pty ignore it
  lock?: boolean; // default true: exclusive open, so two processes never share a camera
}

applyBindingsWorkarounds();

export class SerialTransport extends BaseTransport {
  readonly kind: TransportKind = 'serial';
  readonly path: string;
  readonly #options: Required<SerialOptions>;
  #port: SerialPort | undefined;

  constructor(path: string, options: SerialOptions = {}) {
    super();
    if (typeof path !== 'string' || path.length === 0) throw new DockError('CONFIG_INVALID', 'serial path must be a non-empty string');
    const baudRate = options.baudRate ?? 115200;
    if (!Number.isInteger(baudRate) || baudRate <= 0) throw new DockError('CONFIG_INVALID', `serial baudRate must be a positive integer, got ${String(baudRate)}`);
    this.path = path;
    this.#options = { baudRate, lock: options.lock ?? true };
  }

  async open(): Promise<void> {
    if (this.isOpen) return;
    const port = new SerialPort({ path: this.path, baudRate: this.#options.baudRate, autoOpen: false, lock: this.#options.lock });
    await new Promise<void>((resolve, reject) => {
      port.open((err) => {
        if (err) reject(toDockError(err, 'HAL_OPEN', `cannot open serial port ${this.path}; check that the camera is docked and that this user may open it (see hardware/udev)`, { path: this.path }));
        else resolve();
      });
    });
    this.#port = port;
    port.on('data', (chunk: Buffer) => this.emit('data', chunk));
    port.on('close', (err?: Error & { disconnected?: boolean }) => {
      if (this.#port === port) this.#port = undefined;
      if (err) this.lost(err.message, err);
      else this.lost('port closed');
    });
    port.on('error', (err: Error) => this.lost(err.message, err));
    this.markOpen();
  }

  write(data: Buffer): Promise<void> {
    const port = this.#port;
    if (!port || !this.isOpen) return Promise.reject(this.notOpen());
    // The callback fires once the bytes reached the OS: awaiting it is the backpressure.
    return new Promise<void>((resolve, reject) => {
      port.write(data, (err) => {
        if (err) reject(toDockError(err, 'HAL_WRITE', `write to ${this.path} failed`, { path: this.path }));
        else resolve();
      });
    });
  }

  async close(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    this.markClosed();
    if (!port?.isOpen) return;
    port.removeAllListeners('close');
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }
}
