/** `dockside diag <serial|path>`: a full check-up of one camera, link test included. */
import type { Command } from 'commander';
import { diagnose, withCamera, type Diagnosis } from '../ingest/cameraProbe.js';
import { findCamera } from '../ingest/cameraFinder.js';
import { EXIT, formatBytes, formatRate, positiveNumber, printJson } from './output.js';

const SKEW_WARN_MS = 2000;

function render(d: Diagnosis): string {
  const ok = (b: boolean): string => (b ? 'ok  ' : 'FAIL');
  const lines = [
    `Camera      ${d.serial}  ${d.vendor} ${d.model} (${d.hardware}), firmware ${d.firmware}`,
    `Link        ${d.transport} ${d.path}  protocol v${d.protocolVersion}, max payload ${formatBytes(d.maxPayload)}, window ${d.window}`,
    `Key         ed25519 sha256:${d.publicKeyFingerprint.slice(0, 32)}…  challenge ${d.authenticated ? 'signed correctly' : 'FAILED'}`,
    `Battery     ${d.batteryPct}%${d.charging ? ', charging' : ''}`,
    `Storage     ${formatBytes(d.storageUsed)} used of ${formatBytes(d.storageTotal)} (${formatBytes(d.storageFree)} free); ${d.unreleased} of ${d.clips} clips not yet released`,
    `Clock       camera ${new Date(d.clockMs).toISOString()}, skew ${(d.clockSkewMs / 1000).toFixed(3)} s${Math.abs(d.clockSkewMs) > SKEW_WARN_MS ? '  (will be corrected at ingest)' : ''}`,
    `Temperature ${d.temperatureC.toFixed(1)} °C, up ${d.uptimeS} s`,
    `Self-test   ${d.selftest.passed ? 'passed' : 'FAILED'}`,
    ...d.selftest.checks.map((c) => `  ${ok(c.ok)} ${c.name.padEnd(10)} ${c.detail}`),
    `Link test   ${formatRate(d.link.goodputBytesPerS)} goodput each way (${formatBytes(d.link.bytes)} echoed in ${d.link.seconds.toFixed(2)} s)`,
    `            ${d.link.frameErrors} frame errors (${(d.link.errorRate * 100).toFixed(2)}%), ${d.link.retries} retries, ${d.link.timeouts} timeouts, ${d.link.lost} echoes lost`,
  ];
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('diag')
    .description('Check one camera: identity, key, battery, storage, clock skew, temperature, self-test and a link test')
    .argument('<camera>', 'serial number (as in `dockside devices`) or port path')
    .option('--ports-dir <dir>', 'scan only this directory of serial port links (default: /dev/serial/by-id and USB)')
    .option('--link-seconds <s>', 'longest the link test runs', positiveNumber('--link-seconds'), 2)
    .option('--link-bytes <n>', 'most bytes the link test echoes', positiveNumber('--link-bytes'), 8 * 1024 * 1024)
    .option('--json', 'one JSON document on stdout')
    .action(async (target: string, o: { portsDir?: string; json?: boolean; linkSeconds: number; linkBytes: number }) => {
      const candidate = await findCamera(target, { portsDir: o.portsDir });
      const d = await withCamera(candidate.createTransport(), (s) => diagnose(s, { linkSeconds: o.linkSeconds, linkBytes: o.linkBytes }));
      if (o.json) printJson(d);
      else process.stdout.write(render(d));
      process.exitCode = d.selftest.passed ? EXIT.OK : EXIT.CHECK_FAILED;
    });
}
