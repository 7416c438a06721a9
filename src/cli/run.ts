/**
 * `dockside run`: the docking-station daemon. With --sim N it docks N simulated
 * cameras (flash under DATA_DIR/sim, enrolled when created); with --until-idle it
 * exits once every docked camera is offloaded and nothing is in flight.
 *
 * SIGHUP re-reads the --config file and applies what can change while running: the
 * upload bandwidth timetable and concurrency (a flag given on the command line still
 * wins). Anything else needs a restart.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { createLogger } from '../log.js';
import { DockError } from '../errors.js';
import { Daemon, type DaemonOptions, type S3Options, type Summary } from '../ingest/Daemon.js';
import type { Bay } from '../ingest/Bay.js';
import { parseFaults } from '../sim/faults.js';
import { EXIT, formatBytes, positiveInt, printJson } from './output.js';
import { CONFIG_DEFAULTS, loadConfig, type Config } from '../config.js';
import { parseBwTimetable } from '../queue/Bandwidth.js';
import { METRICS_DEFAULT, parseMetricsAddress } from '../observability/Metrics.js';

interface RunOptions {
  config?: string;
  dataDir: string;
  sink?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  s3Verify?: string;
  s3ObjectLock?: string;
  bwlimit?: string;
  uploadConcurrency?: number;
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
  metrics?: string;
  dropDir?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('run')
    .description('Run the docking-station daemon: pull, verify, store and release every clip of every docked camera')
    .option('--config <file>', 'a config file, JSON or YAML (every key: docs/operations.md; `dockside config check FILE` checks one); flags given here override it')
    .option('--data-dir <dir>', 'state, ledger, spool, quarantine and (by default) the vault', CONFIG_DEFAULTS.dataDir)
    .option('--sink <spec>', 'evidence store: dir:PATH (default dir:DATA_DIR/vault) or s3://BUCKET/PREFIX')
    .option('--s3-endpoint <url>', 'an S3-compatible store (MinIO, Ceph...) instead of AWS, e.g. http://127.0.0.1:9000')
    .option('--s3-region <region>', 'S3 region (default: AWS_REGION, else us-east-1)')
    .option('--s3-path-style', 'path-style S3 addressing (automatic for an IP address or localhost endpoint)')
    .option('--no-s3-path-style', 'virtual-host S3 addressing even for an IP or localhost endpoint')
    .option('--s3-verify <how>', 'what makes an S3 object count as stored: read-back (default, any store) or store-checksum (the store\'s own SHA-256)')
    .option('--s3-object-lock <mode:days>', 'Object Lock retention on every object: compliance:DAYS or governance:DAYS (the bucket must have Object Lock)')
    .option('--bwlimit <timetable>', 'upload bandwidth limit, rclone style: 10M, off, or "08:00,2M 18:00,20M 23:00,off"')
    .option('--upload-concurrency <n>', 'uploads at once', positiveInt('--upload-concurrency'))
    .option('--bays <n>', 'cameras served at once', positiveInt('--bays'), CONFIG_DEFAULTS.bays)
    .option('--sim <n>', 'dock N simulated cameras (flash in DATA_DIR/sim)', positiveInt('--sim'))
    .option('--sim-clips <k>', 'clips each new simulated camera records', positiveInt('--sim-clips'), 4)
    .option('--sim-seed <s>', 'seed of the simulated fleet', positiveInt('--sim-seed'), 1)
    .option('--sim-faults <spec>', 'faults the simulated cameras inject (see `dockside sim --help`)')
    .option('--sim-link <kind>', 'how simulated cameras are reached: loopback (in-process) or pty (the real serial stack)', 'loopback')
    .option('--sim-mode <mode>', 'simulated clip content: mp4 or synthetic', 'mp4')
    .option('--sim-clip-bytes <n>', 'size of each synthetic clip', positiveInt('--sim-clip-bytes'), 8 * 1024 * 1024)
    .option('--ports-dir <dir>', 'look for serial cameras only in this directory of port links')
    .option('--drop-dir <dir>', 'import clips dropped here with their signed manifests (a technician\'s copy, or a camera mounted as mass storage; see docs/operations.md)')
    .option('--metrics <addr>', `Prometheus /metrics and /healthz: HOST:PORT, or off (default: DOCKSIDE_METRICS, else the config's metrics, else ${METRICS_DEFAULT}; no authentication, so keep it on loopback)`)
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
      if (o.bwlimit !== undefined) parseBwTimetable(o.bwlimit); // a bad timetable is refused before anything starts
      const metrics = parseMetricsAddress(o.metrics ?? process.env['DOCKSIDE_METRICS'] ?? file.metrics ?? METRICS_DEFAULT);
      // SIGHUP's default is to end the process: handled from the start, for the life of the process.
      const ready: { daemon?: Daemon } = {};
      process.on('SIGHUP', () => {
        const running = ready.daemon;
        if (!running) return void log.warn('SIGHUP before the daemon is up: ignored');
        if (!o.config) return void log.warn('SIGHUP: no --config file to reload');
        try {
          // A flag given on the command line still wins over the file.
          running.reconfigure(uploadOptions(o, loadConfig(o.config)));
        } catch (err) {
          log.error({ err: (err as Error).message }, 'SIGHUP: the config file was not reloaded; the running settings stay');
        }
      });
      const daemon = await Daemon.open({
        ...daemonOptionsFrom(file, o),
        dataDir,
        bays,
        metrics,
        dropDir: o.dropDir ?? file.dropDir,
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
      ready.daemon = daemon;
      try {
        await daemon.start();
        log.info({ dataDir: daemon.dataDir, sink: daemon.sink.name }, 'daemon running');
        const outcome = await Promise.race([stopped.then((signal) => ({ signal })), ...(o.untilIdle ? [daemon.whenIdle().then((summary) => ({ summary }))] : [])]);
        stopProgress();
        const summary = 'summary' in outcome ? outcome.summary : daemon.summary();
        if (o.json) printJson(summary);
        else process.stdout.write(render(summary, 'signal' in outcome ? `stopped by ${outcome.signal}` : 'idle'));
        // Clips the store refused are kept, but the run did not do its job: say so.
        process.exitCode = summary.failed > 0 ? EXIT.ERROR : EXIT.OK;
      } finally {
        stopProgress();
        await daemon.close();
      }
    });
}

type StoreFlags = Pick<RunOptions, 'sink' | 's3Endpoint' | 's3Region' | 's3PathStyle' | 's3Verify' | 's3ObjectLock' | 'bwlimit' | 'uploadConcurrency' | 'portsDir'>;

/**
 * What the config file (and the store flags given) make of a daemon, less its data
 * dir, bays and log: shared by `run` and by `pull` when no daemon runs, so a manual
 * offload stores where the daemon would.
 */
