/**
 * The camera's side of the protocol: decodes requests, runs one handler per message
 * type strictly in arrival order (the ordering rule of docs/protocol.md §3.3), and
 * writes the answer. Anything a peer sends that is not a valid request (unknown
 * type, unknown version, malformed payload, a handler that throws) is answered with
 * ERROR; nothing a peer sends can throw out of here.
 */
import { EventEmitter } from 'node:events';
import { decodeStruct, encodedLength, encodeStruct, encodeStructInto, type Struct } from './codec.js';
import { encodeFrame, encodeFrameWith, FLAG_RESPONSE, FRAME_VERSION, PROTOCOL_MAX_PAYLOAD, type Frame } from './frame.js';
import { FrameDecoder, type DiscardReason } from './FrameDecoder.js';
import { MESSAGES, messageName, REMOTE_ERRORS, type RemoteErrorName, type Request, type RequestName, type Response } from './messages.js';
import { DockError } from '../errors.js';
import type { Transport } from '../hal/Transport.js';

/** Thrown by a handler to answer with ERROR and this code. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(
    readonly remote: RemoteErrorName,
    message: string,
  ) {
    super(message);
  }
}

/** Returned by a handler to leave a request unanswered (a stalled camera). */
export const NO_ANSWER: unique symbol = Symbol('NO_ANSWER');

export interface RequestContext {
  seq: number;
  endpoint: Endpoint;
}

export type Handler<N extends RequestName> = (req: Request<N>, ctx: RequestContext) => Response<N> | typeof NO_ANSWER | Promise<Response<N> | typeof NO_ANSWER>;
export type Handlers = { [N in RequestName]?: Handler<N> };

export interface ReceivedRequest {
  name: RequestName;
  seq: number;
  request: Request<RequestName>;
}

export interface EndpointEvents {
  request: [received: ReceivedRequest];
  discarded: [reason: DiscardReason, bytes: number];
  answered: [name: RequestName | 'ERROR', seq: number];
}

export interface EndpointStats {
  requests: number;
  errorsSent: number;
  unanswered: number;
  overflowed: number;
  discarded: number;
}

const MAX_QUEUED = 256; // requests buffered beyond the window before new ones are dropped

export class Endpoint extends EventEmitter<EndpointEvents> {
  readonly transport: Transport;
  readonly stats: EndpointStats = { requests: 0, errorsSent: 0, unanswered: 0, overflowed: 0, discarded: 0 };
  readonly #handlers: Handlers;
  readonly #decoder: FrameDecoder;
  readonly #queue: Frame[] = [];
  #maxPayload: number;
  #busy = false;
  #closed = false;
  readonly #onData = (chunk: Buffer): void => this.#decoder.push(chunk);

  constructor(transport: Transport, handlers: Handlers, options: { maxPayload?: number } = {}) {
    super();
    this.transport = transport;
    this.#handlers = { ...handlers };
    this.#maxPayload = options.maxPayload ?? PROTOCOL_MAX_PAYLOAD;
    this.#decoder = new FrameDecoder(
      {
        onFrame: (f) => this.#enqueue(f),
        onDiscard: (reason, bytes) => {
          this.stats.discarded++;
          this.emit('discarded', reason, bytes);
        },
      },
      this.#maxPayload,
    );
    transport.on('data', this.#onData);
  }

