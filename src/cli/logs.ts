/** `dockside logs <serial>`: the camera's own log (GET_LOG), through the daemon when one runs. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { askDaemon } from './daemonClient.js';
import { DockError } from '../errors.js';
import { findCamera } from '../ingest/cameraFinder.js';
import { withCamera } from '../ingest/cameraProbe.js';
import { cameraLog } from '../ingest/cameraOps.js';
import type { LogEntry } from '../protocol/messages.js';
import { DEFAULT_DATA_DIR, EXIT, positiveInt, printJson } from './output.js';

const LEVELS: Record<number, string> = { 10: 'DEBUG', 20: 'INFO', 30: 'WARN', 40: 'ERROR', 50: 'FATAL' };

export function register(program: Command): void {
  program
    .command('logs')
    .description("Show a docked camera's own log (newest last): firmware events, transfers, releases, faults")
    .argument('<camera>', 'serial number or port path')
    .option('-n, --tail <n>', 'the last N entries', positiveInt('--tail'), 100)
    .option('--all', 'every entry the camera keeps')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var): its running daemon is asked first', DEFAULT_DATA_DIR)
    .option('--ports-dir <dir>', 'with no daemon: scan only this directory of serial port links')
    .option('--json', 'one JSON document on stdout')
    .action(async (target: string, o: { tail: number; all?: boolean; dataDir: string; portsDir?: string; json?: boolean }) => {
      if (o.tail < 1) throw new DockError('CLI_USAGE', `--tail must be at least 1, got ${o.tail} (--all for every entry)`);
      const tail = o.all ? Infinity : o.tail;
      const daemon = await askDaemon<{ entries: LogEntry[]; truncated: boolean }>(resolve(o.dataDir), 'logs', { serial: target, tail: o.all ? null : o.tail }, 60_000);
      const log =
        daemon?.result ??
        (await (async () => {
          const c = await findCamera(target, { portsDir: o.portsDir });
          return withCamera(c.createTransport(), (s) => cameraLog(s, tail));
        })());
      if (o.json) printJson({ camera: target, ...log });
      else {
        if (log.truncated) process.stdout.write(`(the last ${log.entries.length} entries; --all for every one)\n`);
        for (const e of log.entries) process.stdout.write(`${new Date(Number(e.timeMs)).toISOString()} ${(LEVELS[e.level] ?? String(e.level)).padEnd(5)} ${e.message}\n`);
      }
      process.exitCode = EXIT.OK;
    });
}
