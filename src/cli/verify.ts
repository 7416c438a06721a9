/** `dockside verify FILE`: one clip against its sidecar, offline, for whoever holds a copy of it. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { defaultSidecarPath, verifyClipFile, type ClipFileReport } from '../custody/verifyClipFile.js';
import { EXIT, printJson } from './output.js';

export function renderClipReport(r: ClipFileReport): string {
  const out = [`Clip     ${r.serial ?? '?'}/${r.clipId ?? '?'}`, `File     ${r.file}`, `Sidecar  ${r.sidecar}`, ''];
  const width = Math.max(...r.checks.map((c) => c.check.length));
  for (const c of r.checks) out.push(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.check.padEnd(width)}  ${c.detail}`);
  out.push('', 'Not checked (a sidecar alone cannot show it):');
  for (const n of r.notChecked) out.push(`  - ${n}`);
  const failed = r.checks.filter((c) => !c.ok).length;
  out.push('', r.ok ? 'The clip verifies against its sidecar.' : `THE CLIP DOES NOT VERIFY: ${failed} check(s) failed (FAIL above).`);
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('verify')
    .description("Verify one clip file against its sidecar, offline: size and SHA-256, the camera's signed manifest and chain value, the dock's signed custody lines")
    .argument('<file>', 'the clip file (.mp4 or .bin), e.g. a copy from the vault')
    .option('--sidecar <file>', 'its sidecar (default: <clipId>.json beside the file)')
    .option('--json', 'one JSON document on stdout')
    .action(async (file: string, o: { sidecar?: string; json?: boolean }) => {
      const clip = resolve(file);
      const report = await verifyClipFile(clip, o.sidecar ? resolve(o.sidecar) : defaultSidecarPath(clip));
      if (o.json) printJson(report);
      else process.stdout.write(renderClipReport(report));
      process.exitCode = report.ok ? EXIT.OK : EXIT.CHECK_FAILED;
    });
}
