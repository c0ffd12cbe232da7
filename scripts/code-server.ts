/**
 * Starting code-server 4.100.3 (VS Code 1.100.3) with QuantLens installed, on 127.0.0.1: shared by
 * the end-to-end harness (test/e2e/harness.ts) and the demo (scripts/demo.ts). scripts/setup-e2e.sh
 * installs code-server into QUANTLENS_E2E_HOME (default ~/.cache/quantlens-e2e).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const repoRoot = resolve(__dirname, '..');

export function e2eHome(): string {
  return process.env.QUANTLENS_E2E_HOME ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'quantlens-e2e');
}

export function codeServerBin(): string {
  return join(e2eHome(), 'code-server/node_modules/.bin/code-server');
}

export function codeServerInstalled(): boolean {
  return existsSync(codeServerBin());
}

/** Settings that keep the workbench quiet and deterministic (../shared/docs/E2E.md step 6). */
export const BASE_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'security.workspace.trust.enabled': false,
  'window.restoreWindows': 'none',
  'chat.commandCenter.enabled': false,
};

/** Builds the production bundles and packages the extension as a .vsix into `outDir`. */
export async function packageExtension(outDir: string): Promise<string> {
  await run(process.execPath, [join(repoRoot, 'scripts/build.mjs'), '--production'], { cwd: repoRoot });
  const vsix = join(outDir, 'quantlens.vsix');
  const vsce = join(repoRoot, 'node_modules/@vscode/vsce/vsce');
  await run(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '-o', vsix], { cwd: repoRoot });
  return vsix;
}

/** A free TCP port on 127.0.0.1 (the OS picks it; there is a small window before code-server binds it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? res(address.port) : rej(new Error('no port'))));
    });
  });
}

/** A user-data folder, extensions folder and XDG dirs under `root` (code-server otherwise writes into ~). */
export interface Profile {
  userData: string;
  extensions: string;
  env: NodeJS.ProcessEnv;
}

export function createProfile(root: string, settings: Record<string, unknown> = {}): Profile {
  const userData = join(root, 'user-data');
  const extensions = join(root, 'extensions');
  mkdirSync(join(userData, 'User'), { recursive: true });
  mkdirSync(extensions, { recursive: true });
  writeFileSync(join(userData, 'User/settings.json'), JSON.stringify({ ...BASE_SETTINGS, ...settings }, null, 2));
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: join(root, 'xdg-config'),
    XDG_DATA_HOME: join(root, 'xdg-data'),
    XDG_CACHE_HOME: join(root, 'xdg-cache'),
  };
  return { userData, extensions, env };
}

export async function installExtension(profile: Profile, vsix: string): Promise<void> {
  await run(codeServerBin(), ['--user-data-dir', profile.userData, '--extensions-dir', profile.extensions, '--install-extension', vsix, '--force'], {
    env: profile.env,
  });
}

export interface CodeServer {
  process: ChildProcess;
  port: number;
  /** The workbench URL with `workspace` open. */
  url: string;
  /** The last lines code-server printed. */
  output(): string;
  /** Ends code-server and everything it started (its process group). */
  stop(): void;
}

/** Starts code-server on 127.0.0.1 in its own process group and waits until it answers. */
export async function startCodeServer(profile: Profile, workspace: string, options: { port?: number } = {}): Promise<CodeServer> {
  const port = options.port ?? (await freePort());
  const log: string[] = [];
  const child = spawn(
    codeServerBin(),
    [
      '--auth', 'none',
      '--bind-addr', `127.0.0.1:${port}`,
      '--user-data-dir', profile.userData,
      '--extensions-dir', profile.extensions,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      workspace,
    ],
    { env: profile.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (chunk: Buffer): void => {
    log.push(chunk.toString());
    if (log.length > 400) log.splice(0, 100);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = (): void => killGroup(child);
  // A file opened through the URL (`payload=[["openFile", …]]`) is opened before extensions register
  // their editors, so a checkpoint would show as binary text: openInBrowserWindow opens it later.
  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`;
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 30_000, child);
  } catch (err) {
    stop();
    throw new Error(`${(err as Error).message}\ncode-server output:\n${log.join('')}`);
  }
  return { process: child, port, url, output: () => log.join('').slice(-4000), stop };
}

/**
 * Opens `path` in the browser window showing its folder, as `code-server -r path` does (through the
 * server's session socket). Resolves false while no window is connected. The socket appears when
 * the window's extension host runs, so the file opens with the editors extensions registered: a
 * checkpoint opens in the QuantLens inspector.
 */
export function openInBrowserWindow(profile: Profile, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(codeServerBin(), ['--user-data-dir', profile.userData, '--reuse-window', path], { env: profile.env }, (err) => resolve(!err));
  });
}

function killGroup(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  setTimeout(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // exited on SIGTERM
    }
  }, 2_000).unref();
}

async function waitForHttp(url: string, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`code-server exited with code ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`code-server did not answer ${url} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
