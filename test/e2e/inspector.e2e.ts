/**
 * The inspector in a real VS Code: package the extension as a .vsix, install it into code-server,
 * open checkpoints of each format in the custom editor and check, from inside the webview, what it
 * shows. Screenshots go to test-output/e2e/inspector/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { FrameLocator } from 'playwright-core';
import { openModel } from '../../src/core/readers';
import { safetensorsBytes } from '../fixtures/safetensors-builder';
import { missingPrerequisite, outputDir, packageExtension, paintedPixels, repoRoot, sharedModels, Workbench } from './harness';
import { formatTimings, openAndTime } from './inspector-timing';

/** The browser's clipboard, as seen from code run in the page (node code has no DOM types). */
interface BrowserClipboard {
  navigator: { clipboard: { writeText(text: string): Promise<void>; readText(): Promise<string> } };
}

/** One checkpoint per format from ../shared/models, copied into the test's workspace. */
const MODELS = [
  'stories260K/hf/model.safetensors',
  'stories260K/stories260K-Q4_K_M.gguf',
  'silero-vad/silero_vad_16k_op15.onnx',
  'stories260K/stories260K.pt',
];
const DOWN_PROJ = 'model.layers.2.mlp.down_proj.weight';
/** What the Reveal Tensor keybinding of this test selects. */
const REVEALED = 'model.layers.4.self_attn.v_proj.weight';
/** Analyze All asks first above this many bytes: the 100k GGUF (57 MB) is above, the rest below. */
const CONFIRM_BYTES = 10_000_000;
/** The odd-layer fixture: ffn_down of every layer alike but this one's, scaled up. */
const ODD_LAYER = 5;

const count = new Intl.NumberFormat('en-US');
const skip = missingPrerequisite() ?? (existsSync(sharedModels) ? undefined : `${sharedModels} is missing`);

