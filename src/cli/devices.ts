/** `dockside devices`: every reachable camera, one line each. */
import type { Command } from 'commander';
import { summarize } from '../ingest/cameraProbe.js';
import { findCandidates, forEachCamera } from '../ingest/cameraFinder.js';
import { EXIT, formatBytes, printJson, table } from './output.js';

export function register(program: Command): void {
  program
    .command('devices')
    .description('List every reachable camera: serial, model, firmware, transport, path, battery and storage')
    .option('--ports-dir <dir>', 'scan only this directory of serial port links (default: /dev/serial/by-id and USB)')
    .option('--json', 'one JSON document on stdout')
    .action(async (o: { portsDir?: string; json?: boolean }) => {
      const found = await findCandidates({ portsDir: o.portsDir });
      const { results, unreachable } = await forEachCamera(found.candidates, summarize);
      const failed = [...found.unreachable, ...unreachable].map((u) => ({ path: u.path, transport: u.kind, error: u.error.toJSON() }));
      results.sort((a, b) => a.serial.localeCompare(b.serial));
      if (o.json) {
        printJson({ devices: results, unreachable: failed, notes: found.notes });
      } else if (results.length === 0 && failed.length === 0) {
        process.stdout.write(`No cameras found in ${o.portsDir ?? '/dev/serial/by-id or on USB'}. Is a camera docked, and may this user open its port (see hardware/udev)?\n`);
      } else {
        const rows = results.map((d) => [
          d.serial,
          d.model,
          d.firmware,
          d.transport,
          d.path,
          `${d.batteryPct}%${d.charging ? ' ⚡' : ''}`,
          `${formatBytes(d.storageUsed)} / ${formatBytes(d.storageTotal)}`,
          `${d.unreleased}/${d.clips}`,
        ]);
        process.stdout.write(`${table(rows, ['SERIAL', 'MODEL', 'FIRMWARE', 'LINK', 'PATH', 'BATTERY', 'STORAGE USED', 'UNRELEASED'])}\n`);
        for (const f of failed) process.stdout.write(`! ${f.path}: ${f.error.message} [${f.error.code}]\n`);
      }
      if (!o.json) for (const n of found.notes) process.stderr.write(`note: ${n}\n`);
      process.exitCode = results.length > 0 ? EXIT.OK : EXIT.NOT_FOUND;
    });
}
