/**
 * What a technician asks of a docked camera: who it is and how it is (devices), and
 * a full check-up (diag). Shared by the CLI now and the daemon's control API later.
 */
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { Session, type SessionOptions } from '../protocol/Session.js';
import type { Transport } from '../hal/Transport.js';
import { DockError, isDockError, toDockError } from '../errors.js';

export interface DeviceSummary {
  serial: string;
  vendor: string;
  model: string;
  firmware: string;
  hardware: string;
  transport: Transport['kind'];
  path: string;
  batteryPct: number;
  charging: boolean;
  storageTotal: number;
  storageUsed: number;
  storageFree: number;
  clips: number;
  unreleased: number;
}

export interface LinkTestResult {
  bytes: number; // echoed, each way
  seconds: number;
  goodputBytesPerS: number; // payload bytes per second, each way
  requests: number;
  lost: number; // echoes that never came back, even after resends
  retries: number;
  frameErrors: number; // frames discarded by the dock's decoder
  timeouts: number;
  errorRate: number; // frame errors per frame received
}

export interface Diagnosis extends DeviceSummary {
  protocolVersion: number;
  maxPayload: number;
  window: number;
  publicKeyFingerprint: string; // SHA-256 of the raw Ed25519 key, hex
  authenticated: boolean;
  clockMs: number;
  dockClockMs: number;
  clockSkewMs: number; // camera minus dock, at the midpoint of the STATUS round trip
  temperatureC: number;
  uptimeS: number;
  selftest: { passed: boolean; checks: { name: string; ok: boolean; detail: string }[] };
  link: LinkTestResult;
}

export async function summarize(session: Session): Promise<DeviceSummary> {
  const h = session.info;
  const st = await session.status();
  return {
    serial: h.serial,
    vendor: h.vendor,
    model: h.model,
    firmware: h.firmware,
    hardware: h.hardware,
    transport: session.transport.kind,
    path: session.transport.path,
    batteryPct: st.batteryPct,
    charging: st.charging,
    storageTotal: st.storageTotal,
    storageUsed: st.storageUsed,
    storageFree: Math.max(0, st.storageTotal - st.storageUsed),
    clips: st.clipCount,
    unreleased: st.unreleasedCount,
  };
}

/** Opens a transport, says HELLO, and hands the session to `fn`; always closes. */
export async function withCamera<T>(transport: Transport, fn: (s: Session) => Promise<T>, options: SessionOptions = {}): Promise<T> {
  let session: Session;
  try {
    session = await Session.connect(transport, { timeoutMs: 500, retries: 3, ...options });
  } catch (err) {
    await transport.close().catch(() => undefined);
    throw toDockError(err, 'HAL_OPEN', `no camera answered at ${transport.path}`, { path: transport.path });
  }
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

/**
 * LINK_TEST: echoes payloads with the full window in flight until `maxBytes` have
 * gone each way or `maxSeconds` passed. Starts at the largest payload the link
 * negotiated and halves it after a discarded frame or a failed echo (down to 1 KiB),
 * as a pull would: a noisy link is measured, not failed. Echoes that never come back
 * are counted, not thrown.
 */
export async function linkTest(session: Session, options: { maxBytes?: number; maxSeconds?: number } = {}): Promise<LinkTestResult> {
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  const maxMs = (options.maxSeconds ?? 2) * 1000;
  const largest = Math.max(1, session.maxChunk - 8); // LINK_TEST answer: u32 length + data, with room to spare
  const pattern = Buffer.alloc(largest);
  for (let i = 0; i < largest; i++) pattern[i] = (i * 131 + 7) & 0xff;
  let chunk = largest;
  const shrink = (): void => void (chunk = Math.max(Math.min(1024, largest), chunk >> 1));
  session.on('discarded', shrink);
  const before = { ...session.stats };
  const start = performance.now();
  let sent = 0;
  let echoed = 0;
  let requests = 0;
  let lost = 0;
  const inflight = new Set<Promise<void>>();
  const one = async (size: number): Promise<void> => {
    requests++;
    const data = pattern.subarray(0, size);
    try {
      const res = await session.request('LINK_TEST', { data }, { retries: 2 });
      if (!res.data.equals(data)) throw new DockError('PROTO_UNEXPECTED', `camera ${session.serial} echoed different bytes in LINK_TEST; the link corrupts data past the CRC`, { serial: session.serial });
      echoed += res.data.length;
    } catch (err) {
      if (!isDockError(err, 'PROTO_TIMEOUT')) throw err;
      lost++;
      shrink();
    }
  };
  try {
    while (sent < maxBytes && performance.now() - start < maxMs) {
      while (inflight.size < session.window && sent < maxBytes) {
        sent += chunk;
        const p: Promise<void> = one(chunk).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.race(inflight);
    }
    await Promise.all(inflight);
  } finally {
    session.off('discarded', shrink);
  }
  const seconds = (performance.now() - start) / 1000;
  const frames = session.stats.responses - before.responses;
  const frameErrors = session.stats.discarded - before.discarded;
  return {
    bytes: echoed,
    seconds,
    goodputBytesPerS: echoed / seconds,
    requests,
    lost,
    retries: session.stats.retries - before.retries,
    frameErrors,
    timeouts: session.stats.timeouts - before.timeouts,
    errorRate: frames + frameErrors > 0 ? frameErrors / (frames + frameErrors) : 0,
  };
}

export async function diagnose(session: Session, options: { linkBytes?: number; linkSeconds?: number } = {}): Promise<Diagnosis> {
  const summary = await summarize(session);
  const key = await session.authenticate();
  const t0 = Date.now();
  const st = await session.status();
  const t1 = Date.now();
  const dockClockMs = Math.round((t0 + t1) / 2);
  const selftest = await session.request('SELFTEST', {});
  const link = await linkTest(session, { maxBytes: options.linkBytes, maxSeconds: options.linkSeconds });
  return {
    ...summary,
    protocolVersion: session.info.version,
    maxPayload: session.maxChunk + 12,
    window: session.window,
    publicKeyFingerprint: createHash('sha256').update(key).digest('hex'),
    authenticated: true,
    clockMs: st.clockMs,
    dockClockMs,
    clockSkewMs: st.clockMs - dockClockMs,
    temperatureC: st.temperatureMilliC / 1000,
    uptimeS: st.uptimeS,
    selftest,
    link,
  };
}
