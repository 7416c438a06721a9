/**
 * An in-process transport pair: what one end writes, the other end receives, in
 * order, on a later turn of the event loop (never re-entrantly). Used by unit tests,
 * the default demo and `dockside run --sim` without a serial stack.
 */
import { BaseTransport, type TransportKind } from './Transport.js';

export class LoopbackTransport extends BaseTransport {
  readonly kind: TransportKind = 'loopback';
  readonly path: string;
  #peer: LoopbackTransport | undefined;
  #queue: Buffer[] = [];
  #scheduled = false;

  private constructor(path: string) {
    super();
    this.path = path;
  }

  /** Two connected ends; both start open. */
  static pair(name = 'loopback'): [LoopbackTransport, LoopbackTransport] {
    const a = new LoopbackTransport(`${name}:a`);
    const b = new LoopbackTransport(`${name}:b`);
    a.#peer = b;
    b.#peer = a;
    a.markOpen();
    b.markOpen();
    return [a, b];
  }

  async open(): Promise<void> {
    if (!this.isOpen) throw this.notOpen();
  }

  async write(data: Buffer): Promise<void> {
    const peer = this.#peer;
    if (!this.isOpen || !peer?.isOpen) throw this.notOpen();
    peer.#enqueue(data);
  }

  async close(): Promise<void> {
    if (!this.isOpen) return;
    this.markClosed();
    this.#peer?.lost('the other end closed');
  }

  /** Simulates pulling the cable: both ends see `disconnected`. */
  unplug(): void {
    this.lost('unplugged');
    this.#peer?.lost('unplugged');
  }

  #enqueue(data: Buffer): void {
    this.#queue.push(data);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const chunks = this.#queue;
      this.#queue = [];
      for (const c of chunks) {
        if (!this.isOpen) return;
        this.emit('data', c);
      }
    });
  }
}
