/**
 * `dockside diag <serial|path>`: a full check-up of one camera, link test included.
 * `dockside diag --all`: the dock health report, a row per bay: camera, battery,
 * storage, clock skew, link errors, last offload, state, and what is wrong in words.
 * Through the running daemon when there is one (it holds the ports, and its link
 * counters cover the whole offload); otherwise each camera is opened here and given a
 * short link test, so that a bad link shows.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { askDaemon } from './daemonClient.js';
import { DockError } from '../errors.js';
import { diagnose, linkTest, withCamera, type Diagnosis } from '../ingest/cameraProbe.js';
import { findCamera, findCandidates } from '../ingest/cameraFinder.js';
import { cameraHealth, dockRow, HEALTH_LIMITS, storeFacts, type DockRow } from '../ingest/cameraOps.js';
import type { DockReport } from '../ingest/Daemon.js';
import { openDataDir } from '../ingest/dataDir.js';
import { DEFAULT_DATA_DIR, EXIT, formatAgo, formatBytes, formatRate, positiveNumber, printJson, table } from './output.js';

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

function renderReport(r: DockReport, daemon: boolean): string {
  const out: string[] = [];
  const q = r.dock.queue;
  const clips = Object.entries(r.dock.clips).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ') || 'none';
  out.push(`Dock     ${r.dock.dataDir}  ${daemon ? 'daemon running' : 'no daemon running (cameras opened directly)'}`);
  if (daemon) out.push(`Store    ${r.dock.sink}  uploads: ${q.waiting} waiting, ${q.inFlight} in flight${q.hold ? `, HELD: ${q.hold.kind} (${q.hold.reason})` : ''}`);
  out.push(`Clips    ${clips}`);
  out.push('');
  const rows = r.bays.map((b) => {
    const c = b.camera;
    const l = c?.link;
    return [
      b.bay,
      b.serial ?? '-',
      b.state,
      c ? `${c.batteryPct}%${c.charging ? ' ⚡' : ''}` : '-',
      c ? `${Math.round((c.storageUsed / Math.max(1, c.storageTotal)) * 100)}% of ${formatBytes(c.storageTotal)}` : '-',
      c ? `${c.clockSkewMs >= 50 ? '+' : c.clockSkewMs <= -50 ? '-' : ''}${Math.abs(c.clockSkewMs / 1000).toFixed(1)} s` : '-',
      l ? `${(l.errorRate * 100).toFixed(2)}% (${l.frameErrors} bad, ${l.retries} resent)` : '-',
      formatAgo(b.lastOffloadMs),
      b.problems.length === 0 ? 'ok' : `${b.problems.length} PROBLEM${b.problems.length > 1 ? 'S' : ''}`,
    ];
  });
  out.push(rows.length ? table(rows, ['BAY', 'CAMERA', 'STATE', 'BATTERY', 'STORAGE', 'CLOCK', 'LINK ERRORS', 'LAST OFFLOAD', 'HEALTH']) : 'No camera is docked.');
  const bad = r.bays.filter((b) => b.problems.length > 0);
  if (bad.length) {
    out.push('');
    for (const b of bad) {
      out.push(`${b.serial ?? b.bay} (${b.bay}):`);
      for (const p of b.problems) out.push(`  - ${p}`);
    }
  } else if (r.bays.length) {
    out.push('', 'Every bay is healthy.');
  }
  return `${out.join('\n')}\n`;
}

/** The report without a daemon: every reachable camera opened here, with a short link test. */
async function directReport(dataDir: string, opts: { portsDir?: string; linkSeconds: number; linkBytes: number }): Promise<DockReport> {
  const found = await findCandidates({ portsDir: opts.portsDir });
  const dir = existsSync(join(dataDir, 'state.db')) ? openDataDir(dataDir, 'dockside diag') : undefined;
  try {
    const rows: DockRow[] = await Promise.all(
      found.candidates.map(async (c) => {
        try {
          return await withCamera(c.createTransport(), async (s) => {
            await linkTest(s, { maxSeconds: opts.linkSeconds, maxBytes: opts.linkBytes });
            const camera = await cameraHealth(s);
            const enrolled = dir?.store.camera(s.serial);
            const error = dir && (!enrolled || enrolled.revoked) ? { code: 'INGEST_UNENROLLED', message: `camera ${s.serial} is ${enrolled ? 'revoked' : 'not enrolled'} at this dock: the daemon will refuse it (\`dockside enroll ${s.serial}\`)` } : null;
            return dockRow({ bay: c.path, transport: c.kind, serial: s.serial, state: error ? 'refused' : 'docked', error, camera, ...storeFacts(dir?.store, s.serial) });
          });
        } catch (err) {
          const e = err instanceof DockError ? err : new DockError('HAL_OPEN', (err as Error).message);
          return dockRow({ bay: c.path, transport: c.kind, serial: null, state: 'unreachable', error: { code: e.code, message: e.message }, camera: null, lastOffloadMs: null, clips: { pending: 0, quarantined: 0, failed: 0 } });
        }
      }),
    );
    for (const u of found.unreachable) rows.push(dockRow({ bay: u.path, transport: u.kind, serial: null, state: 'unreachable', error: { code: u.error.code, message: u.error.message }, camera: null, lastOffloadMs: null, clips: { pending: 0, quarantined: 0, failed: 0 } }));
    return { dock: { dataDir, sink: '-', bays: rows.length, queue: { hold: null, waiting: 0, inFlight: 0 }, clips: dir?.store.countByState() ?? {} }, bays: rows };
  } finally {
    await dir?.close();
  }
}

