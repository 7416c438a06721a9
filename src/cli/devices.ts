/**
 * `dockside devices`: every camera at this dock, one line each. Asks the running
 * daemon (it holds the ports) when there is one; otherwise opens each port itself.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { askDaemon } from './daemonClient.js';
import { summarize, type DeviceSummary } from '../ingest/cameraProbe.js';
import { findCandidates, forEachCamera } from '../ingest/cameraFinder.js';
import type { BayView } from '../ingest/Daemon.js';
import { DEFAULT_DATA_DIR, EXIT, formatBytes, printJson, table } from './output.js';

interface Row extends DeviceSummary {
  state: string; // the bay's state in the daemon, or "docked"
}

interface Unreachable {
  path: string;
  transport: string;
  serial: string | null;
  state: string;
  error: { code: string; message: string };
}

export function register(program: Command): void {
  program
    .command('devices')
    .description('List every camera at this dock: serial, model, firmware, link, battery, storage, and what the daemon is doing with it')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var): its running daemon is asked first', DEFAULT_DATA_DIR)
    .option('--ports-dir <dir>', 'with no daemon: scan only this directory of serial port links (default: /dev/serial/by-id and USB)')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', '\nExit status: 0 cameras found, 3 none found.')
    .action(async (o: { dataDir: string; portsDir?: string; json?: boolean }) => {
      const daemon = await askDaemon<{ devices: (BayView & { device: DeviceSummary | null })[] }>(resolve(o.dataDir), 'devices');
      let devices: Row[];
      let unreachable: Unreachable[];
      let notes: string[] = [];
      if (daemon) {
        devices = daemon.result.devices.filter((d) => d.device).map((d) => ({ ...d.device!, state: d.state }));
        unreachable = daemon.result.devices
          .filter((d) => !d.device && d.state !== 'gone')
          .map((d) => ({ path: d.bay, transport: d.transport, serial: d.serial, state: d.state, error: d.error ?? { code: 'HAL_OPEN', message: d.state === 'connecting' ? 'connecting' : 'the camera did not answer STATUS' } }));
      } else {
        const found = await findCandidates({ portsDir: o.portsDir });
        const r = await forEachCamera(found.candidates, summarize);
        devices = r.results.map((d) => ({ ...d, state: 'docked' }));
        unreachable = [...found.unreachable, ...r.unreachable].map((u) => ({ path: u.path, transport: u.kind, serial: null, state: 'unreachable', error: { code: u.error.code, message: u.error.message } }));
        notes = found.notes;
      }
      devices.sort((a, b) => a.serial.localeCompare(b.serial));
      if (o.json) {
        printJson({ daemon: daemon !== undefined, devices, unreachable, notes });
      } else if (devices.length === 0 && unreachable.length === 0) {
        process.stdout.write(daemon ? `No camera is docked (the daemon for ${o.dataDir} is running and sees none).\n` : `No cameras found in ${o.portsDir ?? '/dev/serial/by-id or on USB'}. Is a camera docked, and may this user open its port (see hardware/udev)?\n`);
      } else {
        const rows = devices.map((d) => [
          d.serial,
          d.model,
          d.firmware,
          d.transport,
          d.path,
          d.state,
          `${d.batteryPct}%${d.charging ? ' ⚡' : ''}`,
          `${formatBytes(d.storageUsed)} / ${formatBytes(d.storageTotal)}`,
          `${d.unreleased}/${d.clips}`,
        ]);
        process.stdout.write(`${table(rows, ['SERIAL', 'MODEL', 'FIRMWARE', 'LINK', 'PATH', 'STATE', 'BATTERY', 'STORAGE USED', 'UNRELEASED'])}\n`);
        for (const f of unreachable) process.stdout.write(`! ${f.serial ? `${f.serial} at ` : ''}${f.path}: ${f.state}: ${f.error.message} [${f.error.code}]\n`);
      }
      if (!o.json) for (const n of notes) process.stderr.write(`note: ${n}\n`);
      process.exitCode = devices.length > 0 ? EXIT.OK : EXIT.NOT_FOUND;
    });
}
