import { wireInput } from '../nodes-api/registry.js';
import type { ComboValue, WidgetInputSpec } from '../nodes-api/spec.js';
import type { PromptError } from './errors.js';
import type { WidgetValue } from './graph.js';

export type WidgetCheck = { ok: true; value: WidgetValue } | { ok: false; error: PromptError };

// ComfyUI stops echoing combo lists past this size: a model folder listing would bloat every error.
const MAX_LISTED_CHOICES = 20;

function convert(spec: WidgetInputSpec, raw: unknown): WidgetValue | undefined {
  switch (spec.type) {
    case 'INT':
      if (typeof raw === 'number') return Number.isInteger(raw) ? raw : undefined;
      if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) return Number(raw);
      return undefined;
    case 'FLOAT':
      if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
      if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
      return undefined;
    case 'STRING':
      if (typeof raw === 'string') return raw;
      if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
      return undefined;
    case 'BOOLEAN':
      return typeof raw === 'boolean' ? raw : undefined;
    case 'COMBO':
      return typeof raw === 'string' || typeof raw === 'number' ? raw : undefined;
  }
}

function describe(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
}

/**
 * Converts a literal from the prompt to what the node will receive, and checks range and choices,
 * with ComfyUI's error types and messages so existing clients understand them.
 */
export function checkWidgetValue(name: string, spec: WidgetInputSpec, raw: unknown, choices?: readonly ComboValue[]): WidgetCheck {
  const inputConfig = wireInput(spec, choices);
  const value = convert(spec, raw);
  if (value === undefined) {
    return {
      ok: false,
      error: {
        type: 'invalid_input_type',
        message: `Failed to convert an input value to a ${spec.type} value`,
        details: `${name}, ${describe(raw)}, not a valid ${spec.type}`,
        extra_info: { input_name: name, input_config: inputConfig, received_value: raw },
      },
    };
  }
  if ((spec.type === 'INT' || spec.type === 'FLOAT') && typeof value === 'number') {
    if (spec.min !== undefined && value < spec.min) {
      return {
        ok: false,
        error: {
          type: 'value_smaller_than_min',
          message: `Value ${value} smaller than min of ${spec.min}`,
          details: name,
          extra_info: { input_name: name, input_config: inputConfig, received_value: value },
        },
      };
    }
    if (spec.max !== undefined && value > spec.max) {
      return {
        ok: false,
        error: {
          type: 'value_bigger_than_max',
          message: `Value ${value} bigger than max of ${spec.max}`,
          details: name,
          extra_info: { input_name: name, input_config: inputConfig, received_value: value },
        },
      };
    }
  }
  if (spec.type === 'COMBO') {
    const list = choices ?? [];
    // "512" and 512 name the same choice; the node receives the choice as declared.
    const match = list.find((c) => c === value) ?? list.find((c) => String(c) === String(value));
    if (match === undefined) {
      const long = list.length > MAX_LISTED_CHOICES;
      return {
        ok: false,
        error: {
          type: 'value_not_in_list',
          message: 'Value not in list',
          details: `${name}: '${value}' not in ${long ? `(list of length ${list.length})` : JSON.stringify(list)}`,
          extra_info: { input_name: name, input_config: long ? null : inputConfig, received_value: value },
        },
      };
    }
    return { ok: true, value: match };
  }
  return { ok: true, value };
}
