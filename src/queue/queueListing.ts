/**
 * What `dockside queue list` shows, built the same way by a running daemon (with its
 * live status: uploads in flight, holds, bandwidth) and by the CLI on a data
 * directory no daemon owns (from the state store alone).
 */
import type { ClipRow, ClipState, Store } from './Store.js';
import { operatorPause, type QueueStatus } from './UploadQueue.js';

export interface ClipView {
  serial: string;
  clipId: string;
  state: ClipState;
  priority: number;
  size: number;
  startMs: number;
  attempts: number;
  nextAttemptMs: number;
  lastError: string | null;
  reason: string | null;
  receipt: string | null;
}

export interface QueueListing {
  daemon: boolean; // live status from a running daemon, or the state store alone
  status: QueueStatus;
  bandwidth: { rate: number | null; nextChange: string | null } | null;
  clips: ClipView[]; // in upload order: waiting (priority, then oldest), then failed; with `all`, every clip
}

export function clipView(c: ClipRow): ClipView {
  return {
    serial: c.serial,
    clipId: c.clipId,
    state: c.state,
    priority: c.priority,
    size: c.size,
    startMs: c.startMs,
    attempts: c.attempts,
    nextAttemptMs: c.nextAttemptMs,
    lastError: c.lastError,
    reason: c.reason,
    receipt: c.receipt,
  };
}

export function queueListing(store: Store, o: { all?: boolean; status?: QueueStatus; bandwidth?: { rate: number | null; nextChange: Date | null } }): QueueListing {
  const waiting = store.uploadOrder(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const failed = store.clips({ state: 'failed' });
  const listed = new Set([...waiting, ...failed].map((c) => `${c.serial}/${c.clipId}`));
  const rest = o.all ? store.clips().filter((c) => !listed.has(`${c.serial}/${c.clipId}`)) : [];
  const n = store.countByState();
  const status: QueueStatus = o.status ?? { hold: operatorPause(store) ?? null, concurrency: 0, inFlight: [], waiting: n.verified + n.uploading, failed: n.failed };
  return {
    daemon: o.status !== undefined,
    status,
    bandwidth: o.bandwidth ? { rate: o.bandwidth.rate, nextChange: o.bandwidth.nextChange?.toISOString() ?? null } : null,
    clips: [...waiting, ...failed, ...rest].map(clipView),
  };
}
