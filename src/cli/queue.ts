/**
 * `dockside queue [list|retry|pause|resume]`: the upload queue, for a technician.
 * Through the running daemon's control socket when one owns the data directory
 * (live: uploads in flight, holds, bandwidth); otherwise on the state store directly
 * (what a pause or a retry records is picked up when the daemon next starts).
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { askDaemon } from './daemonClient.js';
import { DockError } from '../errors.js';
import { openDataDir } from '../ingest/dataDir.js';
import { clipView, queueListing, type ClipView, type QueueListing } from '../queue/queueListing.js';
import type { Store } from '../queue/Store.js';
import { clearOperatorPause, operatorPause, retryClips, setOperatorPause, type ClipSelector, type Hold } from '../queue/UploadQueue.js';
import { formatRate } from '../queue/Bandwidth.js';
import { EXIT, formatBytes, printJson, table, DEFAULT_DATA_DIR } from './output.js';

interface QueueOptions {
  dataDir: string;
  json?: boolean;
  all?: boolean;
  reason?: string;
}

export function register(program: Command): void {
  const queue = program
    .command('queue')
    .description('The upload queue: what waits, what is in flight, what the store refused; pause, resume, retry')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var)', DEFAULT_DATA_DIR)
    .option('--json', 'one JSON document on stdout');
  queue
    .command('list', { isDefault: true })
    .description('clips waiting for upload (in the order they go), uploads in flight, failed clips; --all for every clip')
    .option('--all', 'every clip the dock knows, whatever its state')
    .option('--json', 'one JSON document on stdout')
    .action(async (o: QueueOptions, cmd: Command) => {
      const opts = merged(o, cmd);
      const listing = (await askDaemon<QueueListing>(opts.dataDir, 'queue.list', { all: opts.all === true }))?.result ?? (await withStore(opts.dataDir, (store) => queueListing(store, { all: opts.all })));
      if (opts.json) printJson(listing);
      else process.stdout.write(renderListing(listing));
      process.exitCode = EXIT.OK;
    });
  queue
    .command('retry')
    .description('put a failed clip (SERIAL/CLIP or CLIP), or with --all every failed clip, back in the queue; also ends a backoff')
    .argument('[clip]', 'SERIAL/CLIP, or a clip id that only one camera has')
    .option('--all', 'every failed clip')
    .option('--json', 'one JSON document on stdout')
    .action(async (clip: string | undefined, o: QueueOptions, cmd: Command) => {
      const opts = merged(o, cmd);
      if (!clip && !opts.all) throw new DockError('CLI_USAGE', 'say which clip to retry (SERIAL/CLIP or CLIP), or --all');
      if (clip && opts.all) throw new DockError('CLI_USAGE', 'give a clip or --all, not both');
      const which = clip ? resolveClip(opts.dataDir, clip, await listingOf(opts.dataDir)) : {};
      const daemon = await askDaemon<{ retried: ClipView[] }>(opts.dataDir, 'queue.retry', { ...which });
      const retried = daemon?.result.retried ?? (await withStore(opts.dataDir, (store, ledger) => retryClips(store, ledger, which, Date.now()).map(clipView)));
      if (clip && retried.length === 0) throw new DockError('CLI_USAGE', `${clip} is neither failed nor waiting out a backoff; nothing to retry (see \`dockside queue list\`)`);
      if (opts.json) printJson({ retried, daemon: daemon !== undefined });
      else process.stdout.write(`${retried.length} clip(s) back in the upload queue${daemon ? '' : ' (no daemon runs: they go when it starts)'}${retried.map((c) => `\n  ${c.serial}/${c.clipId}`).join('')}\n`);
      process.exitCode = EXIT.OK;
    });
  queue
    .command('pause')
    .description('stop starting uploads (those in flight finish); kept across restarts until `queue resume`')
    .option('--reason <text>', 'why, shown in `queue list` and the log')
    .option('--json', 'one JSON document on stdout')
    .action(async (o: QueueOptions, cmd: Command) => {
      const opts = merged(o, cmd);
      const reason = opts.reason ?? 'paused by an operator';
      const daemon = await askDaemon<{ hold: Hold }>(opts.dataDir, 'queue.pause', { reason });
      const hold = daemon?.result.hold ?? (await withStore(opts.dataDir, (store) => setOperatorPause(store, reason, Date.now())));
      const live = daemon !== undefined;
      if (opts.json) printJson({ hold, daemon: live });
      else process.stdout.write(`uploads paused${live ? '' : ' (no daemon runs: it starts paused)'}: ${hold.reason}. \`dockside queue resume\` starts them again\n`);
      process.exitCode = EXIT.OK;
    });
  queue
    .command('resume')
    .description('start uploads again after a pause; also ends a hold for a full or unreachable store at once')
    .option('--json', 'one JSON document on stdout')
    .action(async (o: QueueOptions, cmd: Command) => {
      const opts = merged(o, cmd);
      const daemon = await askDaemon<{ hold: Hold | null }>(opts.dataDir, 'queue.resume');
      const hold = daemon ? daemon.result.hold : await withStore(opts.dataDir, (store) => (clearOperatorPause(store), operatorPause(store) ?? null));
      if (opts.json) printJson({ hold, daemon: daemon !== undefined });
      else process.stdout.write(`uploads resumed${daemon ? '' : ' (no daemon runs: it will start unpaused)'}\n`);
      process.exitCode = EXIT.OK;
    });
}

/** Options given before or after the subcommand (`queue --json list` and `queue list --json`). */
function merged(o: QueueOptions, cmd: Command): QueueOptions {
  return { ...(cmd.parent?.opts() as QueueOptions), ...stripUnset(o) };
}

