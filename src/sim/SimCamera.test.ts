import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockError } from '../errors.js';
import { LoopbackTransport } from '../hal/LoopbackTransport.js';
import { authMessage, rawEd25519PublicKey } from '../protocol/auth.js';
import type { Response } from '../protocol/messages.js';
import { Session } from '../protocol/Session.js';
import { NO_FAULTS, parseFaults } from './faults.js';
import { Flash, type NewCameraIdentity } from './Flash.js';
import { recordClips } from './recorder.js';
import { SimCamera, simSerial, type SimCameraOptions } from './SimCamera.js';

const IDENTITY: NewCameraIdentity = {
  serial: 'BC4-CAM00001',
  model: 'Sentinel BC4',
  vendor: 'Sentinel',
  hardware: 'rev C',
  firmware: '4.2.1',
  officerId: 'OFC-2001',
  seed: 4,
  createdMs: Date.UTC(2026, 0, 1),
  clockOffsetMs: -90_000,
  clockSetAtMs: Date.UTC(2026, 0, 1),
  driftPpm: 12,
  batteryPct: 10,
};

const FAKE_STATUS: Response<'STATUS'> = {
  batteryPct: 7,
  charging: false,
  storageTotal: 1000,
  storageUsed: 1,
  clipCount: 99,
  unreleasedCount: 99,
  temperatureMilliC: -1,
  clockMs: 1,
  uptimeS: 1,
};

let root: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-simcamera-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

interface Docked {
  camera: SimCamera;
  flash: Flash;
  dockEnd: LoopbackTransport;
}

async function simCamera(options: SimCameraOptions & { clips?: number; clipBytes?: number } = {}): Promise<Docked> {
  const flash = Flash.create(join(root, 'camera'), IDENTITY);
  await recordClips(flash, { count: options.clips ?? 2, mode: 'synthetic', syntheticBytes: options.clipBytes ?? 20_000, video: {}, faults: NO_FAULTS });
  const camera = new SimCamera(flash, options);
  cleanups.push(() => camera.close());
  return { camera, flash, dockEnd: dock(camera) };
}

/** Docks `camera` on a fresh loopback pair; returns the dock's end. */
function dock(camera: SimCamera): LoopbackTransport {
  const [dockEnd, cameraEnd] = LoopbackTransport.pair('sim-camera-test');
  camera.attach(cameraEnd);
  return dockEnd;
}

function session(transport: LoopbackTransport, options: ConstructorParameters<typeof Session>[1] = {}): Session {
  const s = new Session(transport, options);
  cleanups.push(() => s.close());
  return s;
}

