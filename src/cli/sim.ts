/**
 * `dockside sim`: run simulated cameras in their own process, each reachable as a
 * serial port (a pty) whose link is named after its serial in the ports directory.
 */
import type { Command } from 'commander';
import { createLogger } from '../log.js';
import { DockError } from '../errors.js';
import { parseFaults } from '../sim/faults.js';
import { SimFleet } from '../sim/SimFleet.js';
import { positiveInt, positiveNumber, printJson } from './output.js';

interface SimOptions {
  cameras: number;
  clips: number;
  seed: number;
  faults?: string;
  link: string;
  dir: string;
  portsDir?: string;
  linkRate: number;
  latency: number;
  mode: string;
  clipBytes: number;
}

export function register(program: Command): void {
  program
    .command('sim')
    .description('Run simulated body cameras that speak the dock protocol over pseudo-terminal serial ports, until SIGINT or SIGTERM')
    .option('--cameras <n>', 'number of cameras', positiveInt('--cameras'), 2)
    .option('--clips <k>', 'clips each new camera records', positiveInt('--clips'), 4)
    .option('--seed <s>', 'seed: the same seed gives the same cameras and clips', positiveInt('--seed'), 1)
    .option('--faults <spec>', 'faults to inject, e.g. "ber=1e-5,drop=0.01,stall=0.02,unplug=0.3,corrupt=1,tamper=1,gap=1,rogue,slow=4"')
    .option('--link <kind>', 'how cameras are reached: pty (serial through socat)', 'pty')
    .option('--dir <dir>', 'where the cameras keep their flash (reopened if it exists)', './sim')
    .option('--ports-dir <dir>', 'where the serial port links appear (default DIR/ports)')
    .option('--link-rate <bytesPerS>', 'modelled link rate per direction, bytes/s (0 = unlimited; 11520 ≈ 115200 baud, 40000000 ≈ USB 2)', positiveNumber('--link-rate'), 0)
    .option('--latency <ms>', 'modelled one-way link latency, ms', positiveNumber('--latency'), 0)
    .option('--mode <mode>', 'clip content: mp4 (real H.264+AAC) or synthetic (fast deterministic bytes)', 'mp4')
    .option('--clip-bytes <n>', 'size of each synthetic clip', positiveInt('--clip-bytes'), 8 * 1024 * 1024)
    .action(async (o: SimOptions) => {
      if (o.link !== 'pty') throw new DockError('CLI_USAGE', `--link ${o.link}: a standalone simulator is reached over pty only (loopback works inside \`dockside run --sim\`)`);
      if (o.mode !== 'mp4' && o.mode !== 'synthetic') throw new DockError('CLI_USAGE', `--mode must be mp4 or synthetic, got ${JSON.stringify(o.mode)}`);
      const log = createLogger().child({ part: 'sim' });
      // Handlers first: a stop that arrives while cameras are being created still cleans up.
      let stopRequested: (signal: string) => void = () => undefined;
      const stopped = new Promise<string>((resolve) => (stopRequested = resolve));
      const onSignal = (signal: string) => () => stopRequested(signal);
      process.once('SIGINT', onSignal('SIGINT'));
      process.once('SIGTERM', onSignal('SIGTERM'));
      const fleet = await SimFleet.open({
        dir: o.dir,
        cameras: o.cameras,
        clips: o.clips,
        seed: o.seed,
        faults: parseFaults(o.faults),
        link: 'pty',
        portsDir: o.portsDir,
        linkRateBytesPerS: o.linkRate,
        latencyMs: o.latency,
        record: { mode: o.mode, syntheticBytes: o.clipBytes },
        log,
      });
      fleet.on('error', (err) => log.error({ err }, 'simulator error'));
      for (const cam of await fleet.dockAll()) {
        printJson({ serial: cam.serial, model: cam.model, path: cam.path, publicKey: cam.publicKeySpki });
      }
      log.info({ cameras: o.cameras, dir: fleet.dir, portsDir: fleet.portsDir }, 'simulator running; SIGINT or SIGTERM stops it');
      const signal = await stopped;
      log.info({ signal }, 'stopping simulator');
      await fleet.close();
    });
}
