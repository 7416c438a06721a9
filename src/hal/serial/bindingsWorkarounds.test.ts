import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyBindingsWorkarounds } from './bindingsWorkarounds.js';

const require = createRequire(import.meta.url);

describe('serialport bindings workarounds', () => {
  it('find the module layout they patch (a bindings upgrade that moves it must be looked at)', () => {
    expect(applyBindingsWorkarounds()).toBe(true);
    const dir = dirname(require.resolve('@serialport/bindings-cpp'));
    const poller = (require(join(dir, 'poller.js')) as { Poller: { prototype: Record<symbol, unknown> } }).Poller.prototype;
    expect(poller[Symbol.for('dockside.serialport.pollerWorkaround')]).toBe(true);
  });

  it('asks the native poller for every event someone waits on, not only the newest', () => {
    const dir = dirname(require.resolve('@serialport/bindings-cpp'));
    const { Poller } = require(join(dir, 'poller.js')) as { Poller: new (fd: number, native: unknown) => { once(e: string, cb: () => void): void } };
    const asked: number[] = [];
    class FakeNative {
      poll(flags: number): void {
        asked.push(flags);
      }
      stop(): void {}
      destroy(): void {}
    }
    applyBindingsWorkarounds();
    const p = new Poller(99, FakeNative);
    p.once('writable', () => undefined); // a write waiting after EAGAIN
    p.once('readable', () => undefined); // the read loop re-arming
    expect(asked).toEqual([0b0010, 0b0011]);
  });
});
