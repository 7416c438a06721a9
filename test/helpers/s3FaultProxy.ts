// An HTTP reverse proxy in front of a real S3 store, to make the store misbehave on cue
// and to watch what a client sends it:
//
//   S3Client ──▶ proxy (mode) ──▶ s3rver
//                  │ pass        forward both ways unchanged, streaming
//                  │ corruptPut  flip one bit of an object body on its way in (PutObject, UploadPart);
//                  │             {corruptPut: RegExp} only for object paths it matches
//                  │ {status}    answer matching requests itself with an S3 XML error
//                  │ refuse      destroy client sockets at once (the store is down)
//                  │ {slow}      forward, but every body (uploads and downloads) through one
//                  │             shared lane of `slow` bytes/s: a store that is slow, not down
//                  └ stats       every request, and body bytes with their arrival time
//
// The Host header is forwarded unchanged: the client signed it (SigV4) and the store
// checks the signature against the request it sees.
// When the store itself cannot be reached, the proxy destroys the client's socket
// rather than inventing a 502 the real store would never send.
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Transform, type TransformCallback } from 'node:stream';

export type FaultMode =
  | 'pass'
  | 'corruptPut'
  | 'refuse'
  /** Answer requests whose method is in `methods` (default PUT and POST) with this error. */
  | { status: number; code: string; methods?: string[]; message?: string }
  /** corruptPut for the objects whose request path (/bucket/key) matches, e.g. /\.bin$/ for clips and not sidecars. */
  | { corruptPut: RegExp }
  /** Forward everything, with request and response bodies together limited to `slow` bytes/s. */
  | { slow: number };

export interface ProxiedRequest {
  method: string;
  path: string; // as sent, with the query string
  headers: IncomingHttpHeaders;
  startMs: number; // on the proxy clock (clockMs())
  endMs: number | undefined; // when the request body ended
  bodyBytes: number; // request body bytes received from the client
  mode: string; // what the proxy did with it: 'pass', 'corruptPut', 'status 507', 'refuse', 'slow 200000 B/s'
  status: number | undefined; // status sent to the client, once sent
  corruptedAt: number | undefined; // body offset whose lowest bit was flipped (corruptPut)
}

/** A chunk of request body that arrived: when (proxy clock, ms) and how many bytes. */
export interface BodySample {
  tMs: number;
  bytes: number;
}

export interface FaultProxy {
  endpoint: string; // 'http://127.0.0.1:PORT'
  port: number;
  /** Settable at any time; applies to requests that arrive (refuse: and sockets open) from then on. */
  mode: FaultMode;
  readonly requests: readonly ProxiedRequest[];
  readonly samples: readonly BodySample[];
  /** Connections (and requests on open connections) destroyed by refuse mode since the last resetStats(). */
  readonly refused: number;
  /** Request body bytes received from clients since the last resetStats(). */
  bodyBytes(): number;
  /** The clock of startMs/tMs: ms since the proxy started (monotonic). */
  clockMs(): number;
  /** Average request-body rate in bytes/s over [fromMs, toMs) of the proxy clock. */
  rateBytesPerSec(fromMs: number, toMs: number): number;
  resetStats(): void;
  close(): Promise<void>;
}

// Hop-by-hop headers belong to one connection and are not forwarded. Nor is Expect: the
// proxy's own server has answered 100-continue already (SigV4 never signs Expect).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer', 'expect']);

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

/**
 * PutObject and UploadPart carry object bytes: PUT /bucket/key with no query but the SDK's
 * x-id, or partNumber+uploadId. Not bucket-level PUTs (/bucket), not sub-resources such as
 * ?tagging or ?acl, not CopyObject (its bytes come from the store, not the body).
 */
