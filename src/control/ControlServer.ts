/**
 * The daemon's control socket: DATA_DIR/control.sock, a Unix domain socket that only
 * the dock's user can open (mode 0600). Technician commands (`dockside queue`, and
 * more to come) go through it while a daemon owns the data directory, so they never
 * fight the daemon for its state.
 *
 * The protocol is one JSON object a line each way:
 *   → {"id":1,"method":"queue.list","params":{...}}
 *   ← {"id":1,"ok":true,"result":...}   or   {"id":1,"ok":false,"error":{"code":"...","message":"..."}}
 * A malformed line is answered with an error; the connection and the daemon go on.
 */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DockError, toDockError } from '../errors.js';
import type { Logger } from '../log.js';

export const CONTROL_SOCKET = 'control.sock';
const MAX_LINE = 64 * 1024;
const MAX_SOCKET_PATH = 107; // sun_path on Linux, less its terminating NUL

export type Handler = (params: Record<string, unknown>) => unknown;

export function controlSocketPath(dataDir: string): string {
  return join(dataDir, CONTROL_SOCKET);
}

export class ControlServer {
  readonly path: string;
  readonly #server: Server;
  readonly #handlers: Map<string, Handler>;
  readonly #sockets = new Set<Socket>();
  readonly #log: Logger;

  private constructor(path: string, handlers: Record<string, Handler>, log: Logger) {
    this.path = path;
    this.#handlers = new Map(Object.entries(handlers));
    this.#log = log;
    this.#server = createServer((socket) => this.#serve(socket));
  }

  /** Listens on DATA_DIR/control.sock; the caller holds the data dir lock, so a socket file left there is stale. */
  static async listen(dataDir: string, handlers: Record<string, Handler>, log: Logger): Promise<ControlServer> {
    const path = controlSocketPath(dataDir);
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw new DockError('CONFIG_INVALID', `the control socket path ${path} is ${Buffer.byteLength(path)} bytes, longer than the ${MAX_SOCKET_PATH} a Unix socket allows; use a shorter --data-dir`, { path });
    }
    rmSync(path, { force: true });
    const s = new ControlServer(path, handlers, log);
    s.#server.unref(); // it serves while the daemon runs; it does not keep it running
    try {
      await new Promise<void>((resolve, reject) => {
        s.#server.once('error', reject);
        // The umask is process-wide: narrowed only around the bind itself, which happens
        // within this call, so the socket is 0600 from its first instant and nothing
        // else the daemon creates meanwhile is affected.
        const umask = process.umask(0o177);
        try {
          s.#server.listen(path, () => resolve());
        } finally {
          process.umask(umask);
        }
      });
      chmodSync(path, 0o600);
    } catch (err) {
      await s.close().catch(() => undefined);
      throw toDockError(err, 'CONFIG_INVALID', `cannot open the control socket ${path}; check the data directory's permissions`);
    }
    return s;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    if (this.#server.listening) await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
    let sinceNewline = 0;
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.lastIndexOf(0x0a);
      sinceNewline = nl < 0 ? sinceNewline + chunk.length : chunk.length - nl - 1;
      if (sinceNewline > MAX_LINE) socket.destroy(); // no client sends a line this long
    });
    createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
      void this.#answer(line).then((reply) => {
        if (!socket.destroyed) socket.write(`${JSON.stringify(reply)}\n`);
      });
    });
  }

  async #answer(line: string): Promise<unknown> {
    let id: unknown = null;
    try {
      const req = JSON.parse(line) as { id?: unknown; method?: unknown; params?: unknown };
      id = req.id ?? null;
      if (typeof req.method !== 'string') throw new DockError('CLI_USAGE', 'a control request needs a "method"');
      const handler = this.#handlers.get(req.method);
      if (!handler) throw new DockError('CLI_USAGE', `the daemon has no control method ${JSON.stringify(req.method)}; it knows ${[...this.#handlers.keys()].join(', ')}`);
      const params = req.params && typeof req.params === 'object' ? (req.params as Record<string, unknown>) : {};
      return { id, ok: true, result: await handler(params) };
    } catch (err) {
      const e = err instanceof SyntaxError ? new DockError('CLI_USAGE', `a control request is not JSON: ${err.message}`) : toDockError(err, 'INTERNAL', 'the control request failed');
      if (e.code === 'INTERNAL') this.#log.error({ err: e.message }, 'control request failed');
      return { id, ok: false, error: { code: e.code, message: e.message, details: e.details } };
    }
  }
}