describe('inspector in VS Code (code-server + Chromium)', { skip }, () => {
  let scratch: string;
  let workspace: string;
  let wb: Workbench;
  const expected = new Map<string, number>();
  const timings: string[] = [];

  before(async () => {
    const started = Date.now();
    scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-test-'));
    workspace = join(scratch, 'workspace');
    mkdirSync(workspace);
    for (const rel of MODELS) {
      const dst = join(workspace, basename(rel));
      copyFileSync(join(sharedModels, rel), dst);
      expected.set(basename(rel), (await openModel(dst)).tensors.length);
    }
    // config.json beside the safetensors file: its keys show in the overview
    copyFileSync(join(sharedModels, 'stories260K/hf/config.json'), join(workspace, 'config.json'));
    // a safetensors file cut inside its header: the typed error, never a blank webview
    writeFileSync(join(workspace, 'truncated.safetensors'), readFileSync(join(sharedModels, MODELS[0])).subarray(0, 200));
    writeFileSync(join(workspace, 'odd-layer.safetensors'), oddLayerModel());
    // the generated 100,000-tensor GGUF: the table must stay quick
    execFileSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'scripts/gen.ts'), 'gguf-100k', join(workspace, 'many-tensors.gguf')], { cwd: repoRoot });
    const vsix = await packageExtension(scratch);
    const packaged = Date.now();
    wb = await Workbench.start({
      workspace,
      vsix: [vsix],
      outDir: outputDir('inspector'),
      settings: { 'workbench.colorTheme': 'Default Dark Modern', 'quantlens.inspector.largeFileConfirmBytes': CONFIRM_BYTES },
      // Reveal Tensor is for code (the sidebar, the comparison), hidden from the palette: a keybinding runs it here
      keybindings: [{ key: 'ctrl+alt+shift+r', command: 'quantlens.revealTensor', args: { uri: join(workspace, 'model.safetensors'), tensor: REVEALED } }],
    });
    await wb.page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(wb.url).origin });
    await wb.waitForContextMenuItem(basename(MODELS[0]), 'Open in Inspector');
    timings.push(`package ${packaged - started} ms`, `code-server + workbench ready ${Date.now() - packaged} ms`);
    await wb.screenshot('workbench');
  });

  after(async () => {
    if (timings.length) console.log(`e2e timings: ${timings.join(', ')}`);
    await wb?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  async function tensorCount(view: FrameLocator): Promise<string | undefined> {
    const cell = view.locator('[data-testid="tensor-count"]');
    await cell.waitFor({ timeout: 30_000 });
    return (await cell.textContent())?.trim();
  }

  test('opens safetensors, GGUF, ONNX and PyTorch and shows each tensor count', async (t) => {
    await wb.failureContext('formats', async () => {
      for (const [file, tensors] of expected) {
        const opened = Date.now();
        await wb.openFile(file);
        const view = wb.webview();
        const text = await tensorCount(view);
        timings.push(`${file} overview ${Date.now() - opened} ms`);
        await wb.screenshot(`overview-${file}`);
        assert.equal(text, count.format(tensors), `${file}: tensor count in the webview`);
        await view.locator('[data-testid="tab-tensors"]').click();
        await view.locator('.tt-spacer .tt-row').first().waitFor({ timeout: 10_000 });
        const status = await view.locator('[data-testid="table-status"]').textContent();
        assert.equal(status?.trim(), `${count.format(tensors)} tensor${tensors === 1 ? '' : 's'}`);
        await wb.screenshot(`tensors-${file}`);
        await wb.closeAllEditors();
      }
      t.diagnostic(timings.join('; '));
    });
  });

  test('100,000-tensor GGUF: first table page quickly, filter and sort on the host', async (t) => {
    await wb.failureContext('many-tensors', async () => {
      // first open (the extension may activate), then a second one of the same file
      const first = await openAndTime(wb, 'many-tensors.gguf');
      await wb.closeAllEditors();
      const again = await openAndTime(wb, 'many-tensors.gguf');
      timings.push(`100k GGUF from Quick Open, first: ${formatTimings(first)}`, `100k GGUF again: ${formatTimings(again)}`);
      t.diagnostic(`100k GGUF from Quick Open, first: ${formatTimings(first)}; again: ${formatTimings(again)}`);
      const view = wb.webview();
      assert.equal(await tensorCount(view), count.format(100_000));
      await view.locator('[data-testid="tab-tensors"]').click();
      await view.locator('.tt-spacer .tt-row').first().waitFor({ timeout: 10_000 });
      // scroll deep: rows arrive by page
      await view.locator('[data-testid="tensor-table"]').evaluate((el) => (el.scrollTop = 24 * 60_000));
      await view.locator('.tt-spacer .tt-row[data-index="60000"]').waitFor({ timeout: 10_000 });
      const filter = view.locator('[data-testid="filter"] input');
      await view.locator('[data-testid="filter"]').click();
      await filter.fill('blk.7.');
      await view.locator('[data-testid="table-status"]', { hasText: 'match' }).waitFor({ timeout: 10_000 });
      await wb.screenshot('many-tensors-filtered');
      await wb.closeAllEditors();
    });
  });

  test('layer 2 → ffn_down: statistics equal the CLI, histogram drawn, Analyze All completes; dark and light themes', async () => {
    await wb.failureContext('tensor-view', async () => {
      await wb.openFile('model.safetensors');
      const view = wb.webview();
      await tensorCount(view);
      await wb.screenshot('dark-overview');
      await view.locator('[data-testid="tab-layers"]').click();
      const layer2 = view.locator('[data-testid="group-layer:2"]');
      await layer2.locator('.twisty').click();
      await wb.screenshot('dark-layers');
      await layer2.locator('[data-testid="show-group-tensors"]').click();
      await view.locator('[data-testid="table-status"]', { hasText: 'match' }).waitFor();
      await view.locator('.tt-row', { hasText: DOWN_PROJ }).click();
      await view.locator('[data-testid="stat-mean"]').waitFor({ timeout: 30_000 });

      const cli = JSON.parse(
        execFileSync(process.execPath, [join(repoRoot, 'dist/cli.js'), 'stats', join(workspace, 'model.safetensors'), '--tensor', DOWN_PROJ, '--json'], { encoding: 'utf8' }),
      ).tensors[0];
      for (const key of ['count', 'finite', 'nonFinite', 'zeros', 'min', 'max', 'mean', 'std', 'absMax', 'kurtosis', 'outlierShare']) {
        const shown = await view.locator(`[data-testid="stat-${key}"]`).getAttribute('data-value');
        assert.equal(shown, String(cli[key]), `${key}: webview ${shown}, CLI ${cli[key]}`);
      }
      const painted = await paintedPixels(view.locator('canvas[data-testid="histogram"]'));
      assert.ok(painted > 500, `histogram canvas has ${painted} painted pixels`);

      // the strip across layers: ffn_down of all 5 layers, their statistics computed in the pool
      await view.locator('[data-testid="strip-odd"]').waitFor({ timeout: 60_000 });
      assert.match((await view.locator('[data-testid="role-strip"] h3').textContent()) ?? '', /model\.layers\.\{N\}\.mlp\.down_proj\.weight/);
      for (const metric of ['absMax', 'std', 'kurtosis', 'outlierShare']) {
        assert.ok((await paintedPixels(view.locator(`canvas[data-testid="strip-${metric}"]`))) > 100, `strip ${metric} drawn`);
      }
      await wb.screenshot('dark-tensor-view');

      await view.locator('[data-testid="analyze-all"]').click();
      await view.locator('[data-testid="analyze-status"][data-state="done"]').waitFor({ timeout: 60_000 });
      const status = await view.locator('[data-testid="analyze-status"]').textContent();
      assert.match(status ?? '', /tensors analyzed/);
      const absMax = await view.locator('.tt-spacer .tt-row').first().locator('.tt-cell').nth(8).textContent();
      assert.ok(absMax && absMax.trim() !== '', 'AbsMax column filled after Analyze All');
      await wb.screenshot('dark-analyzed');

      // the charts redraw in the new theme's colours
      await wb.runCommand('Preferences: Toggle between Light/Dark Themes');
      await wb.page.locator('.monaco-workbench.vs').waitFor({ timeout: 15_000 });
      await wb.page.waitForTimeout(500);
      await wb.screenshot('light-tensor-view');
      await view.locator('[data-testid="tab-overview"]').click();
      await wb.screenshot('light-overview');
      await wb.closeAllEditors();
    });
  });

  test('the odd layer stands out in the strip across layers; a click opens its tensor', async () => {
    await wb.failureContext('odd-layer', async () => {
      await wb.openFile('odd-layer.safetensors');
      const view = wb.webview();
      await tensorCount(view);
      await view.locator('[data-testid="tab-tensors"]').click();
      await view.locator('.tt-row', { hasText: 'model.layers.0.mlp.down_proj.weight' }).click();
      const odd = view.locator('[data-testid="strip-odd"]');
      await odd.waitFor({ timeout: 60_000 });
      const flagged = await odd.locator('a[data-layer]').evaluateAll((links) => links.map((a) => a.getAttribute('data-layer')));
      assert.deepEqual(flagged, [String(ODD_LAYER)], `flagged layers: ${flagged.join(', ')}`);
      await wb.screenshot('light-odd-layer-strip');
      await odd.locator('a[data-layer]').click();
      await view.locator('[data-testid="detail-name"]', { hasText: `model.layers.${ODD_LAYER}.mlp.down_proj.weight` }).waitFor({ timeout: 15_000 });
      await view.locator('.tt-row.selected', { hasText: `model.layers.${ODD_LAYER}.mlp.down_proj.weight` }).waitFor();
      await wb.closeAllEditors();
    });
  });

  test('Reveal Tensor selects the tensor; Copy Tensor Stats as JSON puts its statistics on the clipboard', async () => {
    await wb.failureContext('reveal-copy', async () => {
      await wb.focusWorkbench();
      await wb.page.keyboard.press('Control+Alt+Shift+R');
      const view = wb.webview();
      await view.locator('[data-testid="detail-name"]', { hasText: REVEALED }).waitFor({ timeout: 30_000 });
      await view.locator('.tt-row.selected', { hasText: REVEALED }).waitFor();
      await view.locator('[data-testid="stat-mean"]').waitFor({ timeout: 30_000 });
      await wb.screenshot('light-revealed');

      await wb.page.evaluate(() => (globalThis as unknown as BrowserClipboard).navigator.clipboard.writeText(''));
      await wb.runCommand('QuantLens: Copy Tensor Stats as JSON');
      let text = '';
      for (let i = 0; i < 50 && !text; i++) {
        await wb.page.waitForTimeout(100);
        text = await wb.page.evaluate(() => (globalThis as unknown as BrowserClipboard).navigator.clipboard.readText());
      }
      const copied = JSON.parse(text) as Record<string, unknown> & { histogram: { counts: number[] } };
      const cli = JSON.parse(
        execFileSync(process.execPath, [join(repoRoot, 'dist/cli.js'), 'stats', join(workspace, 'model.safetensors'), '--tensor', REVEALED, '--json'], { encoding: 'utf8' }),
      ).tensors[0];
      assert.equal(copied.name, REVEALED);
      for (const key of ['count', 'min', 'max', 'mean', 'std', 'absMax', 'kurtosis', 'outlierShare']) assert.equal(copied[key], cli[key], key);
      assert.equal(copied.histogram.counts.reduce((a, b) => a + b, 0), cli.finite, 'histogram counts every finite value');
      await wb.closeAllEditors();
    });
  });

  test('Analyze All on the 100k GGUF: the large-model confirmation, then cancelling a running analysis', async () => {
    await wb.failureContext('analyze-cancel', async () => {
      const { page } = wb;
      await wb.openFile('many-tensors.gguf');
      const view = wb.webview();
      await tensorCount(view);
      await view.locator('[data-testid="tab-tensors"]').click();
      const dialog = page.locator('.monaco-dialog-box');

      // declined: nothing runs, the button is back
      await view.locator('[data-testid="analyze-all"]').click();
      await dialog.waitFor({ timeout: 15_000 });
      assert.match((await dialog.textContent()) ?? '', /Analyze all 100000 tensors/);
      await wb.screenshot('light-analyze-confirm');
      await dialog.locator('.monaco-button', { hasText: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });
      await view.locator('[data-testid="analyze-all"]:not([disabled])').waitFor({ timeout: 10_000 });
      assert.equal((await view.locator('[data-testid="analyze-status"]').textContent())?.trim(), '');

      // accepted, then cancelled from the webview while it runs
      await view.locator('[data-testid="analyze-all"]').click();
      await dialog.waitFor({ timeout: 15_000 });
      await dialog.locator('.monaco-button', { hasText: 'Analyze' }).click();
      await view.locator('[data-testid="analyze-status"]', { hasText: /^[1-9][\d,]* \/ 100,000 tensors/ }).waitFor({ timeout: 30_000 });
      await page.locator('.notifications-toasts', { hasText: 'analyzing many-tensors.gguf' }).waitFor({ timeout: 10_000 });
      await wb.screenshot('light-analyze-running');
      await view.locator('[data-testid="analyze-cancel"]').click();
      const status = view.locator('[data-testid="analyze-status"][data-state="cancelled"]');
      await status.waitFor({ timeout: 30_000 });
      const analyzed = Number(/Cancelled: ([\d,]+) tensors/.exec((await status.textContent()) ?? '')?.[1].replace(/,/g, ''));
      assert.ok(analyzed > 0 && analyzed < 100_000, `cancelled after ${analyzed} tensors`);
      await page.locator('.notifications-toasts', { hasText: 'analyzing many-tensors.gguf' }).waitFor({ state: 'hidden', timeout: 15_000 });
      await view.locator('[data-testid="analyze-all"]:not([disabled])').waitFor();
      await wb.screenshot('light-analyze-cancelled');
      await wb.closeAllEditors();
    });
  });

  for (const [theme, label, bodyClass] of [
    ['dark', 'Default Dark Modern', 'vs-dark'],
    ['light', 'Default Light Modern', 'vs'],
    ['hc-dark', 'Default High Contrast', 'hc-black'],
    ['hc-light', 'Default High Contrast Light', 'hc-light'],
  ] as const) {
    test(`every view in the ${theme} theme (screenshots)`, async () => {
      await wb.failureContext(`theme-${theme}`, async () => {
        await wb.setColorTheme(label, bodyClass);
        await wb.openFile('model.safetensors');
        const view = wb.webview();
        await tensorCount(view);
        await wb.screenshot(`${theme}-overview`);
        await view.locator('[data-testid="tab-layers"]').click();
        await view.locator('[data-testid="group-layer:2"] .twisty').click();
        await wb.screenshot(`${theme}-layers`);
        await view.locator('[data-testid="tab-tensors"]').click();
        await view.locator('.tt-row', { hasText: DOWN_PROJ }).click();
        await view.locator('[data-testid="strip-odd"]').waitFor({ timeout: 60_000 });
        await wb.screenshot(`${theme}-tensor-view`);
        await view.locator('[data-testid="tensor-detail"]').evaluate((el) => el.scrollTo(0, el.scrollHeight));
        await wb.screenshot(`${theme}-tensor-view-strip`);
        await wb.closeAllEditors();
        await wb.openFile('truncated.safetensors');
        await wb.webview().locator('[data-testid="error-panel"]').waitFor({ timeout: 30_000 });
        await wb.screenshot(`${theme}-error`);
        await wb.closeAllEditors();
      });
    });
  }

  test('a truncated file shows the typed error with Reopen with Text Editor', async () => {
    await wb.failureContext('error', async () => {
      await wb.openFile('truncated.safetensors');
      const view = wb.webview();
      await view.locator('[data-testid="error-panel"]').waitFor({ timeout: 30_000 });
      const code = await view.locator('[data-testid="error-code"]').textContent();
      assert.equal(code, 'TRUNCATED');
      assert.equal(await view.locator('[data-testid="error-offset"]').textContent(), '8');
      await view.locator('[data-testid="reopen-text"]').waitFor();
      assert.equal(await view.locator('[data-testid="reopen-hex"]').count(), 0, 'no hex editor button without the hex editor');
      await wb.screenshot('light-error-truncated');
      await wb.closeAllEditors();
    });
  });
});

/** Eight layers' ffn_down alike (seeded normal values), but layer ODD_LAYER's scaled by 25. */
function oddLayerModel(): Uint8Array {
  let seed = 42;
  const uniform = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  const tensors = Array.from({ length: 8 }, (_, layer) => {
    const values = new Float32Array(64 * 64);
    for (let i = 0; i < values.length; i++) {
      const gauss = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
      values[i] = gauss * 0.02 * (layer === ODD_LAYER ? 25 : 1);
    }
    return { name: `model.layers.${layer}.mlp.down_proj.weight`, dtype: 'F32', shape: [64, 64], data: new Uint8Array(values.buffer) };
  });
  return safetensorsBytes(tensors);
}
