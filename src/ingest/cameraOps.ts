/**
 * What a technician does to a docked camera besides looking at it (cameraProbe.ts):
 * a health row for the dock report (`diag --all`), the camera's log, and a signed
 * firmware update. The same functions run in the daemon (over a bay's session,
 * reached through the control socket) and in the CLI when no daemon runs.
 */
import { performance } from 'node:perf_hooks';
import { DockError, isDockError } from '../errors.js';
import type { LogEntry } from '../protocol/messages.js';
import type { Session, SessionStats } from '../protocol/Session.js';
import type { FirmwarePackage } from '../protocol/firmwarePackage.js';
import type { Store } from '../queue/Store.js';
import { summarize, type DeviceSummary } from './cameraProbe.js';

/** Thresholds past which the dock report calls something a problem. */
export const HEALTH_LIMITS = {
  frameErrorRate: 0.005, // more than 0.5% of frames damaged: a bad cable, contact or port
  retryRate: 0.02, // more than 2% of requests resent
  batteryPct: 15, // and not charging: the dock contacts do not charge it
  storageUsedPct: 90,
  clockSkewMs: 2000, // corrected at each dock; a large skew again and again is a clock fault
} as const;

export interface LinkCounters {
  framesIn: number; // answers received intact
  frameErrors: number; // frames the dock's decoder discarded (CRC, framing)
  requests: number;
  retries: number;
  timeouts: number;
  failed: number; // requests that failed after every resend
  errorRate: number; // frameErrors / (framesIn + frameErrors)
}

export interface CameraHealth extends DeviceSummary {
  clockSkewMs: number; // camera minus dock
  temperatureC: number;
  link: LinkCounters;
}

export interface DockRow {
  bay: string; // where the camera is docked: its port path or sim:SERIAL
  transport: string;
  serial: string | null;
  state: string; // the bay's state in the daemon, or "docked" when no daemon runs
  error: { code: string; message: string } | null;
  camera: CameraHealth | null; // null when the camera does not answer (or was refused)
  lastOffloadMs: number | null; // the last clip released from this camera
  clips: { pending: number; quarantined: number; failed: number }; // in the dock's store
  problems: string[]; // what a technician should look at, in words; empty when healthy
}

export function linkCounters(stats: SessionStats): LinkCounters {
  const framesIn = stats.responses;
  return {
    framesIn,
    frameErrors: stats.discarded,
    requests: stats.requests,
    retries: stats.retries,
    timeouts: stats.timeouts,
    failed: stats.failed,
    errorRate: framesIn + stats.discarded > 0 ? stats.discarded / (framesIn + stats.discarded) : 0,
  };
}

/** STATUS (with the clock skew at the midpoint of its round trip) and the session's link counters. */
export async function cameraHealth(session: Session): Promise<CameraHealth> {
  const summary = await summarize(session);
  const t0 = Date.now();
  const st = await session.status();
  const t1 = Date.now();
  return { ...summary, clockSkewMs: st.clockMs - Math.round((t0 + t1) / 2), temperatureC: st.temperatureMilliC / 1000, link: linkCounters(session.stats) };
}

/** What the dock's own records say of a camera: the last release, and clips not yet done. */
export function storeFacts(store: Store | undefined, serial: string | null): { lastOffloadMs: number | null; clips: DockRow['clips'] } {
  if (!store || !serial) return { lastOffloadMs: null, clips: { pending: 0, quarantined: 0, failed: 0 } };
  const rows = store.clips({ serial });
  let last: number | null = null;
  const clips = { pending: 0, quarantined: 0, failed: 0 };
  for (const r of rows) {
    if (r.state === 'released') last = Math.max(last ?? 0, r.updatedMs);
    else if (r.state === 'quarantined') clips.quarantined++;
    else if (r.state === 'failed') clips.failed++;
    else clips.pending++;
  }
  return { lastOffloadMs: last, clips };
}

