/**
 * `dockside config check FILE`: is this config file one the daemon will start with,
 * and what will it run with? Prints every key with its effective value (secrets as
 * "[redacted]") and where the value comes from (the file or the default); a bad file
 * lists every problem, each with its line and key, and exits 2.
 *
 * Beyond the schema it makes the checks the daemon makes when it opens the sink, and
 * warns (without failing) about paths that will not work on this machine: a warning
 * depends on who runs the check, so run it as the service user.
 */
import type { Command } from 'commander';
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { configKeys, loadConfigFile, SECRET_KEYS, withDefaults, type Config, type ConfigIssue, type EffectiveConfig } from '../config.js';
import { DockError, isDockError } from '../errors.js';
import { EXIT, printJson, table } from './output.js';

/** What an absent key without a default means, for the listing. */
const NOT_SET: Record<string, string> = {
  portsDir: '/dev/serial/by-id',
  dropDir: 'no drop-folder import',
  's3.endpoint': 'AWS',
  's3.region': 'AWS_REGION, else us-east-1',
  's3.pathStyle': 'automatic',
  's3.accessKeyId': 'the AWS credential chain',
  's3.secretAccessKey': 'the AWS credential chain',
  's3.sessionToken': 'the AWS credential chain',
  's3.objectLock': 'none',
};

export interface ConfigWarning {
  key: string;
  message: string;
}

export interface ConfigCheck {
  file: string;
  valid: true;
  format: 'json' | 'yaml';
  config: EffectiveConfig; // secrets redacted; keys with no value and no default left out
  fromFile: string[]; // the keys the file sets
  warnings: ConfigWarning[];
}

