/**
 * Workarounds for two bugs in @serialport/bindings-cpp 13.0.0's Linux poller, found
 * when a simulated camera and the dock pushed 64 KiB frames both ways through a pty
 * and the link deadlocked within a second:
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
 * Applied once per process before any port opens; a no-op (returns false) if the
 * module is not laid out as we know it, in which case test/serial-pty.test.ts fails
 * loudly under load rather than us silently running unpatched.
 */
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

export function applyPollerWorkaround(): boolean {
  let proto: PollerProto | undefined;
  try {
    const main = require.resolve('@serialport/bindings-cpp');
    proto = (require(join(dirname(main), 'poller.js')) as { Poller?: { prototype: PollerProto } }).Poller?.prototype;
  } catch {
    return false;
  }
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
