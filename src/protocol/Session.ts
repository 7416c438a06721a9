/**
 * The dock's side of a link to one camera.
 *
 *   request() ──► window (≤ N in flight) ──► encodeFrame ──► transport.write
 *                                                   transport 'data' ──► FrameDecoder
 *   pending (Map, in send order) ◄── match by seq ◄──────────────────────────┘
 *
 * Loss recovery: a camera answers requests in the order it received them
 * (docs/protocol.md §3.3). So when the answer to request N arrives, every request
 * sent before N that is still pending was lost (or its answer was) and is resent at
 * once with a new sequence number, without waiting for a timer. A timer covers the
 * rest: when requests are pending and no byte at all has arrived for `timeoutMs`,
 * every pending request is resent. Each request has `retries` resends; then it
 * rejects with PROTO_TIMEOUT. A late answer to a superseded sequence number is
 * counted as stale and dropped.
 */
import { randomBytes, verify as verifySignature, createPublicKey } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { decodeStruct, encodedLength, encodeStructInto, type Struct } from './codec.js';
import { encodeFrameWith, FLAG_RESPONSE, FRAME_OVERHEAD, FRAME_VERSION, MIN_MAX_PAYLOAD, PROTOCOL_MAX_PAYLOAD, type Frame } from './frame.js';
import { cobsMaxEncodedLength } from './cobs.js';
import { FrameDecoder, type DiscardReason } from './FrameDecoder.js';
import { FramePool } from './FramePool.js';
import {
  assertClipId,
  assertSerial,
  MESSAGES,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  remoteErrorName,
  type ClipEntry,
  type LogEntry,
  type Request,
  type RequestName,
  type Response,
} from './messages.js';
import { authMessage, rawEd25519PublicKey } from './auth.js';
import { DockError, isDockError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { Transport } from '../hal/Transport.js';
import { stripUndefined } from '../objects.js';

export interface SessionOptions {
  timeoutMs?: number; // idle time with requests pending before they are resent; default 1000
  retries?: number; // resends per request before PROTO_TIMEOUT; default 4
  window?: number; // most requests in flight, capped by the camera's HELLO and by maxInFlightBytes; default 32
  maxInFlightBytes?: number; // window × negotiated payload stays within this; default 2 MiB
  maxPayload?: number; // largest payload the dock accepts; default 256 KiB
  dockId?: string; // sent in HELLO; default 'dockside'
  log?: Logger;
}

export const SESSION_DEFAULTS = {
  timeoutMs: 1000,
  retries: 4,
  // A USB 2 link through a hub (40 MB/s, 10 ms each way) holds 0.8 MB in its round
  // trip: 8 × 64 KiB (0.5 MB) capped a pull at 0.5 of the link, 16 at 0.7-0.95 (every
  // stall of the shared event loop longer than the slack idled the line), 32 (2 MiB)
  // carries 0.92-0.98. In bytes, so a camera with 256 KiB frames gets 8: 2 MiB per bay,
  // 16 MiB for eight.
  window: 32,
  maxInFlightBytes: 2 * 1024 * 1024,
  maxPayload: 256 * 1024,
  dockId: 'dockside',
} as const;

/**
 * Most clips one listing takes in: 256 full pages. A camera that keeps answering
 * "more" (hostile, or a firmware bug) cannot keep a bay listing for ever or grow the
 * dock's memory without end; clips past this stay on the camera for a later docking.
 */
export const MAX_LISTED_CLIPS = 256 * 256;

export interface SessionStats {
  requests: number;
  responses: number;
  retries: number; // resends, for any reason
  gapResends: number; // resends triggered by a later answer arriving first
  discardResends: number; // resends triggered by a discarded frame
  timeouts: number; // idle timer firings
  failed: number; // requests that ran out of retries
  remoteErrors: number;
  stale: number; // answers to superseded or unknown sequence numbers
  unexpected: number; // frames that are not a valid answer to what was asked
  framesOut: number;
  bytesOut: number;
  bytesIn: number;
  discarded: number;
  discardedByReason: Partial<Record<DiscardReason, number>>;
}

export interface SessionEvents {
  disconnected: [error: DockError];
  discarded: [reason: DiscardReason, bytes: number];
}

interface Pending {
  name: RequestName;
  // Encoded again at each send, straight into the frame (a resend has a new seq, so a
  // new frame anyway): a LINK_TEST or FIRMWARE_CHUNK payload is never copied twice.
  request: Request<RequestName>;
  payloadBytes: number;
  attempts: number;
  maxRetries: number;
  timeoutMs: number;
  seq: number;
  resolve: (r: Response<RequestName>) => void;
  reject: (e: DockError) => void;
}

export type Hello = Response<'HELLO'>;

/**
 * A READ answer for one chunk, delivered in offset order by readRange(). `data` is
 * lent: it stays valid until the sink's call settles, then its memory decodes a later
 * answer (FramePool). A sink that keeps the bytes longer copies them.
 */
export type ChunkSink = (offset: number, data: Buffer) => void | Promise<void>;

/** Answers at least this large (encoded) decode into pooled memory during readRange(). */
const POOLED_FRAME_MIN_BYTES = 16 * 1024;

export class Session extends EventEmitter<SessionEvents> {
  readonly transport: Transport;
  readonly stats: SessionStats = {
    requests: 0,
    responses: 0,
    retries: 0,
    gapResends: 0,
    discardResends: 0,
    timeouts: 0,
    failed: 0,
    remoteErrors: 0,
    stale: 0,
    unexpected: 0,
    framesOut: 0,
    bytesOut: 0,
    bytesIn: 0,
    discarded: 0,
    discardedByReason: {},
  };
  readonly #opts: Required<Omit<SessionOptions, 'log'>>;
  readonly #log: Logger;
  readonly #decoder: FrameDecoder;
  readonly #pending = new Map<number, Pending>();
  readonly #waiting: (() => void)[] = [];
  #inFlight = 0;
  #window: number;
  #maxPayload = MIN_MAX_PAYLOAD;
  #seq = 1;
  #timer: NodeJS.Timeout | undefined;
  #closed: DockError | undefined;
  #pool: FramePool | undefined; // sized from HELLO
  #reading = 0; // readRange() calls running: the pool lends only then
  #hello: Hello | undefined;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);
  readonly #onDisconnected = (err: DockError): void => this.#shutdown(err, true);

  constructor(transport: Transport, options: SessionOptions = {}) {
    super();
    const o = { ...SESSION_DEFAULTS, ...stripUndefined(options) };
    for (const key of ['timeoutMs', 'retries', 'window', 'maxPayload', 'maxInFlightBytes'] as const) {
      const v = o[key];
      if (!Number.isInteger(v) || v < (key === 'retries' ? 0 : 1)) throw new DockError('CONFIG_INVALID', `session option ${key} must be a positive integer, got ${String(v)}`);
    }
    if (o.maxPayload > PROTOCOL_MAX_PAYLOAD || o.maxPayload < MIN_MAX_PAYLOAD) {
      throw new DockError('CONFIG_INVALID', `session option maxPayload must be from ${MIN_MAX_PAYLOAD} to ${PROTOCOL_MAX_PAYLOAD}, got ${o.maxPayload}`);
    }
    this.#opts = { timeoutMs: o.timeoutMs, retries: o.retries, window: o.window, maxInFlightBytes: o.maxInFlightBytes, maxPayload: o.maxPayload, dockId: o.dockId };
    this.#log = options.log ?? silentLogger();
    this.#window = 1; // until HELLO says otherwise
    this.transport = transport;
    this.#decoder = new FrameDecoder(
      {
        onFrame: (f) => this.#onFrame(f),
        allocate: (bytes) => (this.#reading > 0 && bytes >= POOLED_FRAME_MIN_BYTES ? this.#pool?.take(bytes) : undefined),
        onDiscard: (reason, bytes) => {
          this.stats.discarded++;
          this.#fastResend(bytes);
          this.stats.discardedByReason[reason] = (this.stats.discardedByReason[reason] ?? 0) + 1;
          if (this.#log.isLevelEnabled('debug')) this.#log.debug({ reason, bytes }, 'frame discarded');
          this.emit('discarded', reason, bytes);
        },
      },
      this.#opts.maxPayload,
    );
    transport.on('data', this.#onData);
    transport.on('disconnected', this.#onDisconnected);
  }

  /** Opens the transport and performs HELLO: the session is ready for requests. */
  static async connect(transport: Transport, options: SessionOptions = {}): Promise<Session> {
    await transport.open();
    const session = new Session(transport, options);
    try {
      await session.hello();
    } catch (err) {
      await session.close();
      throw err;
    }
    return session;
  }

  get info(): Hello {
    if (!this.#hello) throw new DockError('PROTO_UNEXPECTED', 'session has not completed HELLO yet');
    return this.#hello;
  }

  get serial(): string {
    return this.info.serial;
  }

  get window(): number {
    return this.#window;
  }

  /** Largest READ data chunk that fits the negotiated payload. */
  get maxChunk(): number {
    return this.#maxPayload - 12; // READ answer: u64 offset + u32 length
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  async hello(): Promise<Hello> {
    const res = await this.request('HELLO', {
      minVersion: PROTOCOL_VERSION_MIN,
      maxVersion: PROTOCOL_VERSION_MAX,
      dockId: this.#opts.dockId,
      maxPayload: this.#opts.maxPayload,
      window: this.#opts.window,
    });
    if (res.version < PROTOCOL_VERSION_MIN || res.version > PROTOCOL_VERSION_MAX) {
      throw new DockError('PROTO_VERSION', `camera chose protocol version ${res.version}, outside what this dock speaks (${PROTOCOL_VERSION_MIN}..${PROTOCOL_VERSION_MAX}); update dockside or the camera firmware`, { version: res.version });
    }
    assertSerial(res.serial);
    if (res.maxPayload < MIN_MAX_PAYLOAD) {
      throw new DockError('PROTO_UNEXPECTED', `camera ${res.serial} offers a maximum payload of ${res.maxPayload} bytes, below the protocol minimum ${MIN_MAX_PAYLOAD}`, { serial: res.serial });
    }
    this.#maxPayload = Math.min(res.maxPayload, this.#opts.maxPayload);
    // W (docs/protocol.md §3.6) is the most the camera takes; the dock keeps fewer in
    // flight when W full-size answers would exceed its memory budget.
    this.#window = Math.max(1, Math.min(res.window, this.#opts.window, Math.floor(this.#opts.maxInFlightBytes / this.#maxPayload)));
    // One buffer per answer in flight, plus the one being handed to the sink.
    this.#pool = new FramePool(cobsMaxEncodedLength(this.#maxPayload + FRAME_OVERHEAD), this.#window + 1);
    this.#hello = res;
    this.#drainWaiting();
    this.#log.debug({ serial: res.serial, model: res.model, maxPayload: this.#maxPayload, window: this.#window }, 'hello');
    return res;
  }

  /**
   * AUTH: the camera signs a fresh nonce with its device key. Returns the raw
   * Ed25519 public key it proved it holds. With `expectedKey` (the enrolled key, raw
   * 32 bytes), a different key is refused with PROTO_AUTH.
   */
  async authenticate(expectedKey?: Buffer): Promise<Buffer> {
    const nonce = randomBytes(32);
    const res = await this.request('AUTH', { nonce });
    const key = Buffer.from(res.publicKey);
    const pub = createPublicKey({ key: rawEd25519PublicKey(key), format: 'der', type: 'spki' });
    if (!verifySignature(null, authMessage(this.serial, nonce), pub, res.signature)) {
      throw new DockError('PROTO_AUTH', `camera ${this.serial} failed authentication: its signature over the dock's challenge does not verify. Do not trust this device; report it`, { serial: this.serial });
    }
    if (expectedKey && !expectedKey.equals(key)) {
      throw new DockError('PROTO_AUTH', `camera ${this.serial} proved a key that is not the one enrolled for it. Nothing is taken from it; if the camera was re-keyed, re-enroll it with \`dockside enroll ${this.serial}\``, {
        serial: this.serial,
      });
    }
    return key;
  }

  status(): Promise<Response<'STATUS'>> {
    return this.request('STATUS', {});
  }

  /**
   * Every clip on the camera, all pages. Ids are checked safe before anything sees
   * them; a clip with an unsafe id is refused on its own (it stays on the camera and
   * is reported), and the others are listed.
   */
  async listClips(pageSize = 128): Promise<{ clips: ClipEntry[]; refused: { id: string; error: DockError }[] }> {
    const clips: ClipEntry[] = [];
    const refused: { id: string; error: DockError }[] = [];
    for await (const page of this.#pages('LIST_CLIPS', pageSize)) {
      for (const c of page.clips) {
        try {
          clips.push({ ...c, id: assertClipId(c.id) });
        } catch (err) {
          refused.push({ id: c.id.slice(0, 80), error: err as DockError });
        }
      }
      if (page.more && clips.length + refused.length >= MAX_LISTED_CLIPS) {
        this.#log.warn({ serial: this.serial, listed: clips.length + refused.length, max: MAX_LISTED_CLIPS }, 'camera lists more clips than one offload takes; the rest stay on the camera for a later docking');
        break;
      }
    }
    return { clips, refused };
  }

  async getLog(limit = 1024): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    for await (const page of this.#pages('GET_LOG', Math.min(limit, 256))) {
      out.push(...page.entries);
      if (out.length >= limit) break;
    }
    return out.slice(0, limit);
  }

  /** Cursor paging shared by LIST_CLIPS and GET_LOG: `next` must move forward. */
  async *#pages<N extends 'LIST_CLIPS' | 'GET_LOG'>(name: N, limit: number): AsyncGenerator<Response<N>> {
    let cursor = 0;
    for (;;) {
      const res = (await this.request(name, { cursor, limit } as Request<N>)) as Response<'LIST_CLIPS' | 'GET_LOG'>;
      // docs/protocol.md §5.4: a page holds at least one entry when any remain, so "more" after an empty page never ends.
      if (res.more && ('clips' in res ? res.clips : res.entries).length === 0) {
        throw new DockError('PROTO_UNEXPECTED', `camera ${this.serial} sent an empty ${name} page that says more follow (at cursor ${cursor})`, { serial: this.serial, cursor });
      }
      yield res as Response<N>;
      if (!res.more) return;
      if (res.next <= cursor) {
        throw new DockError('PROTO_UNEXPECTED', `camera ${this.serial} sent a ${name} cursor that does not advance (${cursor} → ${res.next})`, { serial: this.serial });
      }
      cursor = res.next;
    }
  }

  /**
   * Reads [from, to) of a clip with up to `window` READs in flight and hands each
   * chunk to `sink` in offset order; the next chunk is not handed over before the
   * previous sink call settled, so the sink can fsync at its own pace.
   *
   * Chunk size adapts to the link: halved after a chunk that needed a resend, doubled
   * again after 16 clean ones. A chunk that still fails after a few resends (on a
   * noisy link a large frame may almost never arrive intact) is split into quarter
   * size pieces and asked again; only at the smallest size does a failure end the
   * read.
   */
  async readRange(clipId: string, from: number, to: number, sink: ChunkSink, options: { chunkBytes?: number } = {}): Promise<void> {
    assertClipId(clipId);
    const maxChunk = Math.min(options.chunkBytes ?? this.maxChunk, this.maxChunk);
    const minChunk = Math.min(1024, maxChunk);
    const splitRetries = Math.min(2, this.#opts.retries);
    // Chunk sizes below the maximum stay multiples of 1 KiB, so splits never leave slivers.
    const fit = (n: number): number => Math.min(maxChunk, Math.max(minChunk, n >= 1024 ? n - (n % 1024) : n));
    let chunk = maxChunk;
    let clean = 0;
    // A discarded frame means this chunk size is failing on this link: shrink at once.
    const onDiscard = (): void => {
      chunk = fit(chunk >> 1);
      clean = 0;
    };
    this.on('discarded', onDiscard);
    this.#reading++;
    let next = from;
    type Read = { offset: number; length: number; retriesBefore: number; answer: Promise<Response<'READ'>> };
    const inflight: Read[] = [];
    const ask = (offset: number, length: number): Read => {
      const answer = this.request('READ', { clipId, offset, length }, length > minChunk ? { retries: splitRetries } : {});
      answer.catch(() => undefined); // awaited below in order; avoid an unhandled rejection meanwhile
      return { offset, length, retriesBefore: this.stats.retries, answer };
    };
    const issue = (): void => {
      while (next < to && inflight.length < this.#window) {
        const length = Math.min(chunk, to - next);
        inflight.push(ask(next, length));
        next += length;
      }
    };
    try {
      issue();
      while (inflight.length > 0) {
        const head = inflight.shift()!;
        let res: Response<'READ'>;
        try {
          res = await head.answer;
        } catch (err) {
          if (!isDockError(err, 'PROTO_TIMEOUT') || head.length <= minChunk) throw err;
          // Too big for this link: ask for the same range in smaller pieces, first in line.
          const piece = fit(Math.ceil(head.length / 4));
          chunk = Math.min(chunk, piece);
          clean = 0;
          const pieces: Read[] = [];
          for (let off = head.offset; off < head.offset + head.length; off += piece) pieces.push(ask(off, Math.min(piece, head.offset + head.length - off)));
          inflight.unshift(...pieces);
          continue;
        }
        if (res.offset !== head.offset || res.data.length !== head.length) {
          throw new DockError('PROTO_UNEXPECTED', `camera ${this.serial} answered READ ${clipId} @${head.offset}+${head.length} with ${res.data.length} bytes @${res.offset}; the clip is left on the camera`, {
            serial: this.serial,
            clipId,
            offset: head.offset,
          });
        }
        if (this.stats.retries > head.retriesBefore) {
          chunk = fit(chunk >> 1);
          clean = 0;
        } else if (++clean >= 16 && chunk < maxChunk) {
          chunk = fit(chunk * 2);
          clean = 0;
        }
        await sink(head.offset, res.data);
        this.#pool?.give(res.data);
        issue();
      }
    } finally {
      this.off('discarded', onDiscard);
      if (--this.#reading === 0) this.#pool?.clear(); // no pooled memory held between pulls
      // On failure, let the reads still in flight settle quietly.
      for (const r of inflight) r.answer.catch(() => undefined);
    }
  }

  /**
   * One request; resolves with the typed answer or rejects with a DockError. `req` is
   * checked now and encoded at each send: leave its byte fields unchanged until the
   * request settles.
   */
  request<N extends RequestName>(name: N, req: Request<N>, options: { retries?: number; timeoutMs?: number } = {}): Promise<Response<N>> {
    if (this.#closed) return Promise.reject(this.#closed);
    let payloadBytes: number;
    try {
      payloadBytes = encodedLength(MESSAGES[name].req as Struct, req as never);
    } catch (err) {
      return Promise.reject(err);
    }
    if (payloadBytes > this.#maxPayload && name !== 'HELLO') {
      return Promise.reject(new DockError('PROTO_BAD_PAYLOAD', `${name} request of ${payloadBytes} bytes exceeds the negotiated maximum payload ${this.#maxPayload}`, { request: name, bytes: payloadBytes }));
    }
    return new Promise<Response<N>>((resolve, reject) => {
      const start = (): void => {
        if (this.#closed) return reject(this.#closed);
        this.#inFlight++;
        const p: Pending = {
          name,
          request: req,
          payloadBytes,
          attempts: 0,
          maxRetries: options.retries ?? this.#opts.retries,
          timeoutMs: options.timeoutMs ?? this.#opts.timeoutMs,
          seq: 0,
          resolve: resolve as (r: Response<RequestName>) => void,
          reject,
        };
        this.stats.requests++;
        this.#send(p);
      };
      // HELLO goes first, alone; everything else waits for a window slot.
      if (name === 'HELLO' || this.#inFlight < (this.#hello ? this.#window : 1)) start();
      else this.#waiting.push(start);
    });
  }

  async close(): Promise<void> {
    this.#shutdown(new DockError('PROTO_CLOSED', 'session closed'), false);
    await this.transport.close();
  }

  #send(p: Pending): void {
    const seq = this.#seq;
    this.#seq = (this.#seq + 1) >>> 0 || 1;
    p.seq = seq;
    p.attempts++;
    this.#pending.set(seq, p);
    const spec = MESSAGES[p.name].req as Struct;
    const wire = encodeFrameWith({ type: MESSAGES[p.name].type, flags: 0, seq }, p.payloadBytes, (buf, offset) => void encodeStructInto(spec, p.request as never, buf, offset));
    this.stats.framesOut++;
    this.stats.bytesOut += wire.length;
    this.#armTimer();
    this.transport.write(wire).catch((err: unknown) => {
      // A failed write means the link is gone; the transport reports that separately.
      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ err }, 'write failed');
    });
  }

  #resend(p: Pending, why: 'gap' | 'timeout'): void {
    this.#pending.delete(p.seq);
    if (p.attempts > p.maxRetries) {
      this.stats.failed++;
      this.#finish();
      p.reject(
        new DockError('PROTO_TIMEOUT', `camera ${this.#hello?.serial ?? this.transport.path} did not answer ${p.name} after ${p.attempts} attempts; check the dock contacts and cable, then re-dock`, {
          request: p.name,
          attempts: p.attempts,
          path: this.transport.path,
        }),
      );
      return;
    }
    this.stats.retries++;
    if (why === 'gap') this.stats.gapResends++;
    this.#send(p);
  }

  /**
   * Answers come in order, so a discarded frame long enough to have been an answer
   * was most likely the answer to the oldest pending request: resend that one now
   * rather than wait for the idle timer. A wrong guess costs one duplicate answer,
   * dropped as stale. Firmware requests are not idempotent in this way (a repeated
   * BEGIN restarts the transfer) and wait for the timer.
   */
  #fastResend(discardedBytes: number): void {
    if (discardedBytes < FRAME_OVERHEAD) return;
    for (const p of this.#pending.values()) {
      if (p.name.startsWith('FIRMWARE_')) return;
      this.stats.discardResends++;
      this.#resend(p, 'gap');
      return;
    }
  }

  #receive(chunk: Buffer): void {
    this.stats.bytesIn += chunk.length;
    // Bytes are arriving: the link is alive, so restart the idle timer.
    if (this.#pending.size > 0) this.#armTimer();
    this.#decoder.push(chunk);
  }

  #onFrame(frame: Frame): void {
    if (frame.version !== FRAME_VERSION || (frame.flags & FLAG_RESPONSE) === 0) {
      this.stats.unexpected++;
      return;
    }
    const p = this.#pending.get(frame.seq);
    if (!p) {
      this.stats.stale++;
      return;
    }
    // Answers come in order: anything sent before this request and still pending is lost.
    for (const [seq, earlier] of this.#pending) {
      if (seq === frame.seq) break;
      this.#resend(earlier, 'gap');
    }
    this.#pending.delete(frame.seq);
    this.stats.responses++;
    const spec = MESSAGES[p.name];
    if (frame.type === MESSAGES.ERROR.type) {
      this.stats.remoteErrors++;
      let err: DockError;
      try {
        const e = decodeStruct(MESSAGES.ERROR.res, frame.payload);
        const remote = remoteErrorName(e.code);
        err = new DockError('PROTO_REMOTE', `camera refused ${p.name}: ${remote}: ${e.message}`, { request: p.name, remote, remoteCode: e.code });
      } catch (cause) {
        err = new DockError('PROTO_BAD_PAYLOAD', `camera sent a malformed ERROR answer to ${p.name}`, { request: p.name }, { cause });
      }
      this.#finish();
      p.reject(err);
      return;
    }
    if (frame.type !== spec.type) {
      this.stats.unexpected++;
      this.#finish();
      p.reject(new DockError('PROTO_UNEXPECTED', `camera answered ${p.name} with message type 0x${frame.type.toString(16)}`, { request: p.name, type: frame.type }));
      return;
    }
    let res: Response<RequestName>;
    try {
      res = decodeStruct(spec.res, frame.payload) as Response<RequestName>;
    } catch (err) {
      this.stats.unexpected++;
      this.#finish();
      p.reject(err instanceof DockError ? new DockError(err.code, `camera's answer to ${p.name} is malformed: ${err.message}`, { ...err.details, request: p.name }) : (err as DockError));
      return;
    }
    this.#finish();
    p.resolve(res);
  }

  #finish(): void {
    this.#inFlight--;
    if (this.#pending.size === 0) this.#clearTimer();
    this.#drainWaiting();
  }

  #drainWaiting(): void {
    while (this.#waiting.length > 0 && this.#inFlight < this.#window && !this.#closed) this.#waiting.shift()!();
  }

  /** The idle limit is the longest any pending request allows (a COMMIT that reboots needs more). */
  #armTimer(): void {
    this.#clearTimer();
    let ms = this.#opts.timeoutMs;
    for (const p of this.#pending.values()) if (p.timeoutMs > ms) ms = p.timeoutMs;
    this.#timer = setTimeout(() => this.#onIdle(), ms);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onIdle(): void {
    this.#timer = undefined;
    if (this.#pending.size === 0) return;
    this.stats.timeouts++;
    for (const p of [...this.#pending.values()]) this.#resend(p, 'timeout');
  }

  #shutdown(err: DockError, emit: boolean): void {
    if (this.#closed) return;
    this.#closed = err;
    this.#clearTimer();
    this.transport.off('data', this.#onData);
    this.transport.off('disconnected', this.#onDisconnected);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
    for (const start of this.#waiting.splice(0)) start();
    if (emit) this.emit('disconnected', err);
  }
}