function get(o: unknown, key: string): unknown {
  let v = o;
  for (const seg of key.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[seg] : undefined;
  return v;
}

function redact(c: EffectiveConfig): EffectiveConfig {
  const out = structuredClone(c);
  const s3 = out.s3 as Record<string, unknown>;
  for (const key of SECRET_KEYS) {
    const name = key.slice('s3.'.length);
    if (s3[name] !== undefined) s3[name] = '[redacted]';
  }
  // A password in the endpoint URL is a secret too.
  if (typeof s3['endpoint'] === 'string') {
    try {
      const u = new URL(s3['endpoint']);
      if (u.password) {
        u.password = 'redacted';
        s3['endpoint'] = u.toString().replace(':redacted@', ':[redacted]@');
      }
    } catch {
      // the schema checked it is a URL
    }
  }
  return out;
}

/** Why a directory the daemon writes to will not work here, if it will not. */
function writableDirProblem(path: string): string | undefined {
  const at = resolve(path);
  try {
    const st = statSync(at);
    if (!st.isDirectory()) return `${at} exists and is not a directory`;
    accessSync(at, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return `${at} is not writable by this user`;
    if (code !== 'ENOENT') return `${at} cannot be checked: ${(err as Error).message}`;
  }
  const parent = dirname(at);
  try {
    if (!statSync(parent).isDirectory()) return `${at} does not exist and ${parent} is not a directory`;
    accessSync(parent, constants.W_OK | constants.X_OK);
    return undefined; // the daemon creates it
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${at} does not exist, nor does its parent ${parent}`;
    return `${at} does not exist and its parent ${parent} is not writable by this user`;
  }
}

/** Why a directory that must be there already (ports, a drop folder) will not work here. */
function existingDirProblem(path: string, mode: number, what: string): string | undefined {
  const at = resolve(path);
  try {
    if (!statSync(at).isDirectory()) return `${at} is not a directory`;
    accessSync(at, mode);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${at} does not exist` : `${at} is not ${what} by this user`;
  }
}

function warningsFor(file: Config, e: EffectiveConfig): ConfigWarning[] {
  const w: ConfigWarning[] = [];
  const relative = (key: string, path: string): void => {
    if (!isAbsolute(path)) w.push({ key, message: `${path} is relative: it is taken from the working directory of whoever starts dockside (/ for a systemd service); give an absolute path` });
  };
  relative('dataDir', e.dataDir);
  const dataDir = writableDirProblem(e.dataDir);
  if (dataDir) w.push({ key: 'dataDir', message: dataDir });
  if (e.sink.startsWith('dir:')) {
    const vault = e.sink.slice('dir:'.length);
    if (file.sink !== undefined) relative('sink', vault);
    // The default vault is inside the data directory: its check covers it.
    const problem = file.sink !== undefined ? writableDirProblem(vault) : undefined;
    if (problem) w.push({ key: 'sink', message: problem });
    if (file.s3 !== undefined) w.push({ key: 's3', message: 's3.* is set but the sink is not an s3:// one: it is not used' });
  }
  if (e.portsDir !== undefined) {
    const problem = existingDirProblem(e.portsDir, constants.R_OK | constants.X_OK, 'readable');
    if (problem) w.push({ key: 'portsDir', message: problem });
  }
  if (e.dropDir !== undefined) {
    relative('dropDir', e.dropDir);
    // Imported files are moved to imported/, refused ones to rejected/: it must be writable.
    const problem = existingDirProblem(e.dropDir, constants.R_OK | constants.W_OK | constants.X_OK, 'readable and writable');
    if (problem) w.push({ key: 'dropDir', message: problem });
  }
  if (e.metrics !== 'off' && !/^(127\.|\[::1\]:|localhost:)/.test(e.metrics)) w.push({ key: 'metrics', message: `${e.metrics} is beyond loopback: /metrics and /healthz have no authentication, so firewall the port` });
  return w;
}

/** Checks one file; throws CONFIG_INVALID (every problem in its details) when the daemon would refuse it. */
export async function checkConfigFile(path: string): Promise<ConfigCheck> {
  const { config, format } = loadConfigFile(path);
  const effective = withDefaults(config);
  if (effective.sink.startsWith('s3://')) {
    // What the daemon checks when it opens the sink (loaded only here: it brings the AWS SDK).
    const { parseS3Spec } = await import('../queue/sinks/S3Sink.js');
    try {
      parseS3Spec(effective.sink);
    } catch (err) {
      if (isDockError(err)) throw new DockError('CONFIG_INVALID', `${path}: sink: ${err.message.replace(/^sink /, '')}`, { ...err.details, source: path, key: 'sink' });
      throw err;
    }
  }
  return {
    file: path,
    valid: true,
    format,
    config: redact(effective),
    fromFile: configKeys().filter((k) => get(config, k) !== undefined),
    warnings: warningsFor(config, effective),
  };
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function render(r: ConfigCheck): string {
  const set = new Set(r.fromFile);
  const rows = configKeys().map((key) => {
    const v = get(r.config, key);
    if (v === undefined) return [key, `(not set: ${NOT_SET[key] ?? 'none'})`, ''];
    return [key, show(v), set.has(key) ? 'file' : 'default'];
  });
  const warnings = r.warnings.map((w) => `warning: ${w.key}: ${w.message}\n`).join('');
  return `${r.file}: valid (${r.format === 'json' ? 'JSON' : 'YAML'})\n\n${table(rows, ['key', 'value', 'from'])}\n${warnings ? `\n${warnings}` : ''}`;
}

export function register(program: Command): void {
  const config = program.command('config').description('The daemon\'s config file (JSON or YAML; docs/operations.md lists every key)');
  config
    .command('check')
    .description('Check a config file as the daemon would, and show the configuration it gives (defaults filled in, secrets redacted); exit 2 if it is invalid')
    .argument('<file>', 'the config file, e.g. /etc/dockside/config.yaml')
    .option('--json', 'one JSON document on stdout')
    .action(async (file: string, o: { json?: boolean }) => {
      let r: ConfigCheck;
      try {
        r = await checkConfigFile(file);
      } catch (err) {
        const issues = isDockError(err, 'CONFIG_INVALID') ? (err.details['issues'] as ConfigIssue[] | undefined) : undefined;
        if (o.json || !issues || issues.length < 2) throw err; // reportError: the message, exit 2
        // Every problem at once, so a technician fixes the file in one go.
        const lines = issues.map((i) => `  ${i.line !== undefined ? `line ${i.line}: ` : ''}${i.key}: ${i.message}\n`).join('');
        process.stderr.write(`dockside: ${file}: ${issues.length} problems [CONFIG_INVALID]\n${lines}`);
        process.exitCode = EXIT.USAGE;
        return;
      }
      if (o.json) printJson(r);
      else process.stdout.write(render(r));
      process.exitCode = EXIT.OK;
    });
}
