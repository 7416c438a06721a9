/** `dockside custody verify`: check the whole chain of custody offline; `custody export`: one clip's bundle for a third party. */
import type { Command } from 'commander';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { exportBundle, type ExportResult } from '../custody/exportBundle.js';
import { verifyCustody, type CustodyReport } from '../custody/verifyCustody.js';
import { EXIT, formatBytes, printJson, DEFAULT_DATA_DIR } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

function render(r: CustodyReport): string {
  const out: string[] = [`Dock key    ed25519 sha256:${r.dockFingerprint}`];
  out.push(`Ledger      ${r.ledger.entries} entries, ${r.ledger.problems.length === 0 ? 'hash chain and every dock signature verify' : `${r.ledger.problems.length} PROBLEMS`}`);
  for (const p of r.ledger.problems) out.push(`  ! line ${p.line}${p.seq !== null ? ` (seq ${p.seq})` : ''}: ${p.problem}`);
  out.push(`Objects     ${r.objects.checked} clips in the vault (${formatBytes(r.objects.bytes)}), ${r.objects.problems.length === 0 ? 'every hash, device signature and custody record holds' : `${r.objects.problems.length} PROBLEMS`}`);
  for (const p of r.objects.problems) out.push(`  ! ${p.serial}/${p.clipId}: ${p.problem}`);
  const chainState = r.chain.problems.length > 0 ? `${r.chain.problems.length} UNRECORDED BREAKS` : r.chain.gaps.length > 0 ? 'no unrecorded breaks' : 'continuous';
  out.push(`Chain       ${chainState}${r.chain.gaps.length ? `; ${r.chain.gaps.length} gap(s) recorded at ingest (clips missing on the camera)` : ''}`);
  for (const p of [...r.chain.problems, ...r.chain.gaps]) out.push(`  ${r.chain.problems.includes(p) ? '!' : '~'} ${p.serial}/${p.clipId}: ${p.problem}`);
  if (r.remote.clips > 0) out.push(`Remote      ${r.remote.clips} clips stored in ${r.remote.sinks.join(', ')}, not checked here: copy the bucket (e.g. aws s3 sync) and give --vault DIR`);
  out.push(`Released    ${r.released} clips, each after its checked store receipt`);
  out.push(`Quarantined ${r.quarantined.length}`);
  for (const q of r.quarantined) out.push(`  - ${q.serial}/${q.clipId}: ${q.reason}`);
  out.push(r.ok ? 'Custody verified.' : 'CUSTODY DOES NOT VERIFY: see the problems above.');
  return `${out.join('\n')}\n`;
}

function renderExport(r: ExportResult): string {
  const label = r.status === 'quarantined' ? 'QUARANTINED, NOT STORED' : r.status;
  const out = [`Exported    ${r.serial}/${r.clipId} (${label}) to ${r.out}`, `From        ${r.source}`];
  if (r.reason !== null) out.push(`Reason      ${r.reason} (never stored or released: the camera keeps its copy)`);
  const width = Math.max(...r.files.map((f) => f.name.length));
  for (const f of r.files) out.push(`  ${f.name.padEnd(width)}  ${formatBytes(f.bytes).padStart(10)}  sha256 ${f.sha256.slice(0, 16)}…`);
  out.push('  SHA256SUMS');
  out.push(`Ledger      seq ${r.ledger.rangeFromSeq}..${r.ledger.rangeToSeq} in ledger-range.jsonl; the clip's lines: ${r.ledger.clipSeqs.join(', ')}; head at export seq ${r.ledger.headSeq} ${r.ledger.headHash.slice(0, 16)}…`);
  out.push(`Dock key    ed25519 sha256:${r.dockFingerprint} (compare with an independent record)`);
  for (const c of r.checks.filter((x) => !x.ok)) out.push(`  FAIL ${c.check}: ${c.detail}`);
  out.push(r.ok ? `Checks      all ${r.checks.length} pass on the bundle as written. ${r.out}/README.md has the commands to check it with sha256sum, openssl and jq.` : 'THE BUNDLE WAS WRITTEN, BUT IT DOES NOT VERIFY: see FAIL above (the README commands will fail the same way).');
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  const custody = program.command('custody').description('Chain-of-custody tools');
  custody
    .command('verify')
    .description('Recompute the whole ledger (hash chain, dock signatures) and check every stored clip (hash, device signature, chain), offline')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var)', DEFAULT_DATA_DIR)
    .option('--vault <dir...>', 'check the clips in this directory (a copy of the vault or of an s3:// sink, laid out <serial>/<clipId>.*) instead of the vault the ledger names')
    .option('--json', 'one JSON document on stdout')
    .action(async (o: { dataDir: string; vault?: string[]; json?: boolean }) => {
      const report = await verifyCustody(resolve(o.dataDir), { vaults: o.vault?.map((v) => resolve(v)) });
      if (o.json) printJson(report);
      else process.stdout.write(render(report));
      process.exitCode = report.ok ? EXIT.OK : EXIT.CHECK_FAILED;
    });
  custody
    .command('export')
    .description("Write one clip's evidence bundle (clip, sidecar, keys, its ledger lines and the ledger range linking them, SHA256SUMS, a README with the openssl/jq commands) for a prosecutor or a defence expert; works beside a running daemon")
    .argument('<clipId>', 'the clip id, e.g. 20261130T060940Z-000001')
    .option('--serial <serial>', 'the camera, when more than one has a clip with that id')
    .option('--data-dir <dir>', 'the dock data directory (default $DOCKSIDE_DATA_DIR, else ./var)', DEFAULT_DATA_DIR)
    .option('--vault <dir>', 'take the clip and its sidecar from this copy of the evidence store (laid out <serial>/<clipId>.*), e.g. for an s3:// sink after `aws s3 sync`')
    .requiredOption('--out <dir>', 'a new or empty directory for the bundle (never overwritten)')
    .option('--json', 'one JSON document on stdout')
    .action(async (clipId: string, o: { serial?: string; dataDir: string; vault?: string; out: string; json?: boolean }) => {
      const result = await exportBundle({ dataDir: resolve(o.dataDir), clipId, serial: o.serial, vault: o.vault ? resolve(o.vault) : undefined, out: resolve(o.out), tool: `dockside ${pkg.version}` });
      if (o.json) printJson(result);
      else process.stdout.write(renderExport(result));
      process.exitCode = result.ok ? EXIT.OK : EXIT.CHECK_FAILED;
    });
}
