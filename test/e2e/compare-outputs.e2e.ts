/**
 * The comparison view of two ONNX models in a real VS Code: besides the weights (every quantized
 * weight matched as one logical tensor), both models run in ONNX Runtime and their outputs are
 * compared.
 * - a generated MLP and its int4 MatMulNBits copy, selected together in the explorer → *Compare
 *   Checkpoints*: no dims to ask, so the outputs run by themselves on synthetic inputs (weaker-proxy
 *   notice shown);
 * - ch_ppocr and its int8 QDQ copy: the symbolic dims typed in the Outputs section, a folder of
 *   ImageMagick-rendered text lines (half upside down) → output SQNR and top-1 agreement.
 * Screenshots (dark and light) go to test-output/e2e/compare-outputs/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Frame } from 'playwright-core';
import { quantizeOnnx } from '../../src/core/onnx/quantize';
import { emptyGraph, NO_SOURCE, onnxNode, onnxTensor, onnxValueInfo, OnnxDataType, writeOnnxModel } from '../../src/core/readers/onnx';
import { imageMagickMissing, missingPrerequisite, outputDir, packageExtension, renderTextLines, selectValue, sharedModels, Workbench } from './harness';

const ONNX = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';

const skip = missingPrerequisite();
const ppocrSkip = !existsSync(join(sharedModels, 'onnx', ONNX))
  ? `${sharedModels}/onnx/${ONNX} is missing`
  : imageMagickMissing();

/** x [batch, 64] → MatMul [64, 48] → Relu → MatMul [48, 10]: a classifier-shaped output. */
async function writeMlp(path: string): Promise<void> {
  let s = 12345;
  const next = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 4294967296 - 0.5;
  };
  const weights = (n: number) => new Uint8Array(Float32Array.from({ length: n }, () => next() * 0.4).buffer);
  const graph = emptyGraph();
  graph.name = 'mlp';
  graph.inputs.push(onnxValueInfo('x', OnnxDataType.FLOAT, ['batch', 64]));
  graph.outputs.push(onnxValueInfo('logits', OnnxDataType.FLOAT, ['batch', 10]));
  graph.initializers.push(onnxTensor('fc1.weight', OnnxDataType.FLOAT, [64, 48], weights(64 * 48)), onnxTensor('fc2.weight', OnnxDataType.FLOAT, [48, 10], weights(48 * 10)));
  graph.nodes.push(onnxNode('MatMul', ['x', 'fc1.weight'], ['h'], { name: 'fc1' }), onnxNode('Relu', ['h'], ['a'], { name: 'relu' }), onnxNode('MatMul', ['a', 'fc2.weight'], ['logits'], { name: 'fc2' }));
  await writeOnnxModel({ irVersion: 8n, producerName: 'quantlens-e2e', opsetImports: [{ domain: '', version: 13n }], metadataProps: [], graph, extraFields: [] }, NO_SOURCE, path);
}

