/**
 * Error shapes shared with ComfyUI's HTTP API: the server returns these from `POST /prompt` unchanged,
 * and the editor highlights nodes and inputs from `node_errors[id].errors[].extra_info.input_name`.
 */

export type PromptErrorType =
  | 'invalid_prompt'
  | 'missing_node_type'
  | 'prompt_no_outputs'
  | 'prompt_outputs_failed_validation'
  | 'required_input_missing'
  | 'bad_linked_input'
  | 'return_type_mismatch'
  | 'invalid_input_type'
  | 'value_smaller_than_min'
  | 'value_bigger_than_max'
  | 'value_not_in_list'
  | 'dependency_cycle'
  | 'exception_during_validation';

export interface PromptError {
  type: PromptErrorType;
  message: string;
  details: string;
  extra_info: Record<string, unknown>;
}

export interface NodeError {
  errors: PromptError[];
  /** Output nodes that will not run because of this node. */
  dependent_outputs: string[];
  class_type: string;
}

export type NodeErrors = Record<string, NodeError>;

/** Thrown by `ctx.progress` (and reported instead of any error) once a run has been interrupted. */
export class InterruptedError extends Error {
  constructor(message = 'Processing interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}

/** ComfyUI's format_value: primitives pass through, anything else becomes a short description. */
export function formatValue(value: unknown): string | number | boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return `[Array(${value.length})]`;
  if (ArrayBuffer.isView(value)) return `[${value.constructor.name}(${(value as ArrayBufferView).byteLength} bytes)]`;
  if (typeof value === 'object') {
    const own = (value as { toString?: () => string }).toString;
    if (typeof own === 'function' && own !== Object.prototype.toString) {
      try {
        return String(value);
      } catch {
        // fall through to the constructor name
      }
    }
    return `[${value.constructor?.name ?? 'Object'}]`;
  }
  return String(value);
}
