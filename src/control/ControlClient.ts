/**
 * Talking to a running daemon over DATA_DIR/control.sock (see ControlServer).
 * `callDaemon` returns undefined when no daemon listens there, so a command can fall
 * back to opening the data directory itself.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { DockError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { controlSocketPath } from './ControlServer.js';

const NO_DAEMON = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTSOCK']);

export async function callDaemon<T>(dataDir: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<{ result: T } | undefined> {
  const path = controlSocketPath(dataDir);
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DockError('CONFIG_INVALID', `the daemon at ${path} did not answer ${method} within ${timeoutMs} ms; it may be overloaded or hung (check its log)`, { path }));
    }, timeoutMs);
    const done = (fn: () => void): void => {
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code && NO_DAEMON.has(err.code)) done(() => resolve(undefined));
      else done(() => reject(new DockError('CONFIG_INVALID', `cannot talk to the daemon at ${path}: ${err.message}`, { path }, { cause: err })));
    });
    socket.once('connect', () => {
      socket.write(`${JSON.stringify({ id: 1, method, params })}\n`);
      const lines = createInterface({ input: socket });
      lines.on('error', () => undefined); // the socket's own error handler reports it
      lines.once('line', (line) => onLine(line));
    });
    const onLine = (line: string): void => {
      let reply: { ok: boolean; result?: T; error?: { code: string; message: string; details?: Record<string, unknown> } };
      try {
        reply = JSON.parse(line) as typeof reply;
      } catch {
        return done(() => reject(new DockError('INTERNAL', `the daemon answered ${method} with something that is not JSON`)));
      }
      if (reply.ok) return done(() => resolve({ result: reply.result as T }));
      const code = (ERROR_CODES as readonly string[]).includes(reply.error?.code ?? '') ? (reply.error!.code as ErrorCode) : 'INTERNAL';
      done(() => reject(new DockError(code, reply.error?.message ?? `the daemon refused ${method}`, reply.error?.details ?? {})));
    };
  });
}