async function connect(transport: LoopbackTransport): Promise<Session> {
  const s = await Session.connect(transport);
  cleanups.push(() => s.close());
  return s;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('SimCamera', () => {
  it('answers every request before HELLO with ERROR NOT_READY, and serves it after', async () => {
    const { dockEnd, flash } = await simCamera();
    const s = session(dockEnd);
    const clipId = flash.clips()[0]!.manifest.clipId;
    const early = [
      s.request('STATUS', {}),
      s.request('AUTH', { nonce: randomBytes(32) }),
      s.request('LIST_CLIPS', { cursor: 0, limit: 10 }),
      s.request('GET_MANIFEST', { clipId }),
      s.request('READ', { clipId, offset: 0, length: 100 }),
      s.request('RELEASE', { clipId, sha256: Buffer.from(flash.clips()[0]!.manifest.sha256, 'hex'), receipt: 'x' }),
      s.request('SET_TIME', { utcMs: 0 }),
      s.request('GET_LOG', { cursor: 0, limit: 10 }),
      s.request('SELFTEST', {}),
      s.request('LINK_TEST', { data: Buffer.from('ping') }),
      s.request('FIRMWARE_BEGIN', { version: '9.9.9', size: 10, sha256: Buffer.alloc(32), signature: Buffer.alloc(64) }),
      s.request('FIRMWARE_CHUNK', { offset: 0, data: Buffer.from('x') }),
      s.request('FIRMWARE_COMMIT', {}),
    ];
    for (const r of early) await expect(r).rejects.toMatchObject({ code: 'PROTO_REMOTE', details: { remote: 'NOT_READY' } });
    expect(flash.clips()).toHaveLength(2); // the early RELEASE freed nothing
    await s.hello();
    expect((await s.status()).unreleasedCount).toBe(2);
  });

  it('docks and undocks with events; the dock sees the link go when the camera detaches', async () => {
    const { camera, dockEnd } = await simCamera();
    const events: string[] = [];
    camera.on('undocked', () => events.push('undocked'));
    camera.on('docked', () => events.push('docked'));
    expect(camera.docked).toBe(true);
    const gone = new Promise((r) => dockEnd.once('disconnected', r));
    camera.detach();
    await gone;
    expect(camera.docked).toBe(false);
    const again = dock(camera);
    const s = await connect(again);
    expect(s.serial).toBe('BC4-CAM00001');
    expect(events).toEqual(['undocked', 'docked']);
  });

  it('override() replaces a behaviour, and override(name, undefined) restores the default', async () => {
    const { camera, dockEnd } = await simCamera();
    const s = await connect(dockEnd);
    camera.override('STATUS', () => FAKE_STATUS);
    expect(await s.status()).toEqual(FAKE_STATUS);
    camera.override('STATUS', undefined);
    const real = await s.status();
    expect(real.unreleasedCount).toBe(2);
    expect(real.batteryPct).not.toBe(7);
  });

  it('an override set while undocked applies when the camera docks', async () => {
    const flash = Flash.create(join(root, 'camera'), IDENTITY);
    const camera = new SimCamera(flash);
    cleanups.push(() => camera.close());
    camera.override('STATUS', () => FAKE_STATUS);
    const s = await connect(dock(camera));
    expect(await s.status()).toEqual(FAKE_STATUS);
  });

  // Regression: override(name, undefined) stores `name: undefined`, and attach() spreads
  // that over the defaults, so after a re-dock the camera no longer knows the message.
  it('a behaviour restored with override(name, undefined) stays restored after a re-dock', async () => {
    const { camera, dockEnd } = await simCamera();
    const s = await connect(dockEnd);
    camera.override('STATUS', () => FAKE_STATUS);
    camera.override('STATUS', undefined);
    expect((await s.status()).unreleasedCount).toBe(2);
    await s.close();
    const s2 = await connect(dock(camera));
    expect((await s2.status()).unreleasedCount).toBe(2);
  });

  it('expectDockMessage() resolves with the first matching request', async () => {
    const { camera, dockEnd } = await simCamera();
    const s = await connect(dockEnd);
    const seen = camera.expectDockMessage(5_000, (r) => r.name === 'SET_TIME');
    await s.status();
    const utcMs = Date.UTC(2030, 1, 2, 3, 4, 5);
    await s.request('SET_TIME', { utcMs });
    const r = await seen;
    expect(r.name).toBe('SET_TIME');
    expect(r.request).toEqual({ utcMs });
    expect(camera.listenerCount('request')).toBe(0);
  });

  it('expectDockMessage() rejects with a DockError when nothing matching arrives in time', async () => {
    const { camera, dockEnd } = await simCamera();
    const s = await connect(dockEnd);
    const missed = camera.expectDockMessage(50, (r) => r.name === 'SELFTEST');
    await s.status();
    const err = await missed.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockError);
    expect(err).toMatchObject({ code: 'PROTO_TIMEOUT', message: expect.stringContaining('BC4-CAM00001') });
    expect(camera.listenerCount('request')).toBe(0);
  });

  it('charges the battery while docked, keeps the level when undocked, and stops at 100', async () => {
    const { camera, flash, dockEnd } = await simCamera({ chargePctPerMin: 6_000 }); // 1 % per 10 ms
    const s = await connect(dockEnd);
    const first = await s.status();
    expect(first.batteryPct).toBeGreaterThanOrEqual(IDENTITY.batteryPct);
    expect(first.charging).toBe(true);
    await sleep(100);
    const second = await s.status();
    expect(second.batteryPct).toBeGreaterThan(first.batteryPct);
    camera.detach();
    expect(flash.identity.batteryPct).toBeGreaterThanOrEqual(second.batteryPct);
    expect(flash.identity.batteryPct).toBeLessThanOrEqual(100);

    const full = new SimCamera(flash, { chargePctPerMin: 1e9 });
    cleanups.push(async () => full.detach());
    const s2 = await connect(dock(full));
    await sleep(5);
    expect(await s2.status()).toMatchObject({ batteryPct: 100, charging: false });
  });

  it('SET_TIME sets the camera clock; drift accrues from then; the setting survives a restart', async () => {
    const { camera, dockEnd } = await simCamera();
    const s = await connect(dockEnd);
    const before = camera.clockMs();
    const target = Date.UTC(2031, 5, 1, 12, 0, 0);
    const { previousMs } = await s.request('SET_TIME', { utcMs: target });
    expect(Math.abs(previousMs - before)).toBeLessThan(5_000);
    expect(Math.abs(camera.clockMs() - target)).toBeLessThan(5_000);
    expect(Math.abs((await s.status()).clockMs - target)).toBeLessThan(5_000);
    const id = camera.flash.identity;
    expect(camera.clockMs(id.clockSetAtMs + 1e9)).toBe(id.clockSetAtMs + 1e9 + id.clockOffsetMs + 12_000); // 12 ppm of 1e9 ms
    await s.close();
    await camera.close();
    const restarted = new SimCamera(Flash.open(join(root, 'camera')));
    cleanups.push(() => restarted.close());
    expect(Math.abs(restarted.clockMs() - target)).toBeLessThan(5_000);
  });

  it('unplug=1 fires "unplug" part-way through a clip transfer, once, and logs it', async () => {
    const size = 200_000;
    const { camera, flash, dockEnd } = await simCamera({ faults: parseFaults('unplug=1'), clips: 1, clipBytes: size });
    const s = await connect(dockEnd);
    const id = flash.clips()[0]!.manifest.clipId;
    const reasons: string[] = [];
    camera.on('unplug', (reason) => reasons.push(reason));
    const unplugged = new Promise<string>((r) => camera.once('unplug', r));
    let got = 0;
    await s.readRange(id, 0, size, (_o, d) => void (got += d.length), { chunkBytes: 4096 });
    expect(got).toBe(size); // nobody pulled it out: the camera only asks its host to
    expect(await unplugged).toContain(id);
    await sleep(10);
    expect(reasons).toHaveLength(1);
    const log = await flash.readLog(0, 1000);
    const fault = log.find((e) => e.message.startsWith(`FAULT unplug during ${id} at offset `));
    expect(fault?.level).toBe(30);
    const at = Number(/at offset (\d+)/.exec(fault!.message)![1]);
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(size);
    expect(log.some((e) => e.message === `transfer ${id} from offset 0 of ${size}`)).toBe(true);
  });

  it('stall=1 leaves every request unanswered: it arrives, and the camera writes nothing', async () => {
    const { camera, dockEnd } = await simCamera({ faults: parseFaults('stall=1') });
    const s = session(dockEnd, { timeoutMs: 30, retries: 2 });
    let arrived = 0;
    camera.on('request', () => arrived++);
    await expect(s.hello()).rejects.toMatchObject({ code: 'PROTO_TIMEOUT' });
    expect(arrived).toBe(3);
    expect(s.stats.responses).toBe(0);
    expect(camera.linkStats?.bytesOut).toBe(0);
  });

  // Regression: override() installs the handler on the live connection without the
  // stall wrapper, so restoring (or replacing) a behaviour makes it immune to stall.
  it('stall=1 still stalls a behaviour restored with override(name, undefined) while docked', async () => {
    const { camera, dockEnd } = await simCamera({ faults: parseFaults('stall=1') });
    camera.override('HELLO', undefined);
    const s = session(dockEnd, { timeoutMs: 30, retries: 1 });
    await expect(s.hello()).rejects.toMatchObject({ code: 'PROTO_TIMEOUT' });
  });

  it('signs AUTH with its device key; a rogue camera signs with another key', async () => {
    const honest = await simCamera();
    const nonce = randomBytes(32);
    const res = await (await connect(honest.dockEnd)).request('AUTH', { nonce });
    expect(Buffer.from(res.publicKey).equals(honest.camera.publicKeyRaw)).toBe(true);
    await honest.camera.close();

    const flash = Flash.create(join(root, 'rogue'), { ...IDENTITY, serial: 'BC4-ROGUE001' });
    const rogue = new SimCamera(flash, { faults: parseFaults('rogue') });
    cleanups.push(() => rogue.close());
    const answer = await (await connect(dock(rogue))).request('AUTH', { nonce });
    const key = Buffer.from(answer.publicKey);
    expect(key.equals(rogue.publicKeyRaw)).toBe(false);
    const message = authMessage('BC4-ROGUE001', nonce);
    const keyObject = (raw: Buffer) => createPublicKey({ key: rawEd25519PublicKey(raw), format: 'der', type: 'spki' });
    expect(verify(null, message, keyObject(key), Buffer.from(answer.signature))).toBe(true);
    expect(verify(null, message, keyObject(rogue.publicKeyRaw), Buffer.from(answer.signature))).toBe(false);
  });

  it('keeps a clip when RELEASE carries the wrong sha256', async () => {
    const { flash, dockEnd } = await simCamera();
    const s = await connect(dockEnd);
    const c = flash.clips()[0]!;
    const id = c.manifest.clipId;
    await expect(s.request('RELEASE', { clipId: id, sha256: Buffer.alloc(32, 0xab), receipt: 'vault:wrong' })).rejects.toMatchObject({
      code: 'PROTO_REMOTE',
      details: { remote: 'HASH_MISMATCH' },
    });
    expect(flash.clip(id)).toBeDefined();
    expect(existsSync(c.path)).toBe(true);
    expect(flash.releaseMark(id)).toBeUndefined();
    expect(existsSync(join(flash.dir, 'released', `${id}.json`))).toBe(false);
    expect((await flash.readLog(0, 1000)).some((e) => e.level === 30 && e.message.startsWith(`RELEASE refused for ${id}`))).toBe(true);
    await expect(s.request('RELEASE', { clipId: 'no-such-clip', sha256: Buffer.alloc(32), receipt: 'x' })).rejects.toMatchObject({ details: { remote: 'NO_SUCH_CLIP' } });
  });
});

describe('simSerial', () => {
  it('is a BC4 serial, the same for the same seed and index, different otherwise', () => {
    expect(simSerial(1, 0)).toMatch(/^BC4-[0-9A-F]{8}$/);
    expect(simSerial(1, 0)).toBe(simSerial(1, 0));
    expect(new Set([simSerial(1, 0), simSerial(1, 1), simSerial(2, 0), simSerial(2, 1)]).size).toBe(4);
  });
});