function carriesObjectBody(req: IncomingMessage): boolean {
  if (req.method !== 'PUT' || req.headers['x-amz-copy-source'] !== undefined) return false;
  const url = new URL(req.url ?? '/', 'http://proxy');
  const segments = url.pathname.split('/').filter((s) => s !== '');
  if (segments.length < 2) return false;
  const params = [...url.searchParams.keys()].filter((k) => k !== 'x-id');
  if (params.length === 0) return true;
  return params.length === 2 && params.includes('partNumber') && params.includes('uploadId');
}

/** Flips the lowest bit of the byte at `offset` of the stream, passing every other byte as is. */
class BitFlip extends Transform {
  #seen = 0;
  readonly #offset: number;
  constructor(offset: number) {
    super();
    this.#offset = offset;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const at = this.#offset - this.#seen;
    this.#seen += chunk.length;
    if (at >= 0 && at < chunk.length) chunk[at] = chunk[at]! ^ 0x01;
    done(null, chunk);
  }
}

function errorXml(code: string, message: string, path: string): string {
  const esc = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message><Resource>${esc(path)}</Resource><RequestId>fault-proxy</RequestId></Error>`;
}

function describeMode(mode: FaultMode): string {
  if (typeof mode === 'string') return mode;
  if ('corruptPut' in mode) return `corruptPut ${String(mode.corruptPut)}`;
  return 'slow' in mode ? `slow ${mode.slow} B/s` : `status ${mode.status}`;
}

/**
 * The slow store's one lane: every body chunk, in either direction, waits for its turn
 * at `rate` bytes/s (cut to 16 KiB pieces so one large write cannot jump the queue).
 */
class SlowLane {
  readonly rate: number;
  #freeAtMs = 0;
  constructor(rate: number) {
    if (!(rate > 0)) throw new Error(`s3FaultProxy: slow must be a positive rate in bytes/s, got ${rate}`);
    this.rate = rate;
  }
  /** Books `bytes` on the lane; returns the ms to wait until they have passed. */
  book(bytes: number): number {
    const now = performance.now();
    this.#freeAtMs = Math.max(now, this.#freeAtMs) + (bytes * 1000) / this.rate;
    return this.#freeAtMs - now;
  }
}

class Throttle extends Transform {
  readonly #lane: SlowLane;
  constructor(lane: SlowLane) {
    super();
    this.#lane = lane;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const piece = 16 * 1024;
    const next = (at: number): void => {
      if (at >= chunk.length) return done();
      const part = chunk.subarray(at, Math.min(chunk.length, at + piece));
      setTimeout(() => {
        this.push(part);
        next(at + piece);
      }, this.#lane.book(part.length));
    };
    next(0);
  }
}

/** Starts the proxy on 127.0.0.1 (a free port) in front of `targetEndpoint` (http only). */
export async function startFaultProxy(targetEndpoint: string): Promise<FaultProxy> {
  const target = new URL(targetEndpoint);
  if (target.protocol !== 'http:') throw new Error(`startFaultProxy: targetEndpoint must be http://, got ${targetEndpoint}`);
  const started = performance.now();
  const clockMs = (): number => performance.now() - started;
  const agent = new Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  let mode: FaultMode = 'pass';
  let requests: ProxiedRequest[] = [];
  let samples: BodySample[] = [];
  let total = 0;
  let refused = 0;
  let lane: SlowLane | undefined;
  let laneMode: FaultMode | undefined;

  function record(req: IncomingMessage, how: string): ProxiedRequest {
    const entry: ProxiedRequest = { method: req.method ?? '', path: req.url ?? '', headers: { ...req.headers }, startMs: clockMs(), endMs: undefined, bodyBytes: 0, mode: how, status: undefined, corruptedAt: undefined };
    requests.push(entry);
    // Stats are per window: a request that outlives resetStats() keeps its entry, but its
    // later bytes land in the new window's samples and total.
    req.on('data', (chunk: Buffer) => {
      entry.bodyBytes += chunk.length;
      total += chunk.length;
      samples.push({ tMs: clockMs(), bytes: chunk.length });
    });
    req.once('end', () => (entry.endMs = clockMs()));
    return entry;
  }

  function answerError(req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, fault: { status: number; code: string; message?: string }): void {
    // Drain the body first, as a real store reads (or discards) it before its answer.
    req.resume();
    req.once('end', () => {
      const body = req.method === 'HEAD' ? '' : errorXml(fault.code, fault.message ?? `fault proxy: ${fault.code}`, req.url ?? '/');
      entry.status = fault.status;
      res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': 'fault-proxy' });
      res.end(body);
    });
  }

  function forward(req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, corrupt: boolean, lane?: SlowLane): void {
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent });
    up.on('response', (upRes) => {
      entry.status = upRes.statusCode;
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, endToEnd(upRes.headers));
      (lane ? upRes.pipe(new Throttle(lane)) : upRes).pipe(res);
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => req.socket.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy(); // the client went away mid-exchange
    });
    let body: NodeJS.ReadableStream = req;
    if (corrupt) {
      // Content-Length is unchanged: one byte changes, none are added. Without a length
      // (chunked), the first byte is the one flipped. An aws-chunked body is flipped in its
      // framed form (the harness's s3Client never sends one).
      const length = Number(req.headers['content-length'] ?? '0');
      const offset = Number.isFinite(length) && length > 0 ? Math.floor(length / 2) : 0;
      entry.corruptedAt = offset;
      body = req.pipe(new BitFlip(offset));
    }
    if (lane) body = body.pipe(new Throttle(lane));
    body.pipe(up);
  }

  const server = createServer((req, res) => {
    const now = mode;
    if (now === 'refuse') {
      record(req, 'refuse');
      refused++;
      req.socket.destroy();
      return;
    }
    if (typeof now === 'object' && 'slow' in now) {
      // One lane per slow mode set: a new rate starts with a free lane.
      if (lane?.rate !== now.slow || laneMode !== now) {
        lane = new SlowLane(now.slow);
        laneMode = now;
      }
      forward(req, res, record(req, describeMode(now)), false, lane);
      return;
    }
    if (typeof now === 'object' && 'corruptPut' in now) {
      const corrupt = carriesObjectBody(req) && now.corruptPut.test(new URL(req.url ?? '/', 'http://proxy').pathname);
      forward(req, res, record(req, corrupt ? 'corruptPut' : 'pass'), corrupt);
      return;
    }
    if (typeof now === 'object') {
      const methods = now.methods ?? ['PUT', 'POST'];
      if (methods.includes(req.method ?? '')) {
        answerError(req, res, record(req, describeMode(now)), now);
        return;
      }
      forward(req, res, record(req, 'pass'), false);
      return;
    }
    const corrupt = now === 'corruptPut' && carriesObjectBody(req);
    forward(req, res, record(req, corrupt ? 'corruptPut' : 'pass'), corrupt);
  });
  server.on('connection', (socket: Socket) => {
    if (mode === 'refuse') {
      refused++;
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('startFaultProxy: no port');
  const port = addr.port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    get mode() {
      return mode;
    },
    set mode(next: FaultMode) {
      mode = next;
      // A store that goes down drops the connections it had, kept-alive ones included.
      if (next === 'refuse') {
        refused += sockets.size;
        for (const s of sockets) s.destroy();
      }
    },
    get requests() {
      return requests;
    },
    get samples() {
      return samples;
    },
    get refused() {
      return refused;
    },
    bodyBytes: () => total,
    clockMs,
    rateBytesPerSec(fromMs: number, toMs: number) {
      if (!(toMs > fromMs)) throw new Error(`rateBytesPerSec: toMs (${toMs}) must be after fromMs (${fromMs})`);
      let bytes = 0;
      for (const s of samples) if (s.tMs >= fromMs && s.tMs < toMs) bytes += s.bytes;
      return (bytes * 1000) / (toMs - fromMs);
    },
    resetStats() {
      requests = [];
      samples = [];
      total = 0;
      refused = 0;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      agent.destroy();
      await closed;
    },
  };
}
