/**
 * Workarounds for three bugs in @serialport/bindings-cpp 13.0.0 on Linux.
 *
 * Two in the poller, found when a simulated camera and the dock pushed 64 KiB frames
 * both ways through a pty and the link deadlocked within a second:
 *
 * 1. src/poller.cpp `Poller::poll(events)` records the union of wanted events but
 *    calls `uv_poll_start(handle, events)` with only the newly asked ones. So when the
 *    read loop re-arms 'readable' while a write that hit EAGAIN waits for
 *    'writable', the write's interest is dropped and it never resumes. Fix: always
 *    ask for every event somebody is waiting on.
 * 2. The poller calls back into JavaScript without MakeCallback, so the promise
 *    continuations its listeners schedule can wait for an unrelated wake-up of the
 *    event loop (upstream PR serialport/bindings-cpp#239). Fix: re-emit the events
 *    from setImmediate, which libuv runs in a proper callback scope.
 *
 *
 * One in unix-read.js: a read that returns 0 bytes is retried at once, forever. On a
 * tty opened non-blocking, "no data" is EAGAIN; 0 bytes is end of file, the other
 * side hung up (a pty whose master closed: the simulated camera was pulled out). The
 * port then spins a core and never reports the disconnect. Fix: a zero-byte read
 * is a disconnect error, which the stream turns into a 'close' with `disconnected`.
 *
 * Applied once per process before any port opens; returns false if the modules are
 * not laid out as we know them, and the tests that exercise each bug then fail
 * loudly (test/protocol.serial.test.ts, test/cli.test.ts) rather than pass unpatched.
 */
import { read } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const PATCHED = Symbol.for('dockside.serialport.pollerWorkaround');

const UV_READABLE = 0b0001;
const UV_WRITABLE = 0b0010;
const UV_DISCONNECT = 0b0100;

interface PollerProto {
  emit: (event: string | symbol, ...args: unknown[]) => boolean;
  poll: (flags?: number) => unknown;
  listenerCount: (event: string) => number;
  [PATCHED]?: true;
}

type ReadArgs = { fsReadAsync?: (fd: number, buffer: Buffer, offset: number, length: number, position: null) => Promise<{ bytesRead: number; buffer: Buffer }> } & Record<string, unknown>;

interface UnixReadModule {
  unixRead: ((args: ReadArgs) => Promise<unknown>) & { [PATCHED]?: true };
}

function bindingsModule<T>(file: string): T | undefined {
  try {
    return require(join(dirname(require.resolve('@serialport/bindings-cpp')), file)) as T;
  } catch {
    return undefined;
  }
}

export function applyBindingsWorkarounds(): boolean {
  return patchPoller() && patchZeroByteRead();
}

function patchZeroByteRead(): boolean {
  const mod = bindingsModule<UnixReadModule>('unix-read.js');
  if (!mod || typeof mod.unixRead !== 'function') return false;
  if (mod.unixRead[PATCHED]) return true;
  const original = mod.unixRead;
  const readOnce = (fd: number, buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number; buffer: Buffer }> =>
    new Promise((resolve, reject) =>
      read(fd, buffer, offset, length, null, (err, bytesRead) => {
        if (err) return reject(err);
        if (bytesRead === 0) {
          return reject(Object.assign(new Error('end of file on the serial port: the device hung up'), { code: 'EIO', disconnect: true }));
        }
        resolve({ bytesRead, buffer });
      }),
    );
  const patched = (args: ReadArgs): Promise<unknown> => original({ ...args, fsReadAsync: args.fsReadAsync ?? readOnce });
  mod.unixRead = Object.assign(patched, { [PATCHED]: true as const });
  return true;
}

function patchPoller(): boolean {
  const proto = bindingsModule<{ Poller?: { prototype: PollerProto } }>('poller.js')?.Poller?.prototype;
  if (!proto || typeof proto.emit !== 'function' || typeof proto.poll !== 'function') return false;
  if (proto[PATCHED]) return true;
  const { emit, poll } = proto;
  proto.poll = function (this: PollerProto, flags = 0): unknown {
    let wanted = flags;
    if (this.listenerCount('readable') > 0) wanted |= UV_READABLE;
    if (this.listenerCount('writable') > 0) wanted |= UV_WRITABLE;
    if (this.listenerCount('disconnect') > 0) wanted |= UV_DISCONNECT;
    return poll.call(this, wanted);
  };
  proto.emit = function (this: PollerProto, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'readable' || event === 'writable' || event === 'disconnect') {
      setImmediate(() => emit.call(this, event, ...args));
      return true;
    }
    return emit.call(this, event, ...args);
  };
  proto[PATCHED] = true;
  return true;
}
