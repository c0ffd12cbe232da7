/**
 * The inspector in the end-to-end harness (code-server + Chromium, test/e2e/harness.ts): time from
 * Quick Open to the first table rows of the generated 100,000-tensor GGUF (goal < 500 ms), and
 * Analyze All Tensors on the generated ~1 GB model against `quantlens stats` on the same files
 * (goal: within 20 %). Skips with a message when code-server is not installed.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../src/core/readers';
import { missingPrerequisite, packageExtension, Workbench } from '../test/e2e/harness';
import { openAndTime, type OpenTimings } from '../test/e2e/inspector-timing';
import { cliPath, generatedManyTensorGguf, generatedModel, printTable, runMeasured } from './common';

export async function benchInspector(): Promise<void> {
  const missing = missingPrerequisite();
  if (missing) {
    console.log(`\n## inspector in VS Code: skipped (${missing})`);
    return;
  }
  const gguf = generatedManyTensorGguf();
  const llama = generatedModel('llama-1gb');
  const llamaEntry = join(llama, 'model.safetensors.index.json');
  const bytes = (await openModel(llama)).tensors.reduce((sum, t) => sum + t.byteLength, 0);

  const scratch = mkdtempSync(join(tmpdir(), 'quantlens-bench-inspector-'));
  let wb: Workbench | undefined;
  try {
    const workspace = join(scratch, 'workspace');
    mkdirSync(workspace);
    symlinkSync(gguf, join(workspace, 'many-tensors.gguf'));
    symlinkSync(llama, join(workspace, 'llama-1gb'));
    const vsix = await packageExtension(scratch);
    wb = await Workbench.start({
      workspace,
      vsix: [vsix],
      outDir: join(scratch, 'shots'),
      // every tensor analysed in each run (no cache), no confirmation, the CLI's worker count (one per core)
      settings: { 'quantlens.cache.enabled': false, 'quantlens.inspector.largeFileConfirmBytes': 0, 'quantlens.workers': 0 },
    });
    await wb.waitForContextMenuItem('many-tensors.gguf', 'Open in Inspector');

    const opens: Array<[string, OpenTimings]> = [];
    opens.push(['first open (extension activates)', await openAndTime(wb, 'many-tensors.gguf')]);
    for (let i = 2; i <= 3; i++) {
      await wb.closeAllEditors();
      opens.push([`open #${i}`, await openAndTime(wb, 'many-tensors.gguf')]);
    }
    await wb.closeAllEditors();
    printTable(
      `inspector: Quick Open → first table rows, 100,000-tensor GGUF, in code-server + Chromium (load average ${loadavg()[0]!.toFixed(1)})`,
      ['open', 'host reached ms', 'host read ms', 'webview script ms', 'state ms', 'first rows ms', 'goal ms'],
      opens.map(([label, t]) => [label, t.hostStartMs, t.hostOpenMs, t.webviewScriptMs, t.stateMs, t.firstRowsMs, 500]),
    );

    runMeasured(process.execPath, [cliPath, 'stats', llama, '--json']); // warms the page cache
    // Analyze All in a fresh document each time (statistics live per document, the cache is off):
    // the first run starts the worker pool, the second finds it running
    const analyzeMs: number[] = [];
    for (let run = 0; run < 2; run++) {
      await wb.openFile('model.safetensors.index.json');
      const view = wb.webview();
      await view.locator('[data-testid="tab-tensors"]').click();
      await view.locator('[data-testid="analyze-all"]').click();
      const status = view.locator('[data-testid="analyze-status"][data-state="done"]');
      await status.waitFor({ timeout: 600_000 });
      analyzeMs.push(Number(await status.getAttribute('data-elapsed-ms')));
      await wb.closeAllEditors();
    }
    const [coldMs, extensionMs] = analyzeMs;
    const cli = runMeasured(process.execPath, [cliPath, 'stats', llamaEntry, '--json']);
    const cliMs = cli.seconds * 1000;
    const gbs = (ms: number): number => bytes / ms / 1e6;
    printTable(
      `Analyze All Tensors vs \`quantlens stats --json\`, llama-1gb (${(bytes / 1e9).toFixed(2)} GB BF16, page cache warm, load average ${loadavg()[0]!.toFixed(1)})`,
      ['what', 'ms', 'GB/s', 'goal'],
      [
        ['Analyze All Tensors, pool starting (extension host, its own timer)', coldMs, gbs(coldMs), ''],
        ['Analyze All Tensors, pool running', extensionMs, gbs(extensionMs), ''],
        ['quantlens stats --json (CLI wall, incl. start and open)', cliMs, gbs(cliMs), ''],
        ['ratio extension (pool starting) / CLI throughput', '', gbs(coldMs) / gbs(cliMs), '≥ 0.8'],
        ['ratio extension (pool running) / CLI throughput', '', gbs(extensionMs) / gbs(cliMs), '≥ 0.8'],
      ],
    );
  } finally {
    await wb?.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
