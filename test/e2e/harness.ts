/**
 * End-to-end harness: the real VS Code workbench (code-server 4.100.3 = VS Code 1.100.3) on
 * 127.0.0.1, driven by Debian's Chromium through playwright-core (../shared/docs/E2E.md).
 * scripts/setup-e2e.sh installs code-server; scripts/code-server.ts starts it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Frame, type FrameLocator, type Locator, type Page } from 'playwright-core';
import { codeServerInstalled, createProfile, installExtension, repoRoot, startCodeServer, type CodeServer } from '../../scripts/code-server';

export { packageExtension, repoRoot } from '../../scripts/code-server';

export const sharedModels = resolve(repoRoot, '../shared/models');
export const CHROMIUM = '/usr/bin/chromium';

/** Chromium's flags for a headless run that reaches nothing but 127.0.0.1 (E2E.md step 8). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the end-to-end tests cannot run here, or undefined when they can. */
export function missingPrerequisite(): string | undefined {
  if (!codeServerInstalled()) return 'code-server is not installed (run: bash scripts/setup-e2e.sh)';
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (run: bash scripts/setup-e2e.sh)`;
  return undefined;
}

/** Screenshot folder of one test: test-output/e2e/<test>/ (gitignored), emptied first. */
export function outputDir(testName: string): string {
  const dir = join(repoRoot, 'test-output/e2e', testName.replace(/[^A-Za-z0-9._-]+/g, '-'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The part of a canvas element `paintedPixels` touches (test files are typed without the DOM). */
interface Canvas2d {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}

/** How many pixels of a canvas are not transparent: a chart drew something. */
export function paintedPixels(canvas: Locator): Promise<number> {
  return canvas.evaluate((c: Canvas2d) => {
    const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;
  });
}

/** Sets a select element's value and fires `change`, as picking that option does. */
export async function selectValue(select: Locator, value: string): Promise<void> {
  await select.evaluate((el: { value: string; dispatchEvent(e: unknown): boolean }, v) => {
    el.value = v;
    el.dispatchEvent(new (globalThis as unknown as { Event: new (t: string) => unknown }).Event('change'));
  }, value);
}

/** Why `renderTextLines` cannot run here, or undefined when it can. */
export function imageMagickMissing(): string | undefined {
  try {
    execFileSync('convert', ['-version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'ImageMagick (convert) is missing: the test renders its calibration images with it (apt install imagemagick fonts-dejavu-core)';
  }
}

const TEXT_LINES = ['the quick brown fox', 'jumps over a lazy dog', 'calibration line 42', 'hello world again', 'sixteen kilohertz', 'runtime in the web'];

/**
 * Six text lines rendered by ImageMagick as 192×48 PNG files line1..6.png in `dir` (created):
 * calibration images for ch_ppocr's orientation classifier.
 */
export function renderTextLines(dir: string): void {
  mkdirSync(dir);
  TEXT_LINES.forEach((text, i) => {
    const out = join(dir, `line${i + 1}.png`);
    execFileSync('convert', ['-size', '192x48', 'xc:white', '-font', 'DejaVu-Sans', '-pointsize', '20', '-fill', 'black', '-annotate', '+5+32', text, out]);
    // half of them upside down, so the orientation classifier's top-1 means something
    if (i >= 3) execFileSync('convert', [out, '-rotate', '180', out]);
  });
}

export interface StartOptions {
  /** Folder opened as the workspace. */
  workspace: string;
  /** Extensions to install, as .vsix files. */
  vsix: string[];
  /** Screenshots go here. */
  outDir: string;
  /** User settings beyond scripts/code-server.ts's BASE_SETTINGS. */
  settings?: Record<string, unknown>;
  /** User keybindings (keybindings.json entries), e.g. to run a command hidden from the palette. */
  keybindings?: Array<{ key: string; command: string; args?: unknown }>;
}

/** A running code-server with a browser page on its workbench. Close it with `close()`. */
export class Workbench {
  private shots = 0;

  private constructor(
    readonly page: Page,
    readonly outDir: string,
    private readonly browser: Browser,
    private readonly server: CodeServer,
    private readonly scratch: string,
  ) {}

  static async start(options: StartOptions): Promise<Workbench> {
    const scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-'));
    let server: CodeServer | undefined;
    let browser: Browser | undefined;
    try {
      const profile = createProfile(scratch, options.settings);
      if (options.keybindings) writeFileSync(join(profile.userData, 'User/keybindings.json'), JSON.stringify(options.keybindings, null, 2));
      for (const vsix of options.vsix) await installExtension(profile, vsix);
      server = await startCodeServer(profile, options.workspace);
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(server.url);
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      return new Workbench(page, options.outDir, browser, server, scratch);
    } catch (err) {
      await browser?.close().catch(() => {});
      const output = server?.output() ?? '';
      server?.stop();
      rmSync(scratch, { recursive: true, force: true });
      throw new Error(`${(err as Error).message}${output ? `\ncode-server output:\n${output}` : ''}`);
    }
  }

  get url(): string {
    return this.server.url;
  }

  /** The last lines code-server printed (for failure messages). */
  serverOutput(): string {
    return this.server.output();
  }

  /** Runs `body`; when it fails, saves a screenshot failure-<name> and adds code-server's last output to the error. */
  async failureContext<T>(name: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (err) {
      await this.screenshot(`failure-${name}`).catch(() => {});
      throw new Error(`${(err as Error).message}\ncode-server output (tail):\n${this.serverOutput().slice(-1500)}`);
    }
  }

  /**
   * Moves keyboard focus from a webview back to the workbench: keys pressed while a webview's
   * input has focus stay inside its iframe.
   */
  async focusWorkbench(): Promise<void> {
    // the label, not the title bar's middle: a narrow sidebar puts the view's toolbar buttons there
    await this.page.locator('.part.sidebar .composite.title .title-label').first().click();
  }

  /** Runs a command through the command palette by its title. */
  async runCommand(title: string): Promise<void> {
    const { page } = this;
    await this.focusWorkbench();
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    // the row whose label is exactly the title: a longer command containing it may be ranked first
    const label = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
    const row = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: label }) }).first();
    await row.waitFor({ timeout: 15_000 });
    await row.click();
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

  /** Right-clicks `row` (in the explorer) and runs the context menu's item `itemLabel`. */
  async runContextMenuItem(row: Locator, itemLabel: string): Promise<void> {
    const { page } = this;
    await row.click({ button: 'right' });
    // the context menu acts on mouse up after its opening animation: hover the item, then Enter
    await page.locator('.monaco-menu .action-label', { hasText: itemLabel }).first().hover();
    await page.waitForTimeout(200);
    await page.keyboard.press('Enter');
  }

  /** Opens a workspace file through Quick Open (Ctrl+P), as a user would; returns when Enter was pressed (epoch ms). */
  async openFile(name: string): Promise<number> {
    const { page } = this;
    await this.focusWorkbench();
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(name);
    // the first row, which Enter opens: while the list still shows recently opened files, a row
    // further down may already match
    await page.locator('.quick-input-list .monaco-list-row[data-index="0"]', { hasText: name }).waitFor({ timeout: 20_000 });
    const pressed = Date.now();
    await page.keyboard.press('Enter');
    return pressed;
  }

  /** Switches the colour theme (`label`: the `workbench.colorTheme` value) through *Preferences: Color Theme*. */
  async setColorTheme(label: string, bodyClass: 'vs' | 'vs-dark' | 'hc-black' | 'hc-light'): Promise<void> {
    const { page } = this;
    await this.runCommand('Preferences: Color Theme');
    // the theme picker replaces the command palette in the same widget: wait for its themes before typing
    await page.locator('.quick-input-list .monaco-list-row', { hasText: /Default (Dark|Light) Modern/ }).first().waitFor({ timeout: 10_000 });
    await page.locator('.quick-input-widget input').fill(label);
    // rows show the theme's name with its setting value (`label`) as the description
    const row = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-description', { hasText: new RegExp(`^${label}$`) }) }).first();
    await row.waitFor({ timeout: 10_000 });
    await row.click();
    await page.locator(`.monaco-workbench.${bodyClass}`).waitFor({ timeout: 15_000 });
    await page.waitForTimeout(400); // webviews restyle and redraw their charts
  }

  async closeAllEditors(): Promise<void> {
    await this.runCommand('View: Close All Editors');
    await this.page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: 10_000 });
  }

  /** The content frame of the visible webview (two iframes deep, E2E.md step 10). */
  webview(): FrameLocator {
    return this.page.locator('iframe.webview.ready').filter({ visible: true }).first().contentFrame().frameLocator('#active-frame');
  }

  /**
   * The innermost frame of the webview that shows `selector` (with `hasText`, if given), for when
   * several webviews are open side by side.
   */
  async frameShowing(selector: string, hasText?: string, timeoutMs = 30_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const frame of this.page.frames()) {
        if (await frame.locator(selector, { hasText }).count().catch(() => 0)) return frame;
      }
      if (Date.now() > deadline) throw new Error(`no webview shows ${selector}${hasText ? ` with the text ${hasText}` : ''}`);
      await this.page.waitForTimeout(250);
    }
  }

  /** Saves a screenshot of the whole page as NN-name.png in the test's output folder; returns its path. */
  async screenshot(name: string): Promise<string> {
    const path = join(this.outDir, `${String(++this.shots).padStart(2, '0')}-${name}.png`);
    await this.page.screenshot({ path });
    return path;
  }

  async close(): Promise<void> {
    await this.browser.close().catch(() => {});
    this.server.stop();
    await new Promise((r) => setTimeout(r, 200));
    rmSync(this.scratch, { recursive: true, force: true, maxRetries: 3 });
  }
}
