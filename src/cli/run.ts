/**
 * `dockside run`: the docking-station daemon. With --sim N it docks N simulated
 * cameras (flash under DATA_DIR/sim, enrolled when created); with --until-idle it
 * exits once every docked camera is offloaded and nothing is in flight.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { createLogger } from '../log.js';
import { DockError } from '../errors.js';
import { Daemon, type Summary } from '../ingest/Daemon.js';
import type { Bay } from '../ingest/Bay.js';
import { parseFaults } from '../sim/faults.js';
import { EXIT, formatBytes, positiveInt, printJson } from './output.js';
import { CONFIG_DEFAULTS, loadConfig } from '../config.js';

interface RunOptions {
  config?: string;
  dataDir: string;
  sink?: string;
  bays: number;
  sim?: number;
  simClips: number;
  simSeed: number;
  simFaults?: string;
  simLink: string;
  simMode: string;
  simClipBytes: number;
  portsDir?: string;
  untilIdle?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('run')
    .description('Run the docking-station daemon: pull, verify, store and release every clip of every docked camera')
    .option('--config <file>', 'a JSON config file (see README, Configuration); flags given here override it')
    .option('--data-dir <dir>', 'state, ledger, spool, quarantine and (by default) the vault', CONFIG_DEFAULTS.dataDir)
    .option('--sink <spec>', 'evidence store: dir:PATH (default dir:DATA_DIR/vault)')
    .option('--bays <n>', 'cameras served at once', positiveInt('--bays'), CONFIG_DEFAULTS.bays)
    .option('--sim <n>', 'dock N simulated cameras (flash in DATA_DIR/sim)', positiveInt('--sim'))
    .option('--sim-clips <k>', 'clips each new simulated camera records', positiveInt('--sim-clips'), 4)
    .option('--sim-seed <s>', 'seed of the simulated fleet', positiveInt('--sim-seed'), 1)
    .option('--sim-faults <spec>', 'faults the simulated cameras inject (see `dockside sim --help`)')
    .option('--sim-link <kind>', 'how simulated cameras are reached: loopback (in-process) or pty (the real serial stack)', 'loopback')
    .option('--sim-mode <mode>', 'simulated clip content: mp4 or synthetic', 'mp4')
    .option('--sim-clip-bytes <n>', 'size of each synthetic clip', positiveInt('--sim-clip-bytes'), 8 * 1024 * 1024)
    .option('--ports-dir <dir>', 'look for serial cameras only in this directory of port links')
    .option('--until-idle', 'exit when every docked camera is offloaded and the queue is drained')
    .option('--json', 'structured output only; the last stdout line is the summary')
    .action(async (o: RunOptions, cmd: Command) => {
      const file = o.config ? loadConfig(o.config) : {};
      // A flag the user typed wins; a flag left at its default gives way to the file.
      const given = (key: keyof RunOptions): boolean => cmd.getOptionValueSource(key) === 'cli';
      const dataDir = given('dataDir') ? o.dataDir : (file.dataDir ?? o.dataDir);
      const bays = given('bays') ? o.bays : (file.bays ?? o.bays);
      if (o.simLink !== 'loopback' && o.simLink !== 'pty') throw new DockError('CLI_USAGE', `--sim-link must be loopback or pty, got ${JSON.stringify(o.simLink)}`);
      if (o.simMode !== 'mp4' && o.simMode !== 'synthetic') throw new DockError('CLI_USAGE', `--sim-mode must be mp4 or synthetic, got ${JSON.stringify(o.simMode)}`);
      const bars = !o.json && process.stdout.isTTY === true;
      const log = createLogger({ level: bars ? 'warn' : undefined }).child({ part: 'daemon' });
      const daemon = await Daemon.open({
        dataDir,
        sink: o.sink ?? file.sink,
        bays,
        portsDir: o.portsDir ?? file.portsDir,
        usb: file.usb,
        spool: file.spool,
        session: file.session,
        clockSkewMs: file.clockSkewMs,
        hashThreads: file.hashThreads || undefined,
        log,
        sim: o.sim
          ? {
              cameras: o.sim,
              clips: o.simClips,
              seed: o.simSeed,
              faults: parseFaults(o.simFaults),
              link: o.simLink,
              record: { mode: o.simMode, syntheticBytes: o.simClipBytes },
            }
          : undefined,
      });
      const stopProgress = bars ? showProgress(daemon) : () => undefined;
      let stop: (why: string) => void = () => undefined;
      const stopped = new Promise<string>((r) => (stop = r));
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      try {
        await daemon.start();
        log.info({ dataDir: daemon.dataDir, sink: daemon.sink.name }, 'daemon running');
        const outcome = await Promise.race([stopped.then((signal) => ({ signal })), ...(o.untilIdle ? [daemon.whenIdle().then((summary) => ({ summary }))] : [])]);
        stopProgress();
        const summary = 'summary' in outcome ? outcome.summary : daemon.summary();
        if (o.json) printJson(summary);
        else process.stdout.write(render(summary, 'signal' in outcome ? `stopped by ${outcome.signal}` : 'idle'));
      } finally {
        stopProgress();
        await daemon.close();
      }
      process.exitCode = EXIT.OK;
    });
}

function render(s: Summary, how: string): string {
  return `dockside: ${how}. ${s.cameras} cameras, ${s.clips} clips: ${s.stored} stored (${formatBytes(s.bytes)}), ${s.released} released, ${s.quarantined} quarantined, in ${s.seconds} s\n`;
}

/** Per-bay progress bars on a terminal: bytes of the clip being pulled, rate, ETA. */
function showProgress(daemon: Daemon): () => void {
  const multi = new cliProgress.MultiBar(
    { format: ' {bay} |{bar}| {percentage}% {clip} {rate} ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, stopOnComplete: false, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<Bay, cliProgress.SingleBar>();
  const watched = new WeakSet<Bay>();
  const timer = setInterval(() => {
    for (const bay of daemon.bays) {
      if (watched.has(bay)) continue;
      watched.add(bay);
      const bar = multi.create(1, 0, { bay: (bay.serial ?? bay.candidate.path).padEnd(14), clip: bay.state, rate: '' });
      bars.set(bay, bar);
      let last = { t: Date.now(), bytes: 0 };
      bay.on('progress', (p) => {
        const now = Date.now();
        const rate = now > last.t ? ((p.bytes - last.bytes) * 1000) / (now - last.t) : 0;
        if (now - last.t > 500 || p.bytes < last.bytes) last = { t: now, bytes: p.bytes };
        bar.setTotal(p.size);
        bar.update(p.bytes, { bay: (bay.serial ?? '').padEnd(14), clip: p.clipId, rate: `${formatBytes(Math.max(0, rate))}/s` });
      });
      bay.on('state', (state) => bar.update({ clip: state, bay: (bay.serial ?? '').padEnd(14) }));
    }
  }, 200);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    multi.stop();
  };
}
