/**
 * The inspector in a real VS Code: package the extension as a .vsix, install it into code-server,
 * open a checkpoint of each format in the custom editor, and read what the webview shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { openModel } from '../../src/core/readers';
import { missingPrerequisite, outputDir, packageExtension, sharedModels, Workbench } from './harness';

/** One checkpoint per format from ../shared/models, copied into the test's workspace. */
const MODELS = [
  'stories260K/hf/model.safetensors',
  'stories260K/stories260K-Q4_K_M.gguf',
  'silero-vad/silero_vad_16k_op15.onnx',
  'stories260K/stories260K.pt',
];

const count = new Intl.NumberFormat('en-US');

test('inspector: packaged extension opens safetensors, GGUF, ONNX and PyTorch, and shows a typed error for a broken file', async (t) => {
  const missing = missingPrerequisite();
  if (missing) return t.skip(missing);
  if (!existsSync(sharedModels)) return t.skip(`${sharedModels} is missing`);

  const started = Date.now();
  const scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-test-'));
  const workspace = join(scratch, 'workspace');
  const out = outputDir('inspector');
  let wb: Workbench | undefined;
  try {
    mkdirSync(workspace);
    const expected = new Map<string, number>();
    for (const rel of MODELS) {
      const src = join(sharedModels, rel);
      const dst = join(workspace, basename(rel));
      copyFileSync(src, dst);
      expected.set(basename(rel), (await openModel(dst)).tensors.length);
    }
    // config.json beside the safetensors file: its keys show in the overview
    copyFileSync(join(sharedModels, 'stories260K/hf/config.json'), join(workspace, 'config.json'));
    // a safetensors file cut inside its header: must show the typed error, never a blank webview
    const header = readFileSync(join(sharedModels, MODELS[0])).subarray(0, 200);
    writeFileSync(join(workspace, 'truncated.safetensors'), header);

    const vsix = await packageExtension(scratch);
    const packaged = Date.now();
    wb = await Workbench.start({ workspace, vsix: [vsix], outDir: out });
    await wb.waitForContextMenuItem(basename(MODELS[0]), 'Open in Inspector');
    const ready = Date.now();
    await wb.screenshot('workbench');

    for (const [file, tensors] of expected) {
      const opened = Date.now();
      await wb.openFile(file);
      const view = wb.webview();
      const cell = view.locator('[data-testid="tensor-count"]');
      await cell.waitFor({ timeout: 30_000 });
      const text = (await cell.textContent())?.trim();
      t.diagnostic(`${file}: ${text} tensors shown in ${Date.now() - opened} ms`);
      await wb.screenshot(`overview-${file}`);
      assert.equal(text, count.format(tensors), `${file}: tensor count in the webview`);
      // the table receives its first page on request
      await view.locator('[data-testid="tab-tensors"]').click();
      await view.locator('.tt-spacer .tt-row').first().waitFor({ timeout: 10_000 });
      const status = await view.locator('[data-testid="table-status"]').textContent();
      assert.equal(status?.trim(), `${count.format(tensors)} tensor${tensors === 1 ? '' : 's'}`);
      await wb.screenshot(`tensors-${file}`);
      await wb.closeAllEditors();
    }

    await wb.openFile('truncated.safetensors');
    const panel = wb.webview().locator('[data-testid="error-panel"]');
    await panel.waitFor({ timeout: 30_000 });
    const code = await wb.webview().locator('[data-testid="error-code"]').textContent();
    await wb.screenshot('error-truncated');
    assert.ok(code && /^[A-Z_]+$/.test(code), `typed error code shown, got ${code}`);
    await wb.webview().locator('[data-testid="reopen-text"]').waitFor();
    assert.equal(await wb.webview().locator('[data-testid="reopen-hex"]').count(), 0, 'no hex editor button without the hex editor');
    t.diagnostic(`package ${packaged - started} ms, start ${ready - packaged} ms, whole test ${Date.now() - started} ms`);
  } catch (err) {
    if (wb) {
      await wb.screenshot('failure').catch(() => {});
      t.diagnostic(`code-server output:\n${wb.serverOutput()}`);
    }
    throw err;
  } finally {
    await wb?.close();
    rmSync(scratch, { recursive: true, force: true });
  }
});
