/**
 * `dockside pull <camera>`: offload one camera now, watching it: a progress bar per
 * clip (bytes, rate, ETA) on a terminal, a line per clip otherwise, a summary at the
 * end. With a daemon running, the daemon does the work (it holds the ports) and this
 * command asks it and watches; without one, this command runs the same ingest for
 * that camera alone, storing where the daemon would (--config, --sink).
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { resolve } from 'node:path';
import { askDaemon } from './daemonClient.js';
import { CONFIG_DEFAULTS, loadConfig, type Config } from '../config.js';
import { DockError } from '../errors.js';
import type { BayActivity } from '../ingest/Bay.js';
import { findCamera } from '../ingest/cameraFinder.js';
import { Daemon, type BayView } from '../ingest/Daemon.js';
import { createLogger } from '../log.js';
import type { ClipRow } from '../queue/Store.js';
import type { Hold } from '../queue/UploadQueue.js';
import { queueListing, type QueueListing } from '../queue/queueListing.js';
import { daemonOptionsFrom } from './run.js';
import { DEFAULT_DATA_DIR, EXIT, formatBytes, printJson } from './output.js';

interface PullOptions {
  dataDir: string;
  config?: string;
  sink?: string;
  portsDir?: string;
  json?: boolean;
}

const SETTLED = new Set(['done', 'refused', 'failed', 'gone']);
const POLL_MS = 200;

/** Draws what a bay reports: one bar per clip, as cli-progress does on a terminal, or plain lines. */
class Watcher {
  readonly #tty: boolean;
  readonly #multi: cliProgress.MultiBar | undefined;
  #bar: cliProgress.SingleBar | undefined;
  #clip: string | undefined;
  #last = { t: 0, bytes: 0, rate: 0 };
  #lastState = '';

  readonly #quiet: boolean;

