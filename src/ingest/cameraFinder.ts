/**
 * Finds every reachable camera for a technician command: candidates from discovery
 * (serial ports now; USB through the usb backend), then HELLO on each, all at once,
 * because a technician waits for the slowest. A candidate that does not answer is
 * reported with the reason, not dropped.
 */
import { loadProfiles, type CameraProfile } from '../hal/profiles.js';
import { scanSerial, type SerialCandidate } from '../hal/serial/serialDiscovery.js';
import type { Transport } from '../hal/Transport.js';
import { DockError, toDockError } from '../errors.js';
import type { Session, SessionOptions } from '../protocol/Session.js';
import { withCamera } from './cameraProbe.js';

export interface Candidate {
  kind: Transport['kind'];
  path: string;
  createTransport(): Transport;
}

export interface FindOptions {
  portsDir?: string; // a directory of serial port links; default /dev/serial/by-id
  profiles?: CameraProfile[];
  session?: SessionOptions;
}

export interface Unreachable {
  path: string;
  kind: Transport['kind'];
  error: DockError;
}

export async function findCandidates(options: FindOptions): Promise<{ candidates: Candidate[]; unreachable: Unreachable[] }> {
  const profiles = options.profiles ?? loadProfiles();
  const serial = await scanSerial({ portsDir: options.portsDir, profiles });
  const candidates: Candidate[] = serial.candidates.map((c: SerialCandidate) => ({ kind: 'serial', path: c.path, createTransport: () => c.createTransport() }));
  const unreachable: Unreachable[] = serial.refused.map((r) => ({ path: r.path, kind: 'serial', error: r.error }));
  return { candidates, unreachable };
}

/** Runs `fn` against every candidate concurrently; each result or error is kept. */
export async function forEachCamera<T>(candidates: Candidate[], fn: (s: Session) => Promise<T>, session?: SessionOptions): Promise<{ results: T[]; unreachable: Unreachable[] }> {
  const settled = await Promise.allSettled(candidates.map((c) => withCamera(c.createTransport(), fn, session)));
  const results: T[] = [];
  const unreachable: Unreachable[] = [];
  settled.forEach((s, i) => {
    const c = candidates[i]!;
    if (s.status === 'fulfilled') results.push(s.value);
    else unreachable.push({ path: c.path, kind: c.kind, error: toDockError(s.reason, 'HAL_OPEN', `camera at ${c.path} failed`) });
  });
  return { results, unreachable };
}

/** A camera by serial number (asks every candidate's HELLO) or by path. */
export async function findCamera(target: string, options: FindOptions): Promise<Candidate> {
  const { candidates } = await findCandidates(options);
  const byPath = candidates.find((c) => c.path === target || c.path.endsWith(`/${target}`));
  if (byPath && target.includes('/')) return byPath;
  const { results } = await forEachCamera(candidates, async (s) => ({ serial: s.serial, path: s.transport.path }), options.session);
  const hits = results.filter((r) => r.serial === target);
  if (hits.length > 1) throw new DockError('HAL_AMBIGUOUS', `${hits.length} devices answer as ${target} (${hits.map((h) => h.path).join(', ')}); two cameras claim one serial. Undock one and report it`, { serial: target });
  const hit = hits[0] ?? (byPath ? { path: byPath.path } : undefined);
  if (!hit) {
    const where = options.portsDir ?? '/dev/serial/by-id';
    throw new DockError('HAL_NOT_FOUND', `no docked camera is ${target}: ${results.length} camera(s) answered in ${where}${results.length ? ` (${results.map((r) => r.serial).join(', ')})` : ''}. Check the serial, or dock it`, { target });
  }
  return candidates.find((c) => c.path === hit.path)!;
}
