/**
 * The sensitivity sidebar and the plan panel in a real VS Code: open stories260K in the inspector,
 * open the QuantLens sidebar, run the sweep, set a budget, look at the bit map, export the
 * llama-quantize recipe and check the file. Screenshots (dark and light) go to test-output/e2e/sensitivity/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingPrerequisite, outputDir, packageExtension, paintedPixels, sharedModels, Workbench } from './harness';

const MODEL = 'stories260K-f32.gguf';

const skip = missingPrerequisite() ?? (existsSync(join(sharedModels, 'stories260K', MODEL)) ? undefined : `${sharedModels}/stories260K is missing`);

describe('sensitivity sidebar and plan panel in VS Code', { skip }, () => {
  let scratch: string;
  let workspace: string;
  let wb: Workbench;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-sensitivity-'));
    workspace = join(scratch, 'workspace');
    mkdirSync(workspace);
    copyFileSync(join(sharedModels, 'stories260K', MODEL), join(workspace, MODEL));
    const vsix = await packageExtension(scratch);
    wb = await Workbench.start({ workspace, vsix: [vsix], outDir: outputDir('sensitivity'), settings: { 'workbench.colorTheme': 'Default Dark Modern' } });
    await wb.waitForContextMenuItem(MODEL, 'Open in Inspector');
  });

  after(async () => {
    await wb?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Clicks an action of the QuantLens sidebar's title bar by its label. */
  async function sidebarAction(label: string): Promise<void> {
    const action = wb.page.locator(`.sidebar .title-actions a.action-label[aria-label="${label}"], .sidebar .pane-header .actions a.action-label[aria-label="${label}"]`).first();
    await action.waitFor({ timeout: 15_000 });
    await action.click();
  }

  test('sweep, budget, bit map, llama recipe', async () => {
    await wb.failureContext('sensitivity', async () => {
      const { page } = wb;
      await wb.openFile(MODEL);
      await wb.webview().locator('[data-testid="tensor-count"]').waitFor({ timeout: 30_000 });

      // the QuantLens activity-bar container: the tree follows the inspector in front
      await page.locator('.activitybar a.action-label[aria-label^="QuantLens"]').click();
      const sidebar = page.locator('.sidebar');
      await sidebar.locator('.message', { hasText: 'Run the sensitivity sweep' }).waitFor({ timeout: 15_000 });
      await wb.screenshot('dark-sidebar-before-sweep');

      await sidebarAction('Run Sensitivity Sweep');
      await sidebar.locator('.message', { hasText: 'Plan:' }).waitFor({ timeout: 120_000 });
      const layerRows = sidebar.locator('.monaco-list-row', { hasText: /Layer \d/ });
      assert.equal(await layerRows.count(), 5, 'stories260K has 5 layers');
      // the first layer row expands to its tensors with SQNR figures and planned formats
      await layerRows.first().click();
      await page.keyboard.press('ArrowRight');
      await sidebar.locator('.monaco-list-row .label-description', { hasText: ' dB → ' }).first().waitFor({ timeout: 10_000 });
      await wb.screenshot('dark-sidebar-swept');

      // Set Budget… through the sidebar's toolbar
      await sidebarAction('Set Budget…');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible' });
      await input.fill('12');
      await page.keyboard.press('Enter');
      await sidebar.locator('.message', { hasText: /Plan: 1[12]\.\d\d bits per weight/ }).waitFor({ timeout: 15_000 });

      // the plan panel: bit map and curve
      await sidebarAction('Open Plan');
      const plan = wb.page.frameLocator('iframe.webview.ready >> nth=-1').frameLocator('#active-frame');
      await plan.locator('[data-testid="bitmap"]').waitFor({ timeout: 20_000 });
      const cells = await plan.locator('[data-testid="bitmap"] td[data-format]').count();
      assert.ok(cells >= 5 * 4, `bit map has ${cells} filled cells`);
      const figures = await plan.locator('[data-testid="plan-figures"]').textContent();
      assert.match(figures ?? '', /Plan: 1[12]\.\d+ bits per weight/);
      await plan.locator('[data-testid="quantize-with-plan"]').waitFor();
      const painted = await paintedPixels(plan.locator('canvas[data-testid="frontier-chart"]'));
      assert.ok(painted > 500, `trade-off chart has ${painted} painted pixels`);
      await wb.screenshot('dark-plan-panel');

      // Export Recipe… → llama-quantize tensor-type file, saved next to the model
      await plan.locator('[data-testid="export-recipe"]').click();
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'llama-quantize tensor-type file' }).first().click();
      const recipe = join(workspace, 'stories260K-f32.tensor-types.txt');
      await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
      await page.waitForTimeout(300);
      await page.keyboard.press('Enter');
      await page.locator('.notifications-toasts', { hasText: 'tensor-types.txt' }).waitFor({ timeout: 15_000 });
      await page.waitForTimeout(700);
      await wb.screenshot('dark-recipe-exported');
      const lines = readFileSync(recipe, 'utf8').trim().split('\n');
      assert.ok(lines.length > 0, 'the tensor-type file has lines');
      for (const line of lines) assert.match(line, /^\^.+\$=(Q8_0|Q5_0|Q4_0|F32|F16)$/, `anchored regex=type line: ${line}`);
      assert.ok(lines.some((l) => l.includes('blk\\.')), 'layer tensors are matched by anchored blk\\.N patterns');
      assert.ok(lines.some((l) => l.includes('ffn_down') && /=(F32|F16)$/.test(l)), 'ffn_down (rows of 172, no format fits) is pinned to its kept type');

      // light theme
      await wb.runCommand('Preferences: Toggle between Light/Dark Themes');
      await page.waitForTimeout(1000);
      await wb.screenshot('light-plan-panel');
    });
  });
});
