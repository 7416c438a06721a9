// The serial watcher against real socat pty pairs (src/sim/PtyLink.ts) and real
// links in a ports directory: a camera that re-docks onto the same path is a new
// docking, even when its new pty is the same /dev/pts/N and no scan saw the path
// away (the bug that kept 'unplug over pty' out of the CI fault matrix), and a port
// still open is never announced twice.
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SerialTransport } from '../src/hal/serial/SerialTransport.js';
import { SerialWatcher, type SerialCandidate } from '../src/hal/serial/serialDiscovery.js';
import type { Transport } from '../src/hal/Transport.js';
import { PtyLink } from '../src/sim/PtyLink.js';

// Generous bounds for a loaded, shared machine: they only bound a wait, never a speed.
const WAIT_MS = 15_000;
const NEVER = 3_600_000; // a rescan period that never comes in a test: only what the test does scans

let root: string;
let ports: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-redock-'));
  ports = join(root, 'ports');
  mkdirSync(ports);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

type WatchEvent = { kind: 'attach'; candidate: SerialCandidate } | { kind: 'detach'; path: string };

interface Watched {
  watcher: SerialWatcher;
  events: WatchEvent[];
  kinds(): WatchEvent['kind'][];
  /** The next attach after event number `from`, and where it is in `events`. */
  attached(from?: number): Promise<{ candidate: SerialCandidate; at: number }>;
  detached(from?: number): Promise<{ path: string; at: number }>;
}

