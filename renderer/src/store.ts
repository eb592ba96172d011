import { applyPatches, enablePatches, produceWithPatches, type Draft, type Patch } from 'immer';
import { reconcile } from './model.js';

enablePatches();

export type ChangeKind = 'edit' | 'undo' | 'redo' | 'reset';

export interface Change {
  kind: ChangeKind;
  label: string;
  patches: Patch[];
}

interface Step {
  label: string;
  patches: Patch[];
  inverse: Patch[];
}

/**
 * Immutable document state with undo/redo as immer patches: every edit stores the forward and inverse
 * patches, so history costs the size of the changes, not of the graph.
 */
export class UndoableStore<T extends object> {
  private undoStack: Step[] = [];
  private redoStack: Step[] = [];
  private readonly listeners = new Set<(state: T, change: Change) => void>();

  constructor(
    private current: T,
    private readonly limit = 300,
  ) {}

  get state(): T {
    return this.current;
  }

  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  get canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  /** Labels of the undoable steps, oldest first (for the UI and tests). */
  history(): string[] {
    return this.undoStack.map((s) => s.label);
  }

  subscribe(listener: (state: T, change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Applies `recipe` as one undoable step; a recipe that changes nothing records nothing. */
  update(label: string, recipe: (draft: Draft<T>) => void): boolean {
    const [next, patches, inverse] = produceWithPatches(this.current, recipe);
    if (patches.length === 0) return false;
    this.current = next;
    this.undoStack.push({ label, patches, inverse });
    if (this.undoStack.length > this.limit) this.undoStack.shift();
    this.redoStack = [];
    this.emit({ kind: 'edit', label, patches });
    return true;
  }

  /** Makes the state equal to `next` (a fresh snapshot of the document) as one undoable step. */
  commit(label: string, next: T): boolean {
    return this.update(label, (draft) => reconcile(draft as Record<string, unknown>, next as Record<string, unknown>));
  }

  /** Starts a new document: `state` becomes current and history is dropped (the first load is not undoable). */
  reset(label: string, state: T): void {
    this.current = state;
    this.undoStack = [];
    this.redoStack = [];
    this.emit({ kind: 'reset', label, patches: [] });
  }

  undo(): boolean {
    const step = this.undoStack.pop();
    if (!step) return false;
    this.current = applyPatches(this.current, step.inverse);
    this.redoStack.push(step);
    this.emit({ kind: 'undo', label: step.label, patches: step.inverse });
    return true;
  }

  redo(): boolean {
    const step = this.redoStack.pop();
    if (!step) return false;
    this.current = applyPatches(this.current, step.patches);
    this.undoStack.push(step);
    this.emit({ kind: 'redo', label: step.label, patches: step.patches });
    return true;
  }

  private emit(change: Change): void {
    for (const l of [...this.listeners]) l(this.current, change);
  }
}