export function daemonOptionsFrom(file: Config, o: StoreFlags = {}): Omit<DaemonOptions, 'dataDir' | 'log' | 'bays'> {
  return {
    sink: o.sink ?? file.sink,
    s3: s3Options(o, file),
    upload: uploadOptions(o, file),
    portsDir: o.portsDir ?? file.portsDir,
    usb: file.usb,
    spool: file.spool,
    session: file.session,
    clockSkewMs: file.clockSkewMs,
    hashThreads: file.hashThreads || undefined,
  };
}

function s3Options(o: StoreFlags, file: Config): S3Options {
  const f = file.s3 ?? {};
  const lock = o.s3ObjectLock ?? f.objectLock;
  const verify = o.s3Verify ?? f.verify ?? CONFIG_DEFAULTS.s3.verify;
  if (verify !== 'read-back' && verify !== 'store-checksum') throw new DockError('CLI_USAGE', `--s3-verify must be read-back or store-checksum, got ${JSON.stringify(verify)}`);
  let objectLock: S3Options['objectLock'];
  if (lock !== undefined) {
    const m = /^(compliance|governance):([1-9]\d{0,4})$/i.exec(lock);
    if (!m) throw new DockError('CLI_USAGE', `--s3-object-lock must be compliance:DAYS or governance:DAYS (DAYS from 1 to 99999), got ${JSON.stringify(lock)}`);
    objectLock = { mode: m[1]!.toUpperCase() as 'COMPLIANCE' | 'GOVERNANCE', days: Number(m[2]) };
  }
  return {
    endpoint: o.s3Endpoint ?? f.endpoint,
    region: o.s3Region ?? f.region,
    pathStyle: o.s3PathStyle ?? f.pathStyle,
    credentials: f.accessKeyId && f.secretAccessKey ? { accessKeyId: f.accessKeyId, secretAccessKey: f.secretAccessKey, sessionToken: f.sessionToken } : undefined,
    verify,
    objectLock,
    multipartAboveBytes: f.multipartAboveBytes,
    partSizeBytes: f.partSizeBytes,
  };
}

function uploadOptions(o: Pick<RunOptions, 'bwlimit' | 'uploadConcurrency'>, file: Config): NonNullable<DaemonOptions['upload']> {
  const f = file.upload ?? {};
  return {
    bandwidth: o.bwlimit ?? f.bandwidth ?? CONFIG_DEFAULTS.upload.bandwidth,
    concurrency: o.uploadConcurrency ?? f.concurrency,
    retryBaseMs: f.retryBaseMs,
    retryMaxMs: f.retryMaxMs,
    fullProbeMs: f.fullProbeMs,
  };
}

function render(s: Summary, how: string): string {
  const failed = s.failed > 0 ? `, ${s.failed} FAILED (kept; see \`dockside queue\`)` : '';
  const held = s.queue.hold ? `; uploads held: ${s.queue.hold.kind} (${s.queue.hold.reason})` : '';
  return `dockside: ${how}. ${s.cameras} cameras, ${s.clips} clips: ${s.stored} stored (${formatBytes(s.bytes)}), ${s.released} released, ${s.quarantined} quarantined${failed}, in ${s.seconds} s${held}\n`;
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