function stripUnset(o: QueueOptions): Partial<QueueOptions> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<QueueOptions>;
}

async function withStore<T>(dataDir: string, fn: (store: Store, ledger: ReturnType<typeof openDataDir>['ledger']) => T): Promise<T> {
  // Never make a new data dir here: a mistyped --data-dir must not "pause" a dock that does not exist.
  if (!existsSync(join(dataDir, 'state.db'))) {
    throw new DockError('CLI_USAGE', `${resolve(dataDir)} is not a dock data directory (no state.db) and no daemon answers there; give the daemon's --data-dir`, { dataDir });
  }
  const dir = openDataDir(dataDir, 'dockside queue');
  try {
    return fn(dir.store, dir.ledger);
  } finally {
    await dir.close();
  }
}

async function listingOf(dataDir: string): Promise<QueueListing> {
  return (await askDaemon<QueueListing>(dataDir, 'queue.list', { all: true }))?.result ?? (await withStore(dataDir, (store) => queueListing(store, { all: true })));
}

/** SERIAL/CLIP as given, or a bare clip id that names exactly one clip. */
function resolveClip(dataDir: string, spec: string, listing: QueueListing): ClipSelector {
  const slash = spec.indexOf('/');
  if (slash > 0) return { serial: spec.slice(0, slash), clipId: spec.slice(slash + 1) };
  const matches = listing.clips.filter((c) => c.clipId === spec);
  if (matches.length === 1) return { serial: matches[0]!.serial, clipId: spec };
  if (matches.length === 0) throw new DockError('CLI_USAGE', `no clip ${spec} in ${dataDir}; see \`dockside queue list --all\``);
  throw new DockError('CLI_USAGE', `${matches.length} cameras have a clip ${spec} (${matches.map((c) => c.serial).join(', ')}); say which: SERIAL/${spec}`);
}

function renderListing(l: QueueListing): string {
  const out: string[] = [];
  const h = l.status.hold;
  const state = h ? `HELD (${h.kind}): ${h.reason}${h.untilMs ? `; next try ${new Date(h.untilMs).toISOString()}` : ''}` : 'running';
  const bw = l.bandwidth ? `, bandwidth ${formatRate(l.bandwidth.rate)}${l.bandwidth.nextChange ? ` until ${l.bandwidth.nextChange}` : ''}` : '';
  out.push(`upload queue: ${state}${l.daemon ? `, ${l.status.inFlight.length} of ${l.status.concurrency} slots busy${bw}` : ' (no daemon runs; state from the store)'}`);
  out.push(`${l.status.waiting} waiting, ${l.status.failed} failed`);
  const flying = new Map(l.status.inFlight.map((f) => [`${f.serial}/${f.clipId}`, f]));
  if (l.clips.length > 0) {
    const rows = l.clips.map((c) => {
      const f = flying.get(`${c.serial}/${c.clipId}`);
      const note = f ? `sending ${formatBytes(f.bytes)} of ${formatBytes(f.size)}` : c.state === 'failed' ? (c.reason ?? '') : c.lastError ? `${c.lastError}${c.nextAttemptMs > Date.now() ? ` (next try ${new Date(c.nextAttemptMs).toISOString()})` : ''}` : '';
      return [f ? 'uploading' : c.state, c.priority > 0 ? 'priority' : '', `${c.serial}/${c.clipId}`, formatBytes(c.size), String(c.attempts), note];
    });
    out.push('', table(rows, ['STATE', 'PRIO', 'CLIP', 'SIZE', 'TRIES', 'NOTE']));
  }
  return `${out.join('\n')}\n`;
}