describe('Comparison of two ONNX models: weights and outputs', { skip }, () => {
  let scratch: string;
  let workspace: string;
  let images: string;
  let wb: Workbench;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'quantlens-e2e-compare-outputs-'));
    workspace = join(scratch, 'workspace');
    mkdirSync(workspace);
    await writeMlp(join(workspace, 'mlp.onnx'));
    await quantizeOnnx(join(workspace, 'mlp.onnx'), join(workspace, 'mlp-int4.onnx'), { type: 'int4-matmulnbits', blockSize: 16 });
    if (!ppocrSkip) {
      copyFileSync(join(sharedModels, 'onnx', ONNX), join(workspace, ONNX));
      await quantizeOnnx(join(workspace, ONNX), join(workspace, 'ppocr-int8-qdq.onnx'), { type: 'int8-qdq' });
      images = join(scratch, 'lines');
      renderTextLines(images);
    }
    const vsix = await packageExtension(scratch);
    wb = await Workbench.start({ workspace, vsix: [vsix], outDir: outputDir('compare-outputs'), settings: { 'workbench.colorTheme': 'Default Dark Modern', 'quantlens.workers': 2 } });
    await wb.waitForContextMenuItem('mlp.onnx', 'Show Activations');
  });

  after(async () => {
    await wb?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Selects `first` then `second` in the explorer and runs Compare Checkpoints from the context menu. */
  async function compareInExplorer(first: string, second: string): Promise<Frame> {
    const { page } = wb;
    await wb.runCommand('View: Show Explorer');
    const row = (name: string) => page.locator('.explorer-folders-view .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${name.replace(/\./g, '\\.')}$`) }) }).first();
    await row(first).click();
    // the click opens the file in the inspector: let that settle before extending the selection
    await page.waitForTimeout(1500);
    await row(second).click({ modifiers: ['Control'] });
    await page.locator('.explorer-folders-view .monaco-list-row.selected').nth(1).waitFor({ timeout: 5_000 });
    await wb.runContextMenuItem(row(second), 'Compare Checkpoints');
    // several comparisons stay open: the one whose heading names both files
    const frame = await wb.frameShowing('h1', `${first} ↔ ${second}`);
    await frame.locator('[data-testid="compare-status"][data-state="done"]').waitFor({ timeout: 60_000 });
    return frame;
  }

  async function outputRows(frame: Frame): Promise<string[][]> {
    const rows = frame.locator('[data-testid="outputs-table"] tbody tr');
    const out: string[][] = [];
    for (let i = 0; i < (await rows.count()); i++) out.push((await rows.nth(i).locator('td').allTextContents()).map((s) => s.trim()));
    return out;
  }

  async function themeShots(name: string): Promise<void> {
    await wb.page.waitForTimeout(400);
    await wb.screenshot(`dark-${name}`);
    await wb.setColorTheme('Default Light Modern', 'vs');
    await wb.screenshot(`light-${name}`);
    await wb.setColorTheme('Default Dark Modern', 'vs-dark');
  }

  test('MLP ↔ its int4 MatMulNBits copy: every weight matched, outputs on synthetic inputs by themselves', async () => {
    await wb.failureContext('mlp', async () => {
      const frame = await compareInExplorer('mlp.onnx', 'mlp-int4.onnx');
      const rows = frame.locator('[data-testid="compare-table"] tbody tr');
      assert.equal(await rows.count(), 2);
      for (const name of ['fc1.weight', 'fc2.weight']) {
        const cells = (await rows.filter({ hasText: name }).first().locator('td').allTextContents()).map((s) => s.trim());
        assert.equal(cells[1], 'F32 → MATMUL_NBITS', `${name}: ${cells.join(' | ')}`);
        assert.ok(Number(cells[4]) > 15, `${name} weight SQNR ${cells[4]}`);
      }
      assert.equal(await frame.getByText(/^Only in/).count(), 0, 'no tensor only on one side');

      await frame.locator('[data-testid="outputs-table"]').waitFor({ timeout: 120_000 });
      assert.match((await frame.locator('[data-testid="outputs-summary"]').textContent()) ?? '', /^8 samples from synthetic inputs/);
      await frame.locator('[data-testid="outputs-synthetic-notice"]').waitFor({ state: 'visible' });
      assert.equal(await frame.locator('[data-testid="outputs-path"]').isVisible(), false, 'no path field for synthetic inputs');
      assert.equal(await frame.locator('[data-testid="outputs-samples"]').isVisible(), true);
      const [logits] = await outputRows(frame);
      assert.equal(logits![0], 'logits');
      assert.ok(Number(logits![1]) > 10, `output SQNR ${logits![1]} dB`);
      assert.match(logits![3]!, /% of 8$/);
      console.log(`MLP int4 (blocks of 16) outputs against float on 8 synthetic samples: SQNR ${logits![1]} dB, relative MSE ${logits![2]}, top-1 ${logits![3]}`);
      await themeShots('mlp-outputs');
    });
  });

  test('ch_ppocr ↔ its int8 QDQ copy: dims and a folder of text lines in the Outputs section', { skip: ppocrSkip }, async () => {
    await wb.failureContext('ppocr', async () => {
      const frame = await compareInExplorer(ONNX, 'ppocr-int8-qdq.onnx');
      const rows = await frame.locator('[data-testid="compare-table"] tbody tr').count();
      assert.equal(rows, 250, 'every tensor of the float model matched');
      assert.equal(await frame.locator('[data-testid="compare-table"] tbody tr', { hasText: 'ONNX_QDQ' }).count(), 54, 'each quantized weight is one row');
      assert.equal(await frame.getByText(/^Only in ch_ppocr/).count(), 0);

      // symbolic dims: nothing runs by itself; synthetic is preselected with its notice
      assert.equal(await frame.locator('[data-testid="outputs-table"]').count(), 0);
      await selectValue(frame.locator('[data-testid="outputs-source"]'), 'images');
      await frame.locator('[data-testid="outputs-path"] input').fill(images);
      await frame.locator('[data-testid="outputs-resize"]').evaluate((el: { value: string }) => {
        el.value = 'pad';
      });
      await frame.locator('[data-testid="outputs-dim-p2o.DynamicDimension.1"] input').fill('48');
      await frame.locator('[data-testid="outputs-dim-p2o.DynamicDimension.2"] input').fill('192');
      await frame.locator('[data-testid="outputs-run"]').click();
      await frame.locator('[data-testid="outputs-table"]').waitFor({ timeout: 120_000 });
      assert.match((await frame.locator('[data-testid="outputs-summary"]').textContent()) ?? '', /^6 samples from 6 image files/);
      assert.equal(await frame.locator('[data-testid="outputs-synthetic-notice"]').count(), 0, 'no weaker-proxy notice for real samples');
      const [out] = await outputRows(frame);
      assert.ok(Number(out![1]) > 30, `int8 weight-only output SQNR ${out![1]} dB`);
      assert.equal(out![3], '100.0% of 6');
      console.log(`ch_ppocr int8 QDQ outputs against float on 6 rendered text lines: ${out![0]} SQNR ${out![1]} dB, relative MSE ${out![2]}, top-1 ${out![3]}`);
      await themeShots('ppocr-outputs');
    });
  });
});
