/**
 * The Outputs section of a comparison of two ONNX models: where the calibration samples come from
 * (synthetic by default, with the weaker-proxy notice; a folder of images, .npy/.npz or .wav files),
 * the symbolic dims to give, and per graph output the SQNR, relative MSE and top-1 agreement of the
 * second model against the first.
 */
import type {
  CalibrationRequest, CompareHostSide, CompareOutputsProgressEvent, CompareOutputsSetup, CompareOutputsView, CompareWebviewSide, OnnxSourceKind,
} from '../../src/shared/protocol';
import type { RpcEndpoint } from '../../src/shared/rpc';
import { h } from '../inspector/dom';

type Field = HTMLElement & { value: string };

const SOURCES: Array<[OnnxSourceKind, string]> = [
  ['synthetic', 'Synthetic (random normal)'],
  ['images', 'Folder of images'],
  ['arrays', '.npy / .npz file'],
  ['audio', '.wav file (16 kHz)'],
];

function textField(testId: string, value: string, placeholder = '', extra: Record<string, string> = {}): Field {
  return h('vscode-textfield', { 'data-testid': testId, value, placeholder, ...extra }) as Field;
}

function positiveInt(text: string, what: string): number {
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${what}: a whole number above 0, not “${text}”`);
  return n;
}

export function outputsSection(setup: CompareOutputsSetup, rpc: RpcEndpoint<CompareHostSide, CompareWebviewSide>, names: { a: string; b: string }): HTMLElement {
  const source = h('vscode-single-select', { 'data-testid': 'outputs-source' }) as Field;
  for (const [value, label] of SOURCES) source.append(h('vscode-option', { value, selected: value === 'synthetic' }, label));
  const path = textField('outputs-path', '', '/path/to/images', { class: 'path' });
  const browse = h('vscode-button', { secondary: true, 'data-testid': 'outputs-browse' }, 'Browse…');
  browse.addEventListener('click', async () => {
    const kind = kindOf();
    const { path: picked } = await rpc.request('pickPath', { what: kind === 'synthetic' ? 'images' : kind });
    if (picked) path.value = picked;
  });
  const resize = h('vscode-single-select', { 'data-testid': 'outputs-resize' }) as Field;
  for (const [value, label] of [['stretch', 'stretch to the input size'], ['pad', 'keep aspect, pad the right (text lines)']]) {
    resize.append(h('vscode-option', { value, selected: value === setup.defaultImage.resize }, label));
  }
  const samples = textField('outputs-samples', String(setup.defaultSamples), '', { class: 'num' });
  const dimFields = new Map<string, Field>();
  const dims = setup.symbolicDims.flatMap((name) => {
    const f = textField(`outputs-dim-${name}`, '', 'size', { class: 'num' });
    dimFields.set(name, f);
    return [h('span', { class: 'small mono' }, name), f];
  });
  const run = h('vscode-button', { 'data-testid': 'outputs-run' }, 'Run both models');
  const cancel = h('vscode-button', { secondary: true, 'data-testid': 'outputs-cancel', hidden: true }, 'Cancel');
  const status = h('span', { class: 'muted', 'data-testid': 'outputs-status' });
  const notice = h(
    'div',
    { class: 'notice warning', 'data-testid': 'outputs-synthetic-notice' },
    'Synthetic inputs are a weaker proxy: random values do not look like real data, so these figures can differ from what real inputs give. Pick real samples when you have them.',
  );
  const pathControls = h('span', { class: 'controls' }, path, browse);
  const imageControls = h('span', { class: 'controls' }, h('span', { class: 'muted small' }, 'resize'), resize);
  const sampleControls = h('span', { class: 'controls' }, h('span', { class: 'muted small' }, 'samples'), samples);
  const result = h('div', { 'data-testid': 'outputs-result' });

  // before the select has rendered its options, its value is empty: synthetic is the default
  const kindOf = (): OnnxSourceKind => (source.value || 'synthetic') as OnnxSourceKind;
  const sync = (): void => {
    const kind = kindOf();
    pathControls.hidden = kind === 'synthetic';
    imageControls.hidden = kind !== 'images';
    sampleControls.hidden = kind !== 'synthetic';
    path.setAttribute('placeholder', kind === 'images' ? '/path/to/images' : kind === 'audio' ? '/path/to/speech.wav' : '/path/to/samples.npz');
  };
  source.addEventListener('change', sync);
  sync();

  const request = (): Extract<CalibrationRequest, { kind: 'onnx' }> => {
    const kind = kindOf();
    const given: Record<string, number> = {};
    for (const [name, f] of dimFields) given[name] = positiveInt(f.value, `Dimension ${name}`);
    if (kind !== 'synthetic' && !path.value.trim()) throw new Error('Choose the calibration files (Browse…) or type their path.');
    return {
      kind: 'onnx',
      source: kind,
      path: kind === 'synthetic' ? '' : path.value.trim(),
      image: { ...setup.defaultImage, resize: (resize.value || setup.defaultImage.resize) === 'pad' ? 'pad' : 'stretch' },
      samples: kind === 'synthetic' ? positiveInt(samples.value, 'Samples') : 0,
      dims: given,
    };
  };

  const showProgress = (p: CompareOutputsProgressEvent): void => {
    const running = p.state === 'running';
    run.hidden = running;
    cancel.hidden = !running;
    status.dataset.state = p.state;
    status.className = p.state === 'error' ? 'error-text' : 'muted';
    status.textContent =
      running ? `${p.stage}: ${p.done} / ${p.total}`
      : p.state === 'cancelled' ? 'Cancelled.'
      : p.state === 'error' ? (p.message ?? 'failed')
      : '';
  };
  const showResult = (view: CompareOutputsView): void => {
    const rows = view.outputs.map((o) =>
      h(
        'tr',
        null,
        h('td', { class: 'mono' }, o.name),
        h('td', { class: 'num' }, o.sqnrDb === null ? 'equal' : o.sqnrDb.toFixed(2)),
        h('td', { class: 'num' }, o.relMse === null ? '–' : o.relMse.toExponential(3)),
        h('td', { class: 'num' }, o.top1Agreement === null ? '–' : `${(o.top1Agreement * 100).toFixed(1)}% of ${o.rows}`),
      ),
    );
    result.replaceChildren(
      h('div', { class: 'muted', 'data-testid': 'outputs-summary' }, `${view.summary}, ${view.seconds.toFixed(1)} s: ${names.b} against ${names.a}`),
      view.synthetic ? notice : h('span'),
      h(
        'table',
        { class: 'outputs-table', 'data-testid': 'outputs-table' },
        h('thead', null, h('tr', null, h('th', null, 'Output'), h('th', { class: 'num', title: '10·log10(‖a‖² ÷ ‖a − b‖²)' }, 'SQNR dB'), h('th', { class: 'num', title: '‖a − b‖² ÷ ‖a‖²' }, 'rel. MSE'), h('th', { class: 'num', title: 'Rows of a [classes] or [batch, classes] output whose argmax agrees' }, 'top-1 agreement'))),
        h('tbody', null, ...rows),
      ),
    );
  };

  run.addEventListener('click', async () => {
    let asked: Extract<CalibrationRequest, { kind: 'onnx' }>;
    try {
      asked = request();
    } catch (err) {
      showProgress({ stage: '', done: 0, total: 0, state: 'error', message: (err as Error).message });
      return;
    }
    try {
      showResult(await rpc.request('compareOutputs', asked));
    } catch (err) {
      const e = err as Error & { code?: string };
      showProgress({ stage: '', done: 0, total: 0, state: e.code === 'CANCELLED' ? 'cancelled' : 'error', message: `${e.code ?? 'ERROR'}: ${e.message}` });
    }
  });
  cancel.addEventListener('click', () => rpc.notify('cancelOutputs', {}));
  rpc.on('outputsProgress', showProgress);
  rpc.on('outputsResult', showResult);

  if (setup.result) showResult(setup.result);
  else if (setup.symbolicDims.length === 0) result.replaceChildren(h('div', { class: 'muted' }, 'Both models run on synthetic inputs once the weights are compared.'));
  if (setup.progress) showProgress(setup.progress);

  const inputs = setup.inputs.map((i) => `${i.name} ${i.type} [${i.dims.map((d) => (d === null ? '?' : String(d))).join(', ')}]`).join('; ');
  return h(
    'section',
    { class: 'outputs', 'data-testid': 'outputs-section' },
    h('h2', null, 'Outputs (ONNX Runtime, same samples for both models)'),
    h('div', { class: 'muted small' }, `Inputs: ${inputs}`),
    h('div', { class: 'outputs-form' }, source, pathControls, imageControls, sampleControls, ...(dims.length ? [h('span', { class: 'controls' }, ...dims)] : []), run, cancel, status),
    result,
  );
}
