/**
 * One duplex byte stream per docked camera. Everything above the HAL (protocol,
 * ingest, the simulator's firmware) sees only this, so a serial port, a USB bulk pipe
 * and an in-process pair plug in the same way.
 *
 * Contract:
 * - `open()` resolves once bytes can flow, or rejects with HAL_OPEN.
 * - `write()` resolves when the bytes are handed to the OS (or the peer); a rejected
 *   write is HAL_WRITE or HAL_DISCONNECTED. Writes are delivered in call order.
 * - `data` carries received bytes; listeners must not keep a reference past the
 *   event unless they copy (backends may reuse buffers).
 * - `disconnected` fires at most once, with a DockError, when the device goes away
 *   unasked (unplugged, port vanished, I/O error). `close()` does not fire it.
 */
import { EventEmitter } from 'node:events';
import { DockError } from '../errors.js';

export type TransportKind = 'loopback' | 'serial' | 'usb';

export interface TransportEvents {
  data: [chunk: Buffer];
  disconnected: [error: DockError];
}

export interface Transport extends EventEmitter<TransportEvents> {
  readonly kind: TransportKind;
  /** Where the device is reached: a port path, a USB bus address, or a loopback name. */
  readonly path: string;
  readonly isOpen: boolean;
  open(): Promise<void>;
  write(data: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** Shared bookkeeping: the once-only `disconnected` and the open/closed state. */
export abstract class BaseTransport extends EventEmitter<TransportEvents> implements Transport {
  abstract readonly kind: TransportKind;
  abstract readonly path: string;
  #open = false;
  #gone = false;

  get isOpen(): boolean {
    return this.#open;
  }

  abstract open(): Promise<void>;
  abstract write(data: Buffer): Promise<void>;
  abstract close(): Promise<void>;

  protected markOpen(): void {
    this.#open = true;
    this.#gone = false;
  }

  protected markClosed(): void {
    this.#open = false;
  }

  /** Called by a backend when the device vanished; emits `disconnected` once. */
  protected lost(reason: string, cause?: unknown): void {
    const wasOpen = this.#open;
    this.#open = false;
    if (this.#gone || !wasOpen) return;
    this.#gone = true;
    this.emit(
      'disconnected',
      new DockError('HAL_DISCONNECTED', `${this.kind} device at ${this.path} went away: ${reason}. Re-dock the camera; work resumes where it stopped`, { path: this.path, kind: this.kind }, { cause }),
    );
  }

  protected notOpen(): DockError {
    return new DockError('HAL_DISCONNECTED', `${this.kind} device at ${this.path} is not open`, { path: this.path, kind: this.kind });
  }
}
