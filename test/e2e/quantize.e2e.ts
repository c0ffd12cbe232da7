/**
 * Quantize and compare in a real VS Code: right-click stories260K → Quantize… → Q4_K_M → progress →
 * Open (the output in the inspector, byte-identical to llama-quantize's file); Q8_0 → Compare with
 * Original (the table fills, a row shows overlaid and error histograms); a long quantize cancelled
 * leaves nothing behind; a read-only folder gives a clear error. Screenshots go to test-output/e2e/quantize/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { missingPrerequisite, outputDir, packageExtension, paintedPixels, sharedModels, Workbench } from './harness';

const MODEL = 'stories260K-f32.gguf';
/** Big enough that quantizing takes a few seconds on 2 cores: about 52 M parameters in F16. */
const LONG_SHAPE = { hidden: 768, ffn: 2048, layers: 6, heads: 12, kvHeads: 4, vocab: 8192 };

const skip = missingPrerequisite() ?? (existsSync(join(sharedModels, 'stories260K', MODEL)) ? undefined : `${sharedModels}/stories260K is missing`);

describe('Quantize and Compare in VS Code', { skip }, () => {
  let scratch: string;
  let workspace: string;
  let readOnly: string;
  let lockedWithChattr = false;
  let wb: Workbench;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-quantize-'));
    workspace = join(scratch, 'workspace');
    mkdirSync(workspace);
    copyFileSync(join(sharedModels, 'stories260K', MODEL), join(workspace, MODEL));
    writeSafetensorsModel(join(workspace, 'long'), llamaTensors(LONG_SHAPE), 'F16', 7);
    readOnly = join(workspace, 'readonly');
    mkdirSync(readOnly);
    copyFileSync(join(sharedModels, 'stories260K', MODEL), join(readOnly, 'locked.gguf'));
    // root ignores permission bits: make the folder immutable instead
    if (process.getuid?.() === 0) {
      execFileSync('chattr', ['+i', readOnly]);
      lockedWithChattr = true;
    } else {
      execFileSync('chmod', ['555', readOnly]);
    }
    const vsix = await packageExtension(scratch);
    wb = await Workbench.start({ workspace, vsix: [vsix], outDir: outputDir('quantize'), settings: { 'workbench.colorTheme': 'Default Dark Modern', 'quantlens.workers': 2 } });
    await wb.waitForContextMenuItem(MODEL, 'Quantize…');
  });

  after(async () => {
    await wb?.close();
    if (lockedWithChattr) execFileSync('chattr', ['-i', readOnly]);
    else if (readOnly) execFileSync('chmod', ['755', readOnly]);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Explorer → right-click `file` (in `folder` if given) → Quantize… → pick `type` → accept the default output. */
  async function quantizeFromExplorer(file: string, type: string, folder?: string): Promise<void> {
    const { page } = wb;
    await wb.runCommand('View: Show Explorer');
    if (folder) {
      const dir = page.locator('.explorer-folders-view .monaco-list-row', { hasText: folder }).first();
      if ((await dir.getAttribute('aria-expanded')) !== 'true') await dir.click();
    }
    await wb.runContextMenuItem(page.locator('.explorer-folders-view .monaco-list-row', { hasText: file }).first(), 'Quantize…');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(type);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: type }).first().waitFor();
    await page.keyboard.press('Enter');
    // the output path box, prefilled next to the input
    await page.locator('.quick-input-widget .quick-input-title', { hasText: 'output' }).waitFor({ timeout: 10_000 });
    await page.keyboard.press('Enter');
  }

  /** A screenshot once the notification toasts have finished sliding in. */
  async function shot(name: string): Promise<void> {
    await wb.page.waitForTimeout(700);
    await wb.screenshot(name);
  }

  async function clearNotifications(): Promise<void> {
    await wb.runCommand('Notifications: Clear All Notifications');
  }

  function toast(text: string | RegExp) {
    return wb.page.locator('.notifications-toasts .notification-toast', { hasText: text }).first();
  }

  test('Quantize → Q4_K_M → Open: the output is llama-quantize’s file', async () => {
    await wb.failureContext('q4km', async () => {
      await quantizeFromExplorer(MODEL, 'Q4_K_M');
      const done = toast('wrote stories260K-f32-Q4_K_M.gguf');
      await done.waitFor({ timeout: 60_000 });
      await shot('dark-quantized-notification');
      const out = join(workspace, 'stories260K-f32-Q4_K_M.gguf');
      assert.ok(readFileSync(out).equals(readFileSync(join(sharedModels, 'stories260K/stories260K-Q4_K_M.gguf'))), 'byte-identical to llama-quantize Q4_K_M');
      await done.locator('.monaco-button', { hasText: 'Open' }).first().click();
      const view = wb.webview();
      await view.locator('[data-testid="tensor-count"]').waitFor({ timeout: 30_000 });
      assert.equal((await view.locator('.title h1').textContent())?.trim(), 'stories260K-f32-Q4_K_M.gguf');
      await wb.screenshot('dark-output-opened');
      await wb.closeAllEditors();
    });
  });

  test('Quantize → Q8_0 → Compare with Original: table and histograms', async () => {
    await wb.failureContext('compare', async () => {
      await clearNotifications();
      await quantizeFromExplorer(MODEL, 'Q8_0');
      const done = toast('wrote stories260K-f32-Q8_0.gguf');
      await done.waitFor({ timeout: 60_000 });
      await done.locator('.monaco-button', { hasText: 'Compare with Original' }).click();
      const view = wb.webview();
      await view.locator('[data-testid="compare-status"][data-state="done"]').waitFor({ timeout: 60_000 });
      const rows = view.locator('[data-testid="compare-table"] tbody tr');
      assert.equal(await rows.count(), 48, 'every tensor matched');
      // sort by SQNR (click the header) and select the worst row
      await view.locator('th[data-sort="sqnrDb"]').click();
      const first = rows.first();
      const sqnr = Number((await first.locator('td').nth(4).textContent())?.trim());
      assert.ok(sqnr > 25 && sqnr < 60, `Q8_0 SQNR of the worst tensor ${sqnr} dB`);
      await first.click();
      for (const id of ['histogram-overlay', 'histogram-error']) {
        const canvas = view.locator(`canvas[data-testid="${id}"]`);
        await canvas.waitFor({ timeout: 30_000 });
        const painted = await paintedPixels(canvas);
        assert.ok(painted > 300, `${id} has ${painted} painted pixels`);
      }
      await wb.screenshot('dark-compare');
      await wb.runCommand('Preferences: Toggle between Light/Dark Themes');
      await wb.page.waitForTimeout(1000);
      await wb.screenshot('light-compare');
      await wb.closeAllEditors();
    });
  });

  test('cancelling a long quantize leaves no output and no temp file', async () => {
    await wb.failureContext('cancel', async () => {
      await clearNotifications();
      const before = readdirSync(join(workspace, 'long')).sort();
      await quantizeFromExplorer('model.safetensors', 'Q4_K_M', 'long');
      const progress = toast('quantizing model.safetensors');
      await progress.locator('.notification-list-item-message', { hasText: 'tensors' }).waitFor({ timeout: 30_000 });
      await shot('quantize-progress');
      await progress.hover();
      await progress.locator('.monaco-button', { hasText: 'Cancel' }).click();
      await toast('cancelled; nothing was written').waitFor({ timeout: 30_000 });
      await shot('quantize-cancelled');
      assert.deepEqual(readdirSync(join(workspace, 'long')).sort(), before, 'no output and no temp file beside the input');
      assert.deepEqual(readdirSync(workspace).filter((n) => n.startsWith('model-') || n.includes('quantlens-tmp')), []);
    });
  });

  test('a read-only folder gives a clear error', async () => {
    await wb.failureContext('readonly', async () => {
      await clearNotifications();
      await quantizeFromExplorer('locked.gguf', 'Q8_0', 'readonly');
      const error = toast('locked.gguf was not quantized');
      await error.waitFor({ timeout: 30_000 });
      const text = (await error.textContent()) ?? '';
      assert.match(text, /^QuantLens: the folder “readonly” is not writable/, text);
      await shot('light-readonly-error');
      assert.deepEqual(readdirSync(readOnly), ['locked.gguf']);
    });
  });
});
