import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeTensor } from '../../src/core/names';
import { checkpointStem, choiceLabel, defaultOutputFor, ggufTypesOfPlan, outputProblem, quantizeFailureText, writesSafetensors } from '../../src/extension/quantize/quantize-model';
import { planOf } from '../../src/extension/sensitivity/sensitivity-model';
import { sweepResult } from '../fixtures/sensitivity-result';

/** A file system holding exactly `paths`. */
const fs = (...paths: string[]) => (p: string) => paths.includes(p);

test('checkpoint stem: the format extension dropped, sharded indexes too', () => {
  assert.equal(checkpointStem('/m/model.safetensors.index.json'), 'model');
  assert.equal(checkpointStem('/m/stories260K-f32.gguf'), 'stories260K-f32');
  assert.equal(checkpointStem('/m/net.onnx'), 'net');
  assert.equal(checkpointStem('/m/folder'), 'folder');
});

test('default output: beside the input, named after the choice, never an existing path', () => {
  const plan = planOf(sweepResult(), null, [], []).plan;
  assert.equal(defaultOutputFor('/m/model.gguf', { kind: 'gguf', type: 'q4_k_m' }, fs()), '/m/model-Q4_K_M.gguf');
  assert.equal(defaultOutputFor('/m/model.safetensors', { kind: 'safetensors', scheme: 'int4-g128-sym' }, fs()), '/m/model-int4-g128-sym');
  assert.equal(defaultOutputFor('/m/model.safetensors', { kind: 'plan', plan }, fs()), '/m/model-mixed.gguf');
  assert.equal(defaultOutputFor('/m/model.safetensors', { kind: 'plan', plan: { ...plan, target: 'safetensors' } }, fs()), '/m/model-mixed');
  assert.equal(defaultOutputFor('/m/model.gguf', { kind: 'gguf', type: 'Q8_0' }, fs('/m/model-Q8_0.gguf', '/m/model-Q8_0-2.gguf')), '/m/model-Q8_0-3.gguf');
  assert.equal(defaultOutputFor('/m/model.safetensors', { kind: 'safetensors', scheme: 'nf4-g64' }, fs('/m/model-nf4-g64')), '/m/model-nf4-g64-2');
});

test('output path as typed: empty, the input, existing, or in a missing folder are refused', () => {
  const exists = fs('/m', '/m/model.gguf', '/m/old.gguf');
  assert.equal(outputProblem('  ', '/m/model.gguf', exists), 'Give an output path.');
  assert.equal(outputProblem('/m/model.gguf', '/m/model.gguf', exists), 'The output cannot be the input.');
  assert.match(outputProblem('/m/old.gguf', '/m/model.gguf', exists)!, /never overwrites/);
  assert.match(outputProblem('/n/x.gguf', '/m/model.gguf', exists)!, /folder \/n does not exist/);
  assert.equal(outputProblem('/m/new.gguf', '/m/model.gguf', exists), undefined);
});

test('choices: labels, safetensors or GGUF, and a plan carried out as its llama-quantize recipe', () => {
  const { plan } = planOf(sweepResult((name) => (name.includes('layers.1.mlp') ? 100 : 1)), { kind: 'bitsPerWeight', value: 5 }, [], []);
  assert.equal(choiceLabel({ kind: 'gguf', type: 'Q4_K_M' }), 'Q4_K_M');
  assert.equal(choiceLabel({ kind: 'plan', plan }), 'the plan');
  assert.equal(writesSafetensors({ kind: 'safetensors', scheme: 'int8-ch-sym' }), true);
  assert.equal(writesSafetensors({ kind: 'plan', plan }), false);
  const types = ggufTypesOfPlan(plan);
  // every tensor the plan assigns gets that type from the first pattern matching its GGUF name (llama-quantize's rule)
  for (const [name, format] of Object.entries(plan.assignment)) {
    if (name === 'lm_head.weight' && types.outputTensorType) {
      assert.equal(types.outputTensorType, format.toUpperCase());
      continue;
    }
    if (name === 'model.embed_tokens.weight' && types.tokenEmbeddingType) {
      assert.equal(types.tokenEmbeddingType, format.toUpperCase());
      continue;
    }
    const rule = types.tensorTypes?.find((r) => r.pattern.test(describeTensor(name).canonical ?? name));
    assert.ok(rule, `${name}: pinned by a pattern (the preset's mix never decides)`);
    assert.equal(rule.type, format.toUpperCase(), name);
  }
});

test('failure text: the reason first, the folder by its base name', () => {
  assert.equal(
    quantizeFailureText('cannot write /data/ro/model-Q8_0.gguf.tmp: the folder /data/ro is not writable', '/data/ro/model.gguf', '/data/ro/model-Q8_0.gguf'),
    'the folder “ro” is not writable: model.gguf was not quantized (cannot write model-Q8_0.gguf.tmp)',
  );
  assert.equal(quantizeFailureText('no space left', '/m/model.gguf', '/m/out.gguf'), 'model.gguf was not quantized: no space left');
});
