import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDockError } from '../errors.js';
import { SerialTransport } from '../hal/serial/SerialTransport.js';
import type { Transport } from '../hal/Transport.js';
import { Session } from '../protocol/Session.js';
import { parseFaults } from './faults.js';
import { simSerial } from './SimCamera.js';
import { SimFleet, type DockedCamera, type SimFleetOptions } from './SimFleet.js';

let root: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-simfleet-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

async function openFleet(options: Partial<SimFleetOptions> & { dir: string }): Promise<SimFleet> {
  const fleet = await SimFleet.open({ cameras: 1, clips: 2, seed: 1, record: { mode: 'synthetic', syntheticBytes: 1000 }, ...options });
  cleanups.push(() => fleet.close());
  return fleet;
}

async function connect(transport: Transport): Promise<Session> {
  const s = await Session.connect(transport);
  cleanups.push(() => s.close());
  return s;
}

/** What each camera of a fleet holds: serial, key and every clip's manifest bytes. */
function contents(fleet: SimFleet): { serial: string; key: string; officerId: string; clips: string[] }[] {
  return fleet.cameras.map((c) => ({
    serial: c.serial,
    key: c.publicKeyRaw.toString('hex'),
    officerId: c.flash.identity.officerId,
    clips: c.flash.clips().map((x) => x.manifestBytes.toString()),
  }));
}

const nextDocked = (fleet: SimFleet): Promise<DockedCamera> => new Promise((r) => fleet.once('docked', r));