interface DiagOptions {
  all?: boolean;
  dataDir: string;
  portsDir?: string;
  json?: boolean;
  linkSeconds: number;
  linkBytes: number;
}

export function register(program: Command): void {
  program
    .command('diag')
    .description('Check one camera (identity, key, battery, storage, clock, temperature, self-test, link test), or with --all the whole dock, a row per bay')
    .argument('[camera]', 'serial number (as in `dockside devices`) or port path')
    .option('--all', 'the dock health report: every bay, its camera, battery, storage, clock skew, link errors, last offload and state')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var): its running daemon is asked first', DEFAULT_DATA_DIR)
    .option('--ports-dir <dir>', 'with no daemon: scan only this directory of serial port links (default: /dev/serial/by-id and USB)')
    .option('--link-seconds <s>', 'longest the link test runs', positiveNumber('--link-seconds'))
    .option('--link-bytes <n>', 'most bytes the link test echoes', positiveNumber('--link-bytes'))
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', '\nWhile a daemon runs, `diag CAMERA` waits for no one: a camera being offloaded is busy (CAMERA_BUSY, exit 1); `diag --all` reports it meanwhile.\nExit status: 0 healthy, 4 a check failed (self-test, a damaged or lossy link test) or a bay has a problem, 3 no such camera, 1 busy or another error.\nExamples:\n  dockside diag --all              what is wrong at this dock, bay by bay\n  dockside diag BC4-0001           a full check-up of one camera')
    .action(async (target: string | undefined, o: DiagOptions) => {
      const dataDir = resolve(o.dataDir);
      if (o.all) {
        if (target) throw new DockError('CLI_USAGE', 'give a camera or --all, not both');
        const daemon = await askDaemon<DockReport>(dataDir, 'diag.all', {}, 30_000);
        const report = daemon?.result ?? (await directReport(dataDir, { portsDir: o.portsDir, linkSeconds: o.linkSeconds ?? 1, linkBytes: o.linkBytes ?? 2 * 1024 * 1024 }));
        if (o.json) printJson({ daemon: daemon !== undefined, ...report });
        else process.stdout.write(renderReport(report, daemon !== undefined));
        process.exitCode = report.bays.some((b) => b.problems.length > 0) ? EXIT.CHECK_FAILED : report.bays.length === 0 ? EXIT.NOT_FOUND : EXIT.OK;
        return;
      }
      if (!target) throw new DockError('CLI_USAGE', 'name the camera to check (serial or port path), or give --all for the whole dock');
      const linkSeconds = o.linkSeconds ?? 2;
      const linkBytes = o.linkBytes ?? 8 * 1024 * 1024;
      const daemon = await askDaemon<Diagnosis>(dataDir, 'diag', { serial: target, linkSeconds, linkBytes }, 60_000);
      const d =
        daemon?.result ??
        (await (async () => {
          const candidate = await findCamera(target, { portsDir: o.portsDir });
          return withCamera(candidate.createTransport(), (s) => diagnose(s, { linkSeconds, linkBytes }));
        })());
      if (o.json) printJson(d);
      else process.stdout.write(render(d));
      const linkBad = d.link.errorRate > HEALTH_LIMITS.frameErrorRate || d.link.lost > 0 || d.link.bytes === 0;
      process.exitCode = d.selftest.passed && !linkBad ? EXIT.OK : EXIT.CHECK_FAILED;
    });
}