/** A watcher of the ports directory that only scans when told to (or on a directory event), recording what it says. */
async function watchPorts(): Promise<Watched> {
  const watcher = new SerialWatcher({ portsDir: ports, profiles: [], rescanMs: NEVER });
  cleanups.push(() => watcher.close());
  const events: WatchEvent[] = [];
  const waiters: (() => void)[] = [];
  const wake = (): void => {
    for (const f of waiters.splice(0)) f();
  };
  watcher.on('attach', (candidate) => (events.push({ kind: 'attach', candidate }), wake()));
  watcher.on('detach', (path) => (events.push({ kind: 'detach', path }), wake()));
  const next = async <K extends WatchEvent['kind']>(kind: K, from: number): Promise<{ e: Extract<WatchEvent, { kind: K }>; at: number }> => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const at = events.findIndex((x, i) => i >= from && x.kind === kind);
      if (at >= 0) return { e: events[at] as Extract<WatchEvent, { kind: K }>, at };
      if (Date.now() > deadline) throw new Error(`no ${kind} within ${WAIT_MS} ms; events: ${JSON.stringify(events.map((x) => (x.kind === 'attach' ? `attach ${x.candidate.path}` : `detach ${x.path}`)))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        waiters.push(() => (clearTimeout(t), r()));
      });
    }
  };
  await watcher.start();
  return {
    watcher,
    events,
    kinds: () => events.map((e) => e.kind),
    attached: async (from = 0) => {
      const { e, at } = await next('attach', from);
      return { candidate: e.candidate, at };
    },
    detached: async (from = 0) => {
      const { e, at } = await next('detach', from);
      return { path: e.path, at };
    },
  };
}

async function openLink(cameraPath: string, dockPath: string): Promise<PtyLink> {
  const link = await PtyLink.open(cameraPath, dockPath);
  cleanups.push(() => link.close());
  return link;
}

async function opened(t: Transport): Promise<Transport> {
  await t.open();
  cleanups.push(() => t.close());
  return t;
}

/** Bytes go both ways between the dock's transport and the camera's end of the pair. */
async function talks(dock: Transport, cameraPath: string): Promise<void> {
  const camera = await opened(new SerialTransport(cameraPath));
  const arrives = (t: Transport, text: string): Promise<void> =>
    new Promise((resolve, reject) => {
      let got = '';
      const timer = setTimeout(() => reject(new Error(`${JSON.stringify(text)} did not arrive at ${t.path} within ${WAIT_MS} ms`)), WAIT_MS);
      t.on('data', (d) => {
        got += d.toString();
        if (got.includes(text)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  const up = arrives(camera, 'to the camera');
  await dock.write(Buffer.from('to the camera'));
  await up;
  const down = arrives(dock, 'to the dock');
  await camera.write(Buffer.from('to the dock'));
  await down;
  await camera.close();
}

/** Points `path` at `target` in one step (a new link renamed over the old, as udev does). */
function relink(path: string, target: string): void {
  const tmp = `${path}.new`;
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

describe('serial watcher: a camera re-docked onto the same path', () => {
  it('regression: a new node at the same path and the same /dev/pts/N is a new docking, though no scan saw the path away', async () => {
    // The dock's link in the ports directory points straight at the pty, as a by-id
    // link points at /dev/ttyACM0; socat's own links live outside it.
    const first = await openLink(join(root, 'cam1'), join(root, 'dock1'));
    const target = realpathSync(first.dockPath);
    const port = join(ports, 'CAM-1');
    symlinkSync(target, port);
    const seen = await watchPorts();
    const a = await seen.attached();
    expect(a.candidate.device).toBe(target);

    // Unplug and re-dock while nothing scans: the link in the ports directory is never
    // touched, and the kernel hands out the lowest free pty number again.
    await first.close();
    let again = await openLink(join(root, 'cam2'), join(root, 'dock2'));
    for (let i = 0; i < 5 && realpathSync(again.dockPath) !== target; i++) {
      await again.close(); // another process took the number meanwhile: try again
      again = await openLink(join(root, 'cam2'), join(root, 'dock2'));
    }
    const sameNumber = realpathSync(again.dockPath) === target;
    if (!sameNumber) relink(port, realpathSync(again.dockPath)); // still a new node at the same path
    expect(statSync(port).rdev === statSync(again.dockPath).rdev).toBe(true);

    await seen.watcher.rescan(); // what the periodic rescan does
    const gone = await seen.detached();
    expect(gone.path).toBe(port);
    const b = await seen.attached(gone.at);
    expect(b.candidate.path).toBe(port);
    expect(b.candidate).not.toBe(a.candidate);
    expect(b.candidate.node.ctimeNs !== a.candidate.node.ctimeNs || b.candidate.node.rdev !== a.candidate.node.rdev).toBe(true);
    // The new announcement opens the new camera.
    await talks(await opened(b.candidate.createTransport()), again.cameraPath);
    expect(seen.kinds()).toEqual(['attach', 'detach', 'attach']);
  }, 60_000);

  it('a camera pulled out while its port is open is detached when the port reports it, and served again when it re-docks', async () => {
    const port = join(ports, 'CAM-2');
    const link = await openLink(join(root, 'cam'), port);
    const seen = await watchPorts();
    const a = await seen.attached();
    const t = await opened(a.candidate.createTransport());
    await talks(t, link.cameraPath);
    const lost = new Promise((r) => t.once('disconnected', r));

    await link.close(); // the unplug fault: socat ends, both links go
    await lost;
    const gone = await seen.detached();
    expect(gone.path).toBe(port);
    expect(t.isOpen).toBe(false);

    const back = await openLink(join(root, 'cam'), port); // the re-dock, same path
    const b = await seen.attached(gone.at);
    expect(b.candidate.path).toBe(port);
    expect(b.candidate).not.toBe(a.candidate);
    await talks(await opened(b.candidate.createTransport()), back.cameraPath);
    // One docking, one announcement: the transport's loss and the link going are one detach.
    await seen.watcher.rescan();
    expect(seen.kinds()).toEqual(['attach', 'detach', 'attach']);
  }, 60_000);

  it('a port still open is not announced again: another device at its path waits until the old port closes', async () => {
    const port = join(ports, 'CAM-3');
    const first = await openLink(join(root, 'cam1'), join(root, 'dock1'));
    symlinkSync(realpathSync(first.dockPath), port);
    const seen = await watchPorts();
    const a = await seen.attached();
    const t = await opened(a.candidate.createTransport());

    // Another camera's node at the same path while the first port is still open and well.
    const other = await openLink(join(root, 'cam2'), join(root, 'dock2'));
    relink(port, realpathSync(other.dockPath));
    await seen.watcher.rescan();
    const gone = await seen.detached();
    expect(gone.path).toBe(port);
    // However often it looks, nothing is announced while the old port is open.
    for (let i = 0; i < 3; i++) {
      await seen.watcher.rescan();
      await new Promise((r) => setImmediate(r));
    }
    expect(seen.kinds()).toEqual(['attach', 'detach']);
    await talks(t, first.cameraPath); // and the first camera was left alone

    let closedFirst: boolean | undefined;
    seen.watcher.once('attach', () => (closedFirst = !t.isOpen));
    await t.close(); // what the dock does with a detached bay
    const b = await seen.attached(gone.at);
    expect(closedFirst).toBe(true);
    expect(b.candidate.device).toBe(realpathSync(other.dockPath));
    await talks(await opened(b.candidate.createTransport()), other.cameraPath);
  }, 60_000);

  it('the same node touched while its port is open (udev updating its times) does not drop the camera', async () => {
    const port = join(ports, 'CAM-4');
    const link = await openLink(join(root, 'cam'), port);
    const seen = await watchPorts();
    const a = await seen.attached();
    const t = await opened(a.candidate.createTransport());
    const target = realpathSync(port);
    const before = statSync(target, { bigint: true }).ctimeNs;
    for (let i = 0; i < 100 && statSync(target, { bigint: true }).ctimeNs === before; i++) {
      await new Promise((r) => setTimeout(r, 20)); // the change time has a coarse clock
      utimesSync(target, new Date(), new Date());
    }
    expect(statSync(target, { bigint: true }).ctimeNs).not.toBe(before);
    await seen.watcher.rescan();
    await new Promise((r) => setImmediate(r));
    await seen.watcher.rescan();
    expect(seen.kinds()).toEqual(['attach']);
    await talks(t, link.cameraPath);
  }, 60_000);
});
