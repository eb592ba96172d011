import { LGraphNode, LiteGraph } from '@comfyorg/litegraph';
import { VIRTUAL_NODE_TYPES } from '../../runtime/workflow/editor-to-api.js';
import type { NodeLibrary } from './defs.js';
import type { WidgetHooks } from './widgets.js';
import { addInputWidget } from './widgets.js';

/**
 * Editor-only nodes ComfyUI workflows commonly contain: notes and reroutes. They never reach the
 * server (editorToApi skips them and follows links through reroutes); registering them here keeps
 * such workflows editable instead of showing them as missing nodes.
 */
export function registerFrontendNodes(hooks: WidgetHooks): void {
  for (const type of ['Note', 'MarkdownNote']) {
    const NoteNode = class extends LGraphNode {
      constructor(title?: string) {
        super(title ?? type);
        setupNote(this as unknown as LGraphNode, hooks);
      }
    };
    LiteGraph.registerNodeType(type, NoteNode as unknown as typeof LGraphNode);
    (NoteNode as unknown as { category: string }).category = 'utils';
  }

  const RerouteNode = class extends LGraphNode {
    constructor(title?: string) {
      super(title ?? 'Reroute');
      setupReroute(this as unknown as LGraphNode);
    }
  };
  LiteGraph.registerNodeType('Reroute', RerouteNode as unknown as typeof LGraphNode);
  (RerouteNode as unknown as { category: string }).category = 'utils';
}

function setupNote(node: LGraphNode, hooks: WidgetHooks): void {
  node.serialize_widgets = true;
  (node as { isVirtualNode?: boolean }).isVirtualNode = true;
  node.color = '#432';
  node.bgcolor = '#653';
  addInputWidget(node, { name: 'text', spec: { type: 'STRING', multiline: true, default: '' }, required: true, widget: true }, hooks);
  node.size = [360, 120];
}

function setupReroute(node: LGraphNode): void {
  (node as { isVirtualNode?: boolean }).isVirtualNode = true;
  node.addInput('', '*');
  node.addOutput('', '*');
  node.size = [75, 26];
}

/** Node types in a workflow that neither the server nor the editor knows. */
export function missingNodeTypes(types: Iterable<string>, lib: NodeLibrary): string[] {
  const known = new Set(['Note', 'MarkdownNote', 'Reroute']);
  const missing = new Set<string>();
  for (const t of types) if (!lib.get(t) && !known.has(t) && !(VIRTUAL_NODE_TYPES.has(t) && t !== 'PrimitiveNode')) missing.add(t);
  return [...missing].sort();
}