  /** Replaces one behaviour (tests override the default firmware this way). */
  setHandler<N extends RequestName>(name: N, handler: Handler<N> | undefined): void {
    (this.#handlers as Record<string, unknown>)[name] = handler;
  }

  getHandler<N extends RequestName>(name: N): Handler<N> | undefined {
    return this.#handlers[name] as Handler<N> | undefined;
  }

  /** Largest payload this side will send (set after HELLO from the dock's offer). */
  set maxPayload(n: number) {
    this.#maxPayload = Math.min(n, PROTOCOL_MAX_PAYLOAD);
    // What the camera takes in is bounded by the same negotiated size.
    this.#decoder.setMaxPayload(this.#maxPayload);
  }

  get maxPayload(): number {
    return this.#maxPayload;
  }

  close(): void {
    this.#closed = true;
    this.transport.off('data', this.#onData);
    this.#queue.length = 0;
  }

  #enqueue(frame: Frame): void {
    if (this.#closed) return;
    if ((frame.flags & FLAG_RESPONSE) !== 0) return; // a camera takes no answers
    if (this.#queue.length >= MAX_QUEUED) {
      this.stats.overflowed++;
      return;
    }
    this.#queue.push(frame);
    if (!this.#busy) void this.#run();
  }

  async #run(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        await this.#serve(this.#queue.shift()!);
      }
    } finally {
      this.#busy = false;
    }
  }

  async #serve(frame: Frame): Promise<void> {
    const name = messageName(frame.type);
    if (frame.version !== FRAME_VERSION) {
      return this.#sendError(frame, 'UNSUPPORTED_VERSION', `frame version ${frame.version} is not supported; this camera speaks version ${FRAME_VERSION}`);
    }
    if (!name || name === 'ERROR') {
      return this.#sendError(frame, 'UNKNOWN_TYPE', `unknown message type 0x${frame.type.toString(16).padStart(2, '0')}`);
    }
    const handler = this.#handlers[name] as Handler<RequestName> | undefined;
    if (!handler) return this.#sendError(frame, 'UNKNOWN_TYPE', `${name} is not supported by this camera`);
    let req: Request<RequestName>;
    try {
      req = decodeStruct(MESSAGES[name].req, frame.payload) as Request<RequestName>;
    } catch (err) {
      return this.#sendError(frame, 'BAD_PAYLOAD', err instanceof Error ? err.message : String(err));
    }
    this.stats.requests++;
    this.emit('request', { name, seq: frame.seq, request: req });
    let res: Response<RequestName> | typeof NO_ANSWER;
    try {
      res = await handler(req, { seq: frame.seq, endpoint: this });
    } catch (err) {
      if (err instanceof RemoteError) return this.#sendError(frame, err.remote, err.message);
      return this.#sendError(frame, 'INTERNAL', err instanceof Error ? err.message : String(err));
    }
    if (res === NO_ANSWER) {
      this.stats.unanswered++;
      return;
    }
    const spec = MESSAGES[name].res as Struct;
    let bytes: number;
    try {
      bytes = encodedLength(spec, res as never);
    } catch (err) {
      return this.#sendError(frame, 'INTERNAL', `could not encode ${name} answer: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (bytes > this.#maxPayload) {
      return this.#sendError(frame, 'INTERNAL', `${name} answer of ${bytes} bytes exceeds the negotiated maximum ${this.#maxPayload}`);
    }
    // Straight into the frame: a READ answer's clip bytes are copied once.
    await this.#write(encodeFrameWith({ type: frame.type, flags: FLAG_RESPONSE, seq: frame.seq }, bytes, (buf, offset) => void encodeStructInto(spec, res as never, buf, offset)));
    this.emit('answered', name, frame.seq);
  }

  async #sendError(frame: Frame, remote: RemoteErrorName, message: string): Promise<void> {
    this.stats.errorsSent++;
    const payload = encodeStruct(MESSAGES.ERROR.res, { code: REMOTE_ERRORS[remote], message: truncateUtf8(message, 512) });
    await this.#write(encodeFrame({ type: MESSAGES.ERROR.type, flags: FLAG_RESPONSE, seq: frame.seq, payload }));
    this.emit('answered', 'ERROR', frame.seq);
  }

  async #write(wire: Buffer): Promise<void> {
    if (this.#closed || !this.transport.isOpen) return;
    try {
      await this.transport.write(wire);
    } catch (err) {
      // The link went away under us; the transport reports that with `disconnected`.
      if (!(err instanceof DockError)) throw err;
    }
  }
}

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = s.slice(0, maxBytes);
  while (Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1);
  return out;
}