/** The problems a technician should see for one row, in words, most serious first. */
export function problemsOf(row: Omit<DockRow, 'problems'>): string[] {
  const p: string[] = [];
  if (row.error) p.push(`${row.state}: ${row.error.message} [${row.error.code}]`);
  const c = row.camera;
  if (c) {
    const l = c.link;
    if (l.errorRate > HEALTH_LIMITS.frameErrorRate) p.push(`link: ${(l.errorRate * 100).toFixed(2)}% of frames damaged (${l.frameErrors} of ${l.framesIn + l.frameErrors}); reseat the camera, then try another bay or cable`);
    else if (l.requests > 50 && l.retries / l.requests > HEALTH_LIMITS.retryRate) p.push(`link: ${((l.retries / l.requests) * 100).toFixed(1)}% of requests resent; the camera or its port answers slowly`);
    if (l.failed > 0) p.push(`link: ${l.failed} request(s) failed after every resend`);
    if (!c.charging && c.batteryPct < HEALTH_LIMITS.batteryPct) p.push(`battery ${c.batteryPct}% and not charging: check the bay's charging contacts`);
    if (c.storageTotal > 0 && (c.storageUsed / c.storageTotal) * 100 > HEALTH_LIMITS.storageUsedPct) p.push(`storage ${Math.round((c.storageUsed / c.storageTotal) * 100)}% full`);
    // The daemon sets a camera's clock when it docks; off again afterwards, the clock is faulty.
    if (row.state !== 'docked' && Math.abs(c.clockSkewMs) > HEALTH_LIMITS.clockSkewMs) p.push(`clock ${(c.clockSkewMs / 1000).toFixed(1)} s off (set at each dock; if it recurs the camera's clock is faulty)`);
  }
  if (row.clips.pending > 0 && (row.state === 'done' || row.state === 'failed' || row.state === 'docked')) {
    p.push(`${row.clips.pending} clip(s) not yet offloaded${row.state === 'done' ? ' (their pulls kept failing; they stay on the camera)' : ''}: fix what is above, then \`dockside pull ${row.serial ?? row.bay}\``);
  }
  if (row.clips.quarantined > 0) p.push(`${row.clips.quarantined} clip(s) quarantined: \`dockside queue list --all\`, docs/operations.md`);
  if (row.clips.failed > 0) p.push(`${row.clips.failed} clip(s) refused by the evidence store: \`dockside queue list\``);
  return p;
}

export function dockRow(base: Omit<DockRow, 'problems'>): DockRow {
  return { ...base, problems: problemsOf(base) };
}

/** The last `tail` entries of the camera's log (all of it with tail = Infinity), oldest first. */
export async function cameraLog(session: Session, tail = 100, cap = 100_000): Promise<{ entries: LogEntry[]; truncated: boolean }> {
  const all = await session.getLog(cap);
  const entries = Number.isFinite(tail) ? all.slice(-tail) : all;
  return { entries, truncated: entries.length < all.length };
}

export interface FirmwareResult {
  serial: string;
  from: string;
  to: string;
  bytes: number;
  seconds: number;
}

/**
 * Pushes a package that verifyFirmwarePackage accepted (docs/protocol.md §5.12): BEGIN,
 * CHUNKs stop-and-wait, COMMIT, then HELLO, and the update counts only when that HELLO
 * reports the new version.
 */
export async function pushFirmware(session: Session, pkg: FirmwarePackage, onProgress?: (sent: number, size: number) => void, enrolledKey?: Buffer): Promise<FirmwareResult> {
  const serial = session.serial;
  const from = session.info.firmware;
  const t0 = performance.now();
  const refused = (err: unknown, step: string): never => {
    if (isDockError(err, 'PROTO_REMOTE')) {
      throw new DockError('FIRMWARE_FAILED', `camera ${serial} refused firmware ${pkg.version} at ${step}: ${err.message}. It keeps firmware ${from}`, { serial, step, remote: err.details['remote'] });
    }
    throw err;
  };
  const { maxChunk } = await session.request('FIRMWARE_BEGIN', { version: pkg.version, size: pkg.image.length, sha256: pkg.sha256, signature: pkg.signature }).catch((e: unknown) => refused(e, 'BEGIN'));
  const chunk = Math.max(1, Math.min(maxChunk, session.maxChunk - 8));
  for (let off = 0; off < pkg.image.length; off += chunk) {
    const { received } = await session.request('FIRMWARE_CHUNK', { offset: off, data: pkg.image.subarray(off, off + chunk) }).catch((e: unknown) => refused(e, `CHUNK at ${off}`));
    onProgress?.(received, pkg.image.length);
  }
  try {
    await session.request('FIRMWARE_COMMIT', {}, { timeoutMs: 30_000 });
  } catch (err) {
    // A COMMIT resent during a slow restart is answered NOT_READY: the HELLO decides.
    if (!(isDockError(err, 'PROTO_REMOTE') && err.details['remote'] === 'NOT_READY')) refused(err, 'COMMIT');
  }
  const hello = await session.hello();
  // The device that came back must be the same camera, proving the same key, before
  // anything (a RELEASE above all) is sent to it again.
  if (hello.serial !== serial) throw new DockError('PROTO_AUTH', `after the update the device answers as ${hello.serial}, not ${serial}; nothing more is sent to it. Undock it and report it`, { serial, now: hello.serial });
  if (enrolledKey) await session.authenticate(enrolledKey);
  if (hello.firmware !== pkg.version) {
    throw new DockError('FIRMWARE_FAILED', `camera ${serial} restarted with firmware ${hello.firmware}, not ${pkg.version}: the update did not take. Check \`dockside logs ${serial}\``, { serial, running: hello.firmware });
  }
  return { serial, from, to: hello.firmware, bytes: pkg.image.length, seconds: (performance.now() - t0) / 1000 };
}
