/**
 * `npm run demo` end to end: the script packages QuantLens, generates the demo model, serves
 * code-server, and the page a browser loads shows the model in the QuantLens inspector without a
 * click. Screenshot: test-output/e2e/demo/.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { freePort } from '../../scripts/code-server';
import { CHROMIUM, missingPrerequisite, outputDir, repoRoot } from './harness';

describe('npm run demo', { skip: missingPrerequisite() }, () => {
  let demo: ChildProcess | undefined;
  let browser: Browser | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'quantlens-demo-test-'));

  after(async () => {
    await browser?.close();
    if (demo?.pid !== undefined && demo.exitCode === null) {
      demo.kill('SIGINT'); // the demo stops its code-server
      await new Promise((r) => demo!.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('the page opens with the demo model in the inspector', async () => {
    const port = await freePort();
    demo = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'scripts/demo.ts'), '--dir', dir, '--port', String(port)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL within 240 s:\n${output}`)), 240_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        const m = /open (http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      demo!.stdout!.on('data', onData);
      demo!.stderr!.on('data', onData);
      demo!.once('exit', (code) => reject(new Error(`demo exited (${code}):\n${output}`)));
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(url);
    const view = page.locator('iframe.webview.ready').first().contentFrame().frameLocator('#active-frame');
    const count = view.locator('[data-testid="tensor-count"]');
    await count.waitFor({ timeout: 90_000 });
    assert.match((await view.locator('.title h1').textContent()) ?? '', /demo-llama\.gguf/);
    assert.ok(Number((await count.textContent())?.replace(/,/g, '')) > 0);
    await page.locator('.tabs-container .tab', { hasText: 'demo-llama.gguf' }).waitFor();
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(outputDir('demo'), '01-demo-page-loaded.png') });
  });
});
