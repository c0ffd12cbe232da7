import type { OpenErrorState } from '../../src/shared/protocol';
import type { InspectorRpc } from './api';
import { h } from './dom';

/** What the user sees when a checkpoint cannot be read: the typed error and ways out. */
export function errorPanel(state: OpenErrorState, rpc: InspectorRpc): HTMLElement {
  const { error } = state;
  const facts = h('dl', { class: 'facts' });
  const fact = (label: string, value: string | number | undefined, testid: string): void => {
    if (value === undefined) return;
    facts.append(h('dt', null, label), h('dd', { 'data-testid': testid }, String(value)));
  };
  fact('Code', error.code, 'error-code');
  fact('Byte offset', error.offset, 'error-offset');
  fact('Tensor', error.tensor, 'error-tensor');
  fact('File', error.file, 'error-file');

  const text = h('vscode-button', { 'data-testid': 'reopen-text' }, 'Reopen with Text Editor');
  text.addEventListener('click', () => rpc.notify('reopenWith', { editor: 'text' }));
  const buttons = h('div', { class: 'buttons' }, text);
  if (state.hexEditorAvailable) {
    const hex = h('vscode-button', { secondary: true, 'data-testid': 'reopen-hex' }, 'Reopen with Hex Editor');
    hex.addEventListener('click', () => rpc.notify('reopenWith', { editor: 'hex' }));
    buttons.append(hex);
  }
  return h(
    'section',
    { class: 'error-panel', role: 'alert', 'data-testid': 'error-panel' },
    h('h1', null, `Cannot open ${state.fileName}`),
    h('p', { class: 'error-message', 'data-testid': 'error-message' }, error.message),
    facts,
    buttons,
  );
}
