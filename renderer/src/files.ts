import { importWorkflow } from '../../runtime/workflow/import.js';
import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import type { NodeLibrary } from './defs.js';
import { readPngTextChunks } from './png-text.js';

/** What the Electron preload exposes (electron/preload.ts); absent in a plain browser. */
export interface ShellBridge {
  openWorkflow(): Promise<{ name: string; data: ArrayBuffer } | null>;
  saveWorkflow(suggestedName: string, text: string, saveAs: boolean): Promise<string | null>;
  onMenu(listener: (command: 'open' | 'save' | 'save-as' | 'queue' | 'interrupt') => void): void;
}

declare global {
  interface Window {
    resflowShell?: ShellBridge;
  }
}

export interface LoadedWorkflow {
  workflow: EditorWorkflow;
  format: 'editor' | 'api';
  warnings: string[];
}

function isPng(name: string, bytes: Uint8Array): boolean {
  return name.toLowerCase().endsWith('.png') || (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47);
}

/**
 * A workflow from a dropped or opened file: a `.json` in either format, or a PNG carrying ComfyUI's
 * `workflow` chunk (or, failing that, its `prompt` chunk, which is laid out automatically).
 */
export async function loadWorkflowFile(name: string, data: ArrayBuffer, lib: NodeLibrary): Promise<LoadedWorkflow> {
  const bytes = new Uint8Array(data);
  let candidates: string[];
  if (isPng(name, bytes)) {
    const chunks = await readPngTextChunks(data);
    candidates = ['workflow', 'prompt'].map((k) => chunks.get(k)).filter((t): t is string => t !== undefined);
    if (candidates.length === 0) throw new Error(`${name} has no embedded workflow`);
  } else {
    candidates = [new TextDecoder().decode(bytes)];
  }
  let lastError = '';
  for (const text of candidates) {
    const imported = importWorkflow(text, lib.registry);
    if (imported.success) return { workflow: imported.data.workflow, format: imported.data.format, warnings: imported.data.warnings };
    lastError = imported.error.message;
  }
  throw new Error(`${name}: ${lastError}`);
}

export function downloadText(fileName: string, text: string, type = 'application/json'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Lets the user pick a file in the browser (the Electron shell uses its own dialog instead). */
export function pickFile(accept: string): Promise<File | null> {
  return new Promise((resolve) => {
    const input = document.createElement('input');
    input.type = 'file';
    input.accept = accept;
    input.addEventListener('change', () => resolve(input.files?.[0] ?? null));
    input.click();
  });
}
