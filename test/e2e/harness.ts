/**
 * End-to-end harness: the real VS Code workbench (code-server 4.100.3 = VS Code 1.100.3) on
 * 127.0.0.1, driven by Debian's Chromium through playwright-core (../shared/docs/E2E.md).
 * scripts/setup-e2e.sh installs code-server into QUANTLENS_E2E_HOME (default ~/.cache/quantlens-e2e).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type FrameLocator, type Page } from 'playwright-core';

const run = promisify(execFile);

export const repoRoot = resolve(__dirname, '../..');
export const sharedModels = resolve(repoRoot, '../shared/models');
export const CHROMIUM = '/usr/bin/chromium';

export function e2eHome(): string {
  return process.env.QUANTLENS_E2E_HOME ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'quantlens-e2e');
}

export function codeServerBin(): string {
  return join(e2eHome(), 'code-server/node_modules/.bin/code-server');
}

/** Why the end-to-end tests cannot run here, or undefined when they can. */
export function missingPrerequisite(): string | undefined {
  if (!existsSync(codeServerBin())) return `code-server is not installed (run: bash scripts/setup-e2e.sh)`;
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (run: bash scripts/setup-e2e.sh)`;
  return undefined;
}

/** Builds the bundles and packages the extension as a .vsix into `outDir`, as a user would install it. */
export async function packageExtension(outDir: string): Promise<string> {
  await run(process.execPath, [join(repoRoot, 'scripts/build.mjs'), '--production'], { cwd: repoRoot });
  const vsix = join(outDir, 'quantlens.vsix');
  const vsce = join(repoRoot, 'node_modules/@vscode/vsce/vsce');
  await run(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '-o', vsix], {
    cwd: repoRoot,
  });
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

/** Screenshot folder of one test: test-output/e2e/<test>/ (gitignored). */
export function outputDir(testName: string): string {
  const dir = join(repoRoot, 'test-output/e2e', testName.replace(/[^A-Za-z0-9._-]+/g, '-'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface StartOptions {
  /** Folder opened as the workspace. */
  workspace: string;
  /** Extensions to install, as .vsix files. */
  vsix: string[];
  /** Screenshots go here. */
  outDir: string;
  /** User settings beyond the harness's defaults. */
  settings?: Record<string, unknown>;
}

/** Settings that keep the workbench quiet and deterministic (E2E.md step 6). */
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
  'workbench.colorTheme': 'Default Dark Modern',
};

/** A running code-server with a browser page on its workbench. Close it with `close()`. */
export class Workbench {
  private shots = 0;

  private constructor(
    readonly page: Page,
    readonly url: string,
    readonly outDir: string,
    private readonly browser: Browser,
    private readonly server: ChildProcess,
    private readonly scratch: string,
    private readonly serverLog: string[],
  ) {}

  static async start(options: StartOptions): Promise<Workbench> {
    const scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-'));
    const userData = join(scratch, 'user-data');
    const extensions = join(scratch, 'extensions');
    mkdirSync(join(userData, 'User'), { recursive: true });
    writeFileSync(join(userData, 'User/settings.json'), JSON.stringify({ ...BASE_SETTINGS, ...options.settings }, null, 2));
    // code-server writes config.yaml and state under XDG dirs; keep them out of ~
    const env = {
      ...process.env,
      XDG_CONFIG_HOME: join(scratch, 'xdg-config'),
      XDG_DATA_HOME: join(scratch, 'xdg-data'),
      XDG_CACHE_HOME: join(scratch, 'xdg-cache'),
    };
    const bin = codeServerBin();
    for (const vsix of options.vsix) {
      await run(bin, ['--user-data-dir', userData, '--extensions-dir', extensions, '--install-extension', vsix], { env });
    }
    const port = await freePort();
    const serverLog: string[] = [];
    const server = spawn(
      bin,
      [
        '--auth', 'none',
        '--bind-addr', `127.0.0.1:${port}`,
        '--user-data-dir', userData,
        '--extensions-dir', extensions,
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        '--disable-getting-started-override',
        options.workspace,
      ],
      // its own process group, so that close() ends code-server and everything it started
      { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk: Buffer): void => {
      serverLog.push(chunk.toString());
      if (serverLog.length > 400) serverLog.splice(0, 100);
    };
    server.stdout?.on('data', keep);
    server.stderr?.on('data', keep);
    let browser: Browser | undefined;
    try {
      const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(options.workspace)}`;
      await waitForHttp(`http://127.0.0.1:${port}/healthz`, 30_000, server);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(url);
      const wb = new Workbench(page, url, options.outDir, browser, server, scratch, serverLog);
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      return wb;
    } catch (err) {
      await browser?.close().catch(() => {});
      killGroup(server);
      rmSync(scratch, { recursive: true, force: true });
      throw new Error(`${(err as Error).message}\ncode-server output:\n${serverLog.join('')}`);
    }
  }

  /** The last lines code-server printed (for failure messages). */
  serverOutput(): string {
    return this.serverLog.join('').slice(-4000);
  }

  /** Runs a command through the command palette by its title. */
  async runCommand(title: string): Promise<void> {
    const { page } = this;
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
  }

  /**
   * Waits until the extension's contributions are registered (E2E.md step 9): its item shows up in
   * the explorer's context menu of `fileName`. Opening a file before that gives the plain text editor.
   */
  async waitForContextMenuItem(fileName: string, itemLabel: string, timeoutMs = 60_000): Promise<void> {
    const { page } = this;
    const deadline = Date.now() + timeoutMs;
    const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: fileName }).first();
    await row.waitFor({ timeout: timeoutMs });
    for (;;) {
      await row.click({ button: 'right' });
      const item = page.locator('.monaco-menu .action-label', { hasText: itemLabel });
      try {
        await item.first().waitFor({ timeout: 2_000 });
        await page.keyboard.press('Escape');
        return;
      } catch (err) {
        await page.keyboard.press('Escape');
        if (Date.now() > deadline) throw err;
        await page.waitForTimeout(500);
      }
    }
  }

  /** Opens a workspace file through Quick Open (Ctrl+P), as a user would. */
  async openFile(name: string): Promise<void> {
    const { page } = this;
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(name);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor({ timeout: 20_000 });
    await page.keyboard.press('Enter');
  }

  async closeAllEditors(): Promise<void> {
    await this.runCommand('View: Close All Editors');
    await this.page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: 10_000 }).catch(() => {});
  }

  /** The content frame of the visible webview (two iframes deep, E2E.md step 10). */
  webview(): FrameLocator {
    return this.page.locator('iframe.webview.ready').filter({ visible: true }).first().contentFrame().frameLocator('#active-frame');
  }

  /** Saves a screenshot of the whole page as NN-name.png in the test's output folder; returns its path. */
  async screenshot(name: string): Promise<string> {
    const path = join(this.outDir, `${String(++this.shots).padStart(2, '0')}-${name}.png`);
    await this.page.screenshot({ path });
    return path;
  }

  async close(): Promise<void> {
    await this.browser.close().catch(() => {});
    killGroup(this.server);
    await new Promise((r) => setTimeout(r, 200));
    rmSync(this.scratch, { recursive: true, force: true, maxRetries: 3 });
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  const pid = child.pid;
  setTimeout(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // exited on SIGTERM
    }
  }, 2_000).unref();
}

async function waitForHttp(url: string, timeoutMs: number, server: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`code-server exited with code ${server.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`code-server did not answer ${url} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