  constructor(tty: boolean, quiet = false) {
    this.#tty = tty;
    this.#quiet = quiet;
    this.#multi = tty
      ? new cliProgress.MultiBar({ format: ' {clip} |{bar}| {percentage}% {done} of {size}  {rate}  ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, stopOnComplete: true, etaBuffer: 40, fps: 10 }, cliProgress.Presets.shades_classic)
      : undefined;
  }

  show(view: BayView): void {
    const a: BayActivity = view.activity;
    if (view.state !== this.#lastState) {
      this.#lastState = view.state;
      this.#say(`${view.serial ?? view.bay}: ${view.state}${view.state === 'pulling' && a.toPull ? ` (${a.toPull} clip${a.toPull > 1 ? 's' : ''} to pull)` : ''}`);
    }
    const cur = a.current;
    if (!cur) return;
    const now = Date.now();
    if (cur.clipId !== this.#clip) {
      this.#finishBar();
      this.#clip = cur.clipId;
      this.#last = { t: now, bytes: cur.bytes, rate: 0 };
      this.#bar = this.#multi?.create(cur.size, cur.bytes, this.#payload(cur.clipId, cur.bytes, cur.size, 0));
      if (!this.#tty) this.#say(`  pulling ${cur.clipId} (${formatBytes(cur.size)})`);
      return;
    }
    const dt = now - this.#last.t;
    if (dt >= 500) {
      const inst = ((cur.bytes - this.#last.bytes) * 1000) / dt;
      this.#last = { t: now, bytes: cur.bytes, rate: this.#last.rate ? 0.6 * this.#last.rate + 0.4 * inst : inst };
    }
    this.#bar?.update(cur.bytes, this.#payload(cur.clipId, cur.bytes, cur.size, this.#last.rate));
  }

  stop(): void {
    this.#finishBar();
    this.#multi?.stop();
  }

  #payload(clip: string, bytes: number, size: number, rate: number): Record<string, string> {
    return { clip: clip.padEnd(24), done: formatBytes(bytes), size: formatBytes(size), rate: `${formatBytes(Math.max(0, rate))}/s` };
  }

  #finishBar(): void {
    if (this.#bar) {
      const size = this.#bar.getTotal();
      this.#bar.update(size, { done: formatBytes(size) });
      this.#bar.stop();
    }
    this.#bar = undefined;
  }

  #say(line: string): void {
    if (this.#multi) this.#multi.log(`${line}\n`);
    else if (!this.#quiet) process.stdout.write(`${line}\n`);
  }
}

interface PullSummary {
  serial: string;
  state: string;
  hold: Hold | null; // uploads held (the store is down or full): the clips wait, kept, for the daemon
  error: { code: string; message: string } | null;
  pulled: number;
  clips: Record<string, number>; // this camera's clips in the dock's store, by state
  quarantined: { clipId: string; reason: string }[];
  failed: { clipId: string; reason: string }[];
}

function summarize(serial: string, view: BayView | undefined, clips: QueueListing['clips'] | ClipRow[], hold: Hold | null): PullSummary {
  const mine = clips.filter((c) => c.serial === serial);
  const by: Record<string, number> = {};
  for (const c of mine) by[c.state] = (by[c.state] ?? 0) + 1;
  return {
    serial,
    state: view?.state ?? 'gone',
    hold: view?.state === 'finishing' ? hold : null,
    error: view?.error ?? null,
    pulled: view?.activity.pulled ?? 0,
    clips: by,
    quarantined: mine.filter((c) => c.state === 'quarantined').map((c) => ({ clipId: c.clipId, reason: c.reason ?? '' })),
    failed: mine.filter((c) => c.state === 'failed').map((c) => ({ clipId: c.clipId, reason: c.reason ?? '' })),
  };
}

function render(s: PullSummary): string {
  const counts = Object.entries(s.clips).map(([k, n]) => `${n} ${k}`).join(', ') || 'no clips';
  const lines = [`${s.serial}: ${s.state}${s.error ? `: ${s.error.message} [${s.error.code}]` : ''}. ${s.pulled} pulled now; at this dock: ${counts}`];
  if (s.hold) lines.push(`  uploads are HELD (${s.hold.kind}: ${s.hold.reason}); the clips stay spooled and on the camera until the store takes them`);
  for (const q of s.quarantined) lines.push(`  QUARANTINED ${q.clipId}: ${q.reason}`);
  for (const f of s.failed) lines.push(`  FAILED ${f.clipId}: ${f.reason} (\`dockside queue retry ${s.serial}/${f.clipId}\`)`);
  return `${lines.join('\n')}\n`;
}

function exitFor(s: PullSummary): number {
  if (s.hold) return EXIT.ERROR;
  if (s.state !== 'done') return s.state === 'refused' ? EXIT.CHECK_FAILED : EXIT.ERROR;
  if (s.failed.length > 0) return EXIT.ERROR;
  return s.quarantined.length > 0 ? EXIT.CHECK_FAILED : EXIT.OK;
}

export function register(program: Command): void {
  program
    .command('pull')
    .description('Offload one camera now and watch it: every new clip pulled, verified, stored and released, with progress per clip')
    .argument('<camera>', 'serial number or port path')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var): its running daemon does the pull when it runs', DEFAULT_DATA_DIR)
    .option('--config <file>', 'with no daemon: the config file (JSON or YAML) the daemon uses, so clips go to its store')
    .option('--sink <spec>', 'with no daemon: evidence store, dir:PATH or s3://BUCKET/PREFIX (default as the daemon\'s)')
    .option('--ports-dir <dir>', 'with no daemon: scan only this directory of serial port links')
    .option('--json', 'no progress bars; one JSON summary on stdout')
    .addHelpText('after', '\nWith a daemon, Ctrl-C stops watching; the daemon goes on. Without one, Ctrl-C stops the pull; every clip stays at its durable state.\nExit status: 0 every clip stored and released, 4 clips quarantined or the camera refused, 1 a failure or uploads held (clips kept on the camera), 3 no such camera.')
    .action(async (target: string, o: PullOptions, cmd: Command) => {
      const file = o.config ? loadConfig(o.config) : {};
      // The daemon that --config describes is the one asked; a --data-dir typed here wins.
      const dataDir = resolve(cmd.getOptionValueSource('dataDir') === 'cli' ? o.dataDir : (file.dataDir ?? o.dataDir));
      const watcher = new Watcher(!o.json && process.stdout.isTTY === true, o.json === true);
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((r) => (stop = r));
      const onSignal = (): void => stop();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let summary: PullSummary;
      try {
        const asked = await askDaemon<{ bays: BayView[] }>(dataDir, 'pull', { serial: target });
        summary = asked ? await viaDaemon(dataDir, asked.result.bays[0]?.serial ?? target, watcher, stopped) : await alone(dataDir, file, target, o, watcher, stopped);
      } finally {
        watcher.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      if (o.json) printJson(summary);
      else process.stdout.write(render(summary));
      process.exitCode = exitFor(summary);
    });
}

async function viaDaemon(dataDir: string, serial: string, watcher: Watcher, stopped: Promise<void>): Promise<PullSummary> {
  let view: BayView | undefined;
  let hold: Hold | null;
  let interrupted = false;
  void stopped.then(() => (interrupted = true));
  // A failed camera is reopened in a fresh bay, which knows its serial only after HELLO.
  const giveUp = Date.now() + 15_000;
  for (;;) {
    const r = await askDaemon<{ bays: BayView[]; hold: Hold | null }>(dataDir, 'bays');
    if (!r) throw new DockError('HAL_DISCONNECTED', `the daemon for ${dataDir} stopped during the pull; the clips stay where their durable state says (run the pull again when it is back)`);
    view = r.result.bays.filter((b) => b.serial === serial).pop();
    hold = r.result.hold;
    if (view) watcher.show(view);
    // Watching ends when the camera is offloaded, when its uploads are held (the daemon
    // goes on without us), or on Ctrl-C (the daemon goes on too).
    if (interrupted || (view ? SETTLED.has(view.state) || (view.state === 'finishing' && hold !== null) : Date.now() > giveUp)) break;
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
  const listing = (await askDaemon<QueueListing>(dataDir, 'queue.list', { all: true }))?.result;
  return summarize(serial, view, listing?.clips ?? [], hold);
}

/**
 * No daemon: the daemon's ingest for this one camera (holding the data dir as `dockside
 * pull`), until the camera is offloaded, its uploads are held, or Ctrl-C; whatever is not
 * done then stays at its durable state for the daemon.
 */
async function alone(dataDir: string, file: Config, target: string, o: PullOptions, watcher: Watcher, stopped: Promise<void>): Promise<PullSummary> {
  const candidate = await findCamera(target, { portsDir: o.portsDir ?? file.portsDir });
  const log = createLogger({ level: o.json ? undefined : 'warn' }).child({ part: 'pull' });
  const daemon = await Daemon.open({ ...daemonOptionsFrom(file, { sink: o.sink, portsDir: o.portsDir }), dataDir, bays: CONFIG_DEFAULTS.bays, candidates: [candidate], owner: 'dockside pull', log });
  const view = (): BayView | undefined => {
    const bay = daemon.bays[0];
    return bay ? { bay: bay.candidate.path, transport: bay.candidate.kind, serial: bay.serial ?? null, state: bay.state, error: bay.error ? { code: bay.error.code, message: bay.error.message } : null, activity: bay.activity } : undefined;
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    await daemon.start();
    await new Promise<void>((resolveWait) => {
      void stopped.then(() => resolveWait());
      timer = setInterval(() => {
        const v = view();
        if (v) watcher.show(v);
        if (v && (SETTLED.has(v.state) || (v.state === 'finishing' && daemon.queue.status().hold))) resolveWait();
      }, POLL_MS);
    });
    clearInterval(timer);
    const v = view();
    if (v) watcher.show(v);
    return summarize(v?.serial ?? target, v, queueListing(daemon.store, { all: true }).clips, daemon.queue.status().hold);
  } finally {
    clearInterval(timer);
    await daemon.close();
  }
}