describe('SimFleet', () => {
  it('makes the same cameras and clips from the same seed, and finds them again when reopened', async () => {
    const a = await openFleet({ dir: join(root, 'a'), cameras: 3, seed: 42 });
    const b = await openFleet({ dir: join(root, 'b'), cameras: 3, seed: 42 });
    const serials = [0, 1, 2].map((i) => simSerial(42, i));
    expect(a.cameras.map((c) => c.serial)).toEqual(serials);
    const inA = contents(a);
    const inB = contents(b);
    // Same serials, identities and clip manifests; each camera has its own fresh key.
    expect(inB.map(({ key: _k, ...rest }) => rest)).toEqual(inA.map(({ key: _k, ...rest }) => rest));
    expect(inA.every((c) => c.clips.length === 2)).toBe(true);
    await a.close();

    const reopened = await openFleet({ dir: join(root, 'a'), cameras: 3, seed: 42, clips: 5 });
    expect(contents(reopened)).toEqual(inA); // same keys too, and no clips recorded again
    expect(readdirSync(join(root, 'a')).filter((f) => f.startsWith('BC4-')).sort()).toEqual([...serials].sort());

    const other = await openFleet({ dir: join(root, 'c'), cameras: 3, seed: 43 });
    expect(other.cameras.map((c) => c.serial)).not.toEqual(serials);
  });

  it('docks each camera over loopback with the key to enroll', async () => {
    const fleet = await openFleet({ dir: root, cameras: 2 });
    const docked = await fleet.dockAll();
    expect(docked.map((d) => d.serial)).toEqual(fleet.cameras.map((c) => c.serial));
    for (const d of docked) {
      expect(d.link).toBe('loopback');
      expect(d.transport?.isOpen).toBe(true);
      const spki = createPublicKey({ key: Buffer.from(d.publicKeySpki, 'base64'), format: 'der', type: 'spki' });
      expect(spki.export({ type: 'spki', format: 'der' }).subarray(12).equals(d.publicKeyRaw)).toBe(true);
      expect(d.publicKeyRaw.equals(fleet.camera(d.serial)!.publicKeyRaw)).toBe(true);
    }
    expect(await fleet.dock(docked[0]!.serial)).toBe(docked[0]); // docking a docked camera is a no-op
    const s = await connect(docked[1]!.transport!);
    expect(s.serial).toBe(docked[1]!.serial);
  });

  it('the unplug fault undocks the camera and docks it again on a new transport, where a pull resumes from its offset', async () => {
    const size = 300_000;
    const fleet = await openFleet({ dir: root, clips: 1, seed: 5, faults: parseFaults('unplug=1'), redockMs: 10, record: { mode: 'synthetic', syntheticBytes: size } });
    const [first] = await fleet.dockAll();
    const serial = first!.serial;
    const events: string[] = [];
    fleet.on('undocked', (s) => events.push(`undocked ${s}`));
    fleet.on('docked', (d) => events.push(`docked ${d.serial}`));
    const redocked = nextDocked(fleet);

    const s1 = await connect(first!.transport!);
    const [clip] = (await s1.listClips()).clips;
    const stored = readFileSync(fleet.camera(serial)!.flash.clip(clip!.id)!.path);
    const received: Buffer[] = [];
    let offset = 0;
    const sink = (o: number, d: Buffer): void => {
      expect(o).toBe(offset);
      received.push(Buffer.from(d));
      offset += d.length;
    };
    const err = await s1.readRange(clip!.id, 0, size, sink, { chunkBytes: 4096 }).catch((e: unknown) => e);
    expect(isDockError(err, 'HAL_DISCONNECTED')).toBe(true);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(size);

    const second = await redocked;
    expect(events).toEqual([`undocked ${serial}`, `docked ${serial}`]);
    expect(second.transport).toBeDefined();
    expect(second.transport).not.toBe(first!.transport);
    expect(first!.transport!.isOpen).toBe(false);

    const s2 = await connect(second.transport!);
    const resumeAt = offset;
    await s2.readRange(clip!.id, resumeAt, size, sink, { chunkBytes: 4096 }).catch((e: unknown) => {
      if (!isDockError(e, 'HAL_DISCONNECTED')) throw e;
    });
    expect(offset).toBeGreaterThan(resumeAt);
    expect(Buffer.concat(received).equals(stored.subarray(0, offset))).toBe(true);
  });

  // Regression: the unplug decision is made per connection, so every resumed pull of
  // the same clip rolls again; with unplug=1 the chunk that reaches the end is always
  // lost to the next unplug and the clip can never be pulled.
  it('with unplug=1 a clip is pulled out once, so a dock that resumes after each re-dock finishes it', async () => {
    const size = 300_000;
    const fleet = await openFleet({ dir: root, clips: 1, seed: 5, faults: parseFaults('unplug=1'), redockMs: 10, record: { mode: 'synthetic', syntheticBytes: size } });
    const [first] = await fleet.dockAll();
    const camera = fleet.cameras[0]!;
    let unplugs = 0;
    camera.on('unplug', () => unplugs++);
    const stored = camera.flash.clips()[0]!;
    const hash = createHash('sha256');
    let offset = 0;
    let transport = first!.transport!;
    for (let round = 0; round < 6 && offset < size; round++) {
      const redocked = nextDocked(fleet);
      const s = await connect(transport);
      await s
        .readRange(stored.manifest.clipId, offset, size, (_o, d) => {
          hash.update(d);
          offset += d.length;
        })
        .catch((e: unknown) => {
          if (!isDockError(e, 'HAL_DISCONNECTED')) throw e;
        });
      await s.close();
      if (offset < size) transport = (await redocked).transport!;
    }
    expect(offset).toBe(size);
    expect(hash.digest('hex')).toBe(stored.manifest.sha256);
    expect(unplugs).toBe(1);
  });

  it('over pty, each camera appears in the ports directory named by its serial, and is removed when undocked or closed', async () => {
    const portsDir = join(root, 'ports');
    const fleet = await openFleet({ dir: join(root, 'fleet'), cameras: 2, link: 'pty', portsDir });
    expect(fleet.portsDir).toBe(portsDir);
    const docked = await fleet.dockAll();
    const serials = docked.map((d) => d.serial);
    expect(readdirSync(portsDir).sort()).toEqual([...serials].sort());
    for (const d of docked) {
      expect(d.link).toBe('pty');
      expect(d.transport).toBeUndefined();
      expect(d.path).toBe(join(portsDir, d.serial));
      expect(lstatSync(d.path).isSymbolicLink()).toBe(true);
      expect(readlinkSync(d.path)).toMatch(/^\/dev\/pts\/\d+$/);
    }
    const s = await connect(new SerialTransport(docked[0]!.path));
    expect(s.serial).toBe(serials[0]);
    await s.close();

    await fleet.undock(serials[0]!);
    expect(readdirSync(portsDir)).toEqual([serials[1]]);
    await fleet.close();
    expect(readdirSync(portsDir)).toEqual([]);
    for (const serial of serials) expect(existsSync(join(root, 'fleet', serial, 'tty'))).toBe(false);
  });
});
