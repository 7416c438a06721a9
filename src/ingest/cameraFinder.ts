/**
 * Finds every reachable camera for a technician command: candidates from discovery
 * (serial ports and USB, hal/discovery.ts), then HELLO on each, all at once,
 * because a technician waits for the slowest. A candidate that does not answer is
 * reported with the reason, not dropped.
 */
import { scanOnce, type Candidate, type DiscoveryOptions } from '../hal/discovery.js';
import type { Transport } from '../hal/Transport.js';
import { DockError, toDockError } from '../errors.js';
import type { Session, SessionOptions } from '../protocol/Session.js';
import { withCamera } from './cameraProbe.js';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { SerialTransport } from '../hal/serial/SerialTransport.js';

function isCharDevice(path: string): boolean {
  try {
    return statSync(path).isCharacterDevice();
  } catch {
    return false;
  }
}

export type { Candidate } from '../hal/discovery.js';

export interface FindOptions extends DiscoveryOptions {
  session?: SessionOptions;
}

export interface Unreachable {
  path: string;
  kind: Transport['kind'];
  error: DockError;
}

export async function findCandidates(options: FindOptions): Promise<{ candidates: Candidate[]; unreachable: Unreachable[]; notes: string[] }> {
  const { candidates, refused, notes } = await scanOnce(options);
  return { candidates, unreachable: refused.map((r) => ({ path: r.path, kind: r.kind, error: r.error })), notes };
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
  if (target.includes('/') && isCharDevice(target)) {
    // A port path names the camera's place directly: no scan needed.
    return { kind: 'serial', path: target, profileId: undefined, createTransport: () => new SerialTransport(target) };
  }
  const { candidates } = await findCandidates(options);
  const byPath = candidates.find((c) => resolve(c.path) === resolve(target) || c.path.endsWith(`/${target}`));
  if (byPath && target.includes('/')) return byPath;
  const { results } = await forEachCamera(candidates, async (s) => ({ serial: s.serial, path: s.transport.path }), options.session);
  const hits = results.filter((r) => r.serial === target);
  if (hits.length > 1) throw new DockError('HAL_AMBIGUOUS', `${hits.length} devices answer as ${target} (${hits.map((h) => h.path).join(', ')}); two cameras claim one serial. Undock one and report it`, { serial: target });
  const hit = hits[0] ?? (byPath ? { path: byPath.path } : undefined);
  if (!hit) {
    const where = options.portsDir ?? '/dev/serial/by-id and USB';
    throw new DockError('HAL_NOT_FOUND', `no docked camera is ${target}: ${results.length} camera(s) answered in ${where}${results.length ? ` (${results.map((r) => r.serial).join(', ')})` : ''}. Check the serial, or dock it`, { target });
  }
  return candidates.find((c) => c.path === hit.path)!;
}
