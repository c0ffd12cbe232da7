/**
 * The Activations view in a real VS Code:
 * - LLM: stories260K in the inspector → title bar *Show Activations* → run calibration on the bundled
 *   text → activation and weight histograms, channel profile and layer strip drawn (canvas pixels);
 * - ONNX: right-click ch_ppocr_mobile_v2.0_cls_infer.onnx → *Show Activations* → a folder of
 *   ImageMagick-rendered text lines (3 of 6 rotated 180°), symbolic dims typed in the panel → run →
 *   histograms → *Quantize (int8 QDQ)…* → *Evaluate against Original* (output SQNR, top-1 agreement)
 *   → *Compare Weights* (the comparison view on both models).
 * Screenshots (dark and light) go to test-output/e2e/activations/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Frame } from 'playwright-core';
import { imageMagickMissing, missingPrerequisite, outputDir, packageExtension, paintedPixels, renderTextLines, selectValue, sharedModels, Workbench } from './harness';

const LLM = 'stories260K-f32.gguf';
const ONNX = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';

const skip = missingPrerequisite() ?? (existsSync(join(sharedModels, 'stories260K', LLM)) ? undefined : `${sharedModels}/stories260K is missing`);
const onnxSkip = !existsSync(join(sharedModels, 'onnx', ONNX))
  ? `${sharedModels}/onnx/${ONNX} is missing`
  : imageMagickMissing();

describe('Activations view in VS Code', { skip }, () => {
  let scratch: string;
  let workspace: string;
  let images: string;
  let wb: Workbench;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-activations-'));
    workspace = join(scratch, 'workspace');
    mkdirSync(workspace);
    copyFileSync(join(sharedModels, 'stories260K', LLM), join(workspace, LLM));
    if (!onnxSkip) {
      copyFileSync(join(sharedModels, 'onnx', ONNX), join(workspace, ONNX));
      images = join(scratch, 'lines');
      renderTextLines(images);
    }
    const vsix = await packageExtension(scratch);
    wb = await Workbench.start({ workspace, vsix: [vsix], outDir: outputDir('activations'), settings: { 'workbench.colorTheme': 'Default Dark Modern', 'quantlens.workers': 2 } });
    await wb.waitForContextMenuItem(LLM, 'Show Activations');
  });

  after(async () => {
    await wb?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  async function assertPainted(frame: Frame, ids: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const id of ids) {
      const canvas = frame.locator(`canvas[data-testid="${id}"]`);
      await canvas.waitFor({ timeout: 30_000 });
      out[id] = await paintedPixels(canvas);
      assert.ok(out[id] > 300, `${id} has ${out[id]} painted pixels`);
    }
    return out;
  }

  async function runAndWait(frame: Frame, timeoutMs: number): Promise<string> {
    await frame.locator('[data-testid="run-calibration"]').click();
    const status = frame.locator('[data-testid="calibration-status"]');
    await status.and(frame.locator('[data-state="done"], [data-state="error"]')).waitFor({ timeout: timeoutMs });
    const text = (await status.textContent()) ?? '';
    assert.equal(await status.getAttribute('data-state'), 'done', text);
    return text;
  }

  /** Dark and light screenshots of the panel's top (form, result, strip) and of its site detail (histograms, channels). */
  async function themeShots(name: string, frame: Frame): Promise<void> {
    for (const theme of ['dark', 'light']) {
      await frame.evaluate(() => (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0));
      await wb.page.waitForTimeout(theme === 'dark' ? 500 : 1200);
      await wb.screenshot(`${theme}-${name}`);
      await frame.locator('[data-testid="site-detail"]').scrollIntoViewIfNeeded();
      await wb.page.waitForTimeout(300);
      await wb.screenshot(`${theme}-${name}-detail`);
      await wb.runCommand('Preferences: Toggle between Light/Dark Themes');
    }
    await wb.page.waitForTimeout(800);
  }

  test('LLM: calibrate stories260K from the inspector title bar, histograms drawn', async () => {
    await wb.failureContext('llm', async () => {
      const { page } = wb;
      await wb.openFile(LLM);
      await wb.webview().locator('[data-testid="tensor-count"]').waitFor({ timeout: 30_000 });
      await page.locator('.editor-actions a.action-label[aria-label*="Show Activations"]').first().click();
      const frame = await wb.frameShowing('[data-testid="calibration-form"]');
      assert.match((await frame.locator('h1').textContent()) ?? '', /Activations: stories260K-f32\.gguf/);
      await wb.screenshot('dark-llm-form-beside-inspector');
      const status = await runAndWait(frame, 120_000);
      const summary = (await frame.locator('[data-testid="result-summary"]').textContent()) ?? '';
      assert.match(summary, /chunks of 128 tokens from calibration-default\.txt/);
      assert.match(summary, /perplexity \d/);
      const sites = frame.locator('[data-testid="site-table"] tbody tr');
      assert.equal(await sites.count(), 5 * 7 + 1, 'seven sites per block of stories260K, and the output head input');
      // the first site with a weight and a channel view is selected: blk.0.attn_in beside blk.0.attn_q.weight
      await frame.locator('[data-testid="weight-histogram"]').waitFor({ timeout: 30_000 });
      const pixels = await assertPainted(frame, ['layer-strip', 'activation-histogram', 'weight-histogram', 'channel-chart']);
      // an MLP down-projection input: the site of the outlier channels in LLMs
      await sites.filter({ hasText: 'blk.0.ffn_down.input' }).click();
      await frame.locator('h3', { hasText: 'blk.0.ffn_down.weight' }).waitFor({ timeout: 30_000 });
      await assertPainted(frame, ['activation-histogram', 'weight-histogram', 'channel-chart']);
      console.log(`LLM calibration: ${status} ${summary}; painted ${JSON.stringify(pixels)}`);
      await wb.runCommand('View: Toggle Maximize Editor Group');
      await themeShots('llm-activations', frame);
      await wb.runCommand('View: Toggle Maximize Editor Group');

      // the sidebar's sweep is weighted by the importance matrix the calibration computed (no separate load)
      await frame.locator('[data-testid="action-imatrix-sweep"]').click();
      await page.locator('.sidebar .message', { hasText: 'imatrix-weighted' }).waitFor({ timeout: 120_000 });
      await wb.screenshot('dark-llm-sidebar-imatrix');
      // back to the explorer (the sidebar title's actions would catch the harness's focus click)
      await page.keyboard.press('Escape');
      await page.locator('.activitybar a.action-label[aria-label^="Explorer"]').click();
      await wb.closeAllEditors();
    });
  });

  test('ONNX: folder of images → calibrate → histograms → quantize → evaluate → compare', { skip: onnxSkip }, async () => {
    await wb.failureContext('onnx', async () => {
      const { page } = wb;
      await wb.runCommand('View: Show Explorer');
      await wb.runContextMenuItem(page.locator('.explorer-folders-view .monaco-list-row', { hasText: ONNX }).first(), 'Show Activations');
      const frame = await wb.frameShowing('[data-testid="model-inputs"]');
      assert.match((await frame.locator('[data-testid="model-inputs"]').textContent()) ?? '', /x.*float32.*p2o\.DynamicDimension\.1/);

      // synthetic inputs come with the weaker-proxy notice
      const source = frame.locator('[data-testid="source-select"]');
      await selectValue(source, 'synthetic');
      await frame.locator('[data-testid="synthetic-notice"]').waitFor({ state: 'visible' });
      assert.match((await frame.locator('[data-testid="synthetic-notice"]').textContent()) ?? '', /weaker proxy/);
      await selectValue(source, 'images');

      await frame.locator('[data-testid="path-field"] input').fill(images);
      await frame.locator('[data-testid="dim-p2o.DynamicDimension.1"] input').fill('48');
      await frame.locator('[data-testid="dim-p2o.DynamicDimension.2"] input').fill('192');
      await wb.screenshot('dark-onnx-form');
      await runAndWait(frame, 180_000);
      const summary = (await frame.locator('[data-testid="result-summary"]').textContent()) ?? '';
      assert.match(summary, /6 samples from 6 image files/);
      const sites = await frame.locator('[data-testid="site-table"] tbody tr').count();
      assert.ok(sites > 100, `${sites} node outputs`);
      const pixels = await assertPainted(frame, ['layer-strip', 'activation-histogram', 'weight-histogram', 'channel-chart']);
      // a deeper Conv: its input's channel profile
      await frame.locator('[data-testid="site-table"] tbody tr', { hasText: 'p2o.Conv.10' }).first().click();
      await frame.locator('h3', { hasText: 'p2o.Conv.10' }).waitFor({ timeout: 30_000 });
      await assertPainted(frame, ['activation-histogram', 'weight-histogram', 'channel-chart']);
      // a Conv whose input has outlier channels (red in the strip and the list): they are listed and drawn in red
      const hot = frame.locator('[data-testid="site-table"] tbody tr:has(td.hot)');
      const hotCount = await hot.count();
      if (hotCount > 0) {
        await hot.first().click();
        await frame.locator('[data-testid="outlier-summary"]', { hasText: /channels exceed 6× the median/ }).waitFor({ timeout: 30_000 });
        await assertPainted(frame, ['channel-chart']);
      }
      console.log(`ONNX calibration: ${summary}; ${sites} sites, ${hotCount} with outlier channels in their input; painted ${JSON.stringify(pixels)}`);

      // Quantize (int8 QDQ)… → W8A8 with MSE-optimal ranges → default output path
      await frame.locator('[data-testid="action-quantize"]').click();
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible' });
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'W8A8, MSE-optimal ranges' }).first().waitFor();
      await page.keyboard.press('Enter');
      await page.locator('.quick-input-widget .quick-input-title', { hasText: 'output file' }).waitFor({ timeout: 10_000 });
      await page.keyboard.press('Enter');
      const message = frame.locator('[data-testid="action-message"]');
      await message.filter({ hasText: /Wrote|rror|not/ }).waitFor({ timeout: 120_000 });
      assert.match((await message.textContent()) ?? '', /^Wrote ch_ppocr_mobile_v2\.0_cls_infer-int8-qdq\.onnx/);
      assert.ok(readdirSync(workspace).includes('ch_ppocr_mobile_v2.0_cls_infer-int8-qdq.onnx'));

      await frame.locator('[data-testid="action-evaluate"]').click();
      const table = frame.locator('[data-testid="evaluation-table"]');
      await table.waitFor({ timeout: 120_000 });
      const cells = (await table.locator('tbody tr').first().locator('td').allTextContents()).map((s) => s.trim());
      const sqnr = Number(cells[1]);
      assert.ok(sqnr > 15, `W8A8 output SQNR ${cells[1]} dB`);
      assert.match(cells[3] ?? '', /% of 6/);
      console.log(`ONNX W8A8 (MSE ranges) against the float model: output ${cells[0]} SQNR ${cells[1]} dB, relative MSE ${cells[2]}, top-1 agreement ${cells[3]}`);
      await themeShots('onnx-activations', frame);

      // per-layer output sensitivity (mode outputs) lands in the Sensitivity sidebar
      await frame.locator('[data-testid="action-outputSensitivity"]').click();
      await message.filter({ hasText: /layers ranked|rror/ }).waitFor({ timeout: 180_000 });
      const ranked = (await message.textContent()) ?? '';
      assert.match(ranked, /^54 layers ranked by output SQNR/, ranked);
      const sidebar = page.locator('.sidebar');
      await sidebar.locator('.monaco-list-row .label-description', { hasText: ' output ' }).first().waitFor({ timeout: 30_000 });
      console.log(`ONNX output sensitivity: ${ranked}; sidebar: ${(await sidebar.locator('.monaco-list-row').first().textContent())?.trim()}`);
      await wb.screenshot('dark-onnx-sidebar-outputs');

      await frame.locator('[data-testid="action-compare"]').click();
      const compare = await wb.frameShowing('[data-testid="compare-table"]');
      await compare.locator('[data-testid="compare-status"][data-state="done"]').waitFor({ timeout: 60_000 });
      const rows = await compare.locator('[data-testid="compare-table"] tbody tr').count();
      assert.ok(rows > 50, `${rows} matched tensors`);
      await wb.page.waitForTimeout(500);
      await wb.screenshot('dark-onnx-compare');
    });
  });
});
