import { LGraphNode, LiteGraph } from '@comfyorg/litegraph';
import type { NodeDefinition } from '../../nodes/registry.js';
import type { ComboInputSpec } from '../../nodes/spec.js';
import { typeColor } from './colors.js';
import type { NodeLibrary } from './defs.js';
import { addInputWidget, addUploadButton, type WidgetHooks } from './widgets.js';

/** What the canvas shows about a node that is not part of the document: run state, images, errors. */
export interface NodeRunState {
  executing: boolean;
  images: HTMLImageElement[];
  /** Validation or execution messages, drawn under the node. */
  errors: string[];
}

export interface NodeTypeHooks extends WidgetHooks {
  /** A LoadImage-style node picked an input file: show it. */
  inputImageChanged(node: LGraphNode, comboName: string): void;
}

export type ResflowNode = LGraphNode & { resflow: NodeRunState };

export function runState(node: LGraphNode): NodeRunState {
  const n = node as ResflowNode;
  n.resflow ??= { executing: false, images: [], errors: [] };
  return n.resflow;
}

const MIN_WIDTH = 240;
const IMAGE_AREA = 256;

function drawImages(node: LGraphNode, ctx: CanvasRenderingContext2D): void {
  const state = runState(node);
  const images = state.images.filter((img) => img.complete && img.naturalWidth > 0);
  if (images.length === 0 || node.flags.collapsed) return;
  const top = node.computeSize()[1] + 6;
  const width = node.size[0] - 12;
  const height = node.size[1] - top - 6;
  if (height < 16 || width < 16) return;
  const cols = Math.ceil(Math.sqrt(images.length));
  const rows = Math.ceil(images.length / cols);
  const cellW = width / cols;
  const cellH = height / rows;
  images.forEach((img, i) => {
    const scale = Math.min(cellW / img.naturalWidth, cellH / img.naturalHeight);
    const w = img.naturalWidth * scale;
    const h = img.naturalHeight * scale;
    const x = 6 + (i % cols) * cellW + (cellW - w) / 2;
    const y = top + Math.floor(i / cols) * cellH + (cellH - h) / 2;
    ctx.drawImage(img, x, y, w, h);
  });
}

function drawErrors(node: LGraphNode, ctx: CanvasRenderingContext2D): void {
  const { errors } = runState(node);
  if (errors.length === 0) return;
  ctx.save();
  ctx.font = '12px sans-serif';
  ctx.fillStyle = '#ff6b6b';
  errors.slice(0, 4).forEach((e, i) => ctx.fillText(e, 4, node.size[1] + 16 + i * 15, Math.max(node.size[0], 360)));
  ctx.restore();
}

/** Makes room for images on nodes that show them, once, so results are visible without resizing by hand. */
export function ensureImageRoom(node: LGraphNode): boolean {
  const needed = node.computeSize()[1] + 6 + 128;
  if (node.size[1] >= needed) return false;
  node.setSize([Math.max(node.size[0], MIN_WIDTH), node.computeSize()[1] + 6 + IMAGE_AREA]);
  return true;
}

function showsImages(def: NodeDefinition): boolean {
  return def.outputNode || def.inputs.some((i) => i.spec.type === 'COMBO' && (i.spec as ComboInputSpec).image_upload);
}

function build(node: LGraphNode, def: NodeDefinition, hooks: NodeTypeHooks): void {
  runState(node);
  node.serialize_widgets = true;
  for (const input of def.inputs) {
    if (input.widget) continue;
    const slot = node.addInput(input.name, input.spec.type);
    if (!input.required) (slot as { shape?: number }).shape = LiteGraph.ROUND_SHAPE;
  }
  for (const input of def.inputs) if (input.widget) addInputWidget(node, input, hooks);
  for (const input of def.inputs) {
    if (input.spec.type === 'COMBO' && (input.spec as ComboInputSpec).image_upload) {
      addUploadButton(node, input.name, hooks);
      const combo = node.widgets?.find((w: { name: string }) => w.name === input.name);
      if (combo) {
        const original = combo.callback;
        combo.callback = (...args: Parameters<NonNullable<typeof original>>) => {
          original?.(...args);
          hooks.inputImageChanged(node, input.name);
        };
      }
    }
  }
  for (const output of def.outputs) {
    const slot = node.addOutput(output.name, output.type);
    if (output.isList) (slot as { shape?: number }).shape = LiteGraph.GRID_SHAPE;
  }
  node.strokeStyles.executing = function (this: LGraphNode) {
    return runState(this).executing ? { color: '#5fd35f', padding: 8, lineWidth: 4 } : undefined;
  };
  node.onDrawBackground = function (this: LGraphNode, ctx: CanvasRenderingContext2D) {
    drawImages(this, ctx);
  };
  node.onDrawForeground = function (this: LGraphNode, ctx: CanvasRenderingContext2D) {
    drawErrors(this, ctx);
  };
  const size = node.computeSize();
  node.size = [Math.max(size[0], MIN_WIDTH), size[1] + (showsImages(def) ? IMAGE_AREA : 0)];
}

/**
 * Registers one litegraph node class per node type of the library. Slots carry the spec's types, so
 * litegraph's own type check (which matches ours, `*` and comma unions included) refuses wrong links.
 */
export function registerNodeTypes(lib: NodeLibrary, hooks: NodeTypeHooks): void {
  for (const name of lib.names()) {
    const def = lib.get(name)!;
    const NodeClass = class extends LGraphNode {
      constructor(title?: string) {
        super(title ?? def.displayName);
        build(this, def, hooks);
      }
      onConfigure(): void {
        for (const input of def.inputs) {
          if (input.spec.type === 'COMBO' && (input.spec as ComboInputSpec).image_upload) hooks.inputImageChanged(this, input.name);
        }
      }
    };
    Object.defineProperty(NodeClass, 'name', { value: `ResFlow_${name.replace(/\W/g, '_')}` });
    (NodeClass as unknown as { title: string }).title = def.displayName;
    LiteGraph.registerNodeType(name, NodeClass as unknown as typeof LGraphNode);
    // litegraph derives a category from slashes in the type name; ours comes from the spec.
    (NodeClass as unknown as { category: string }).category = def.spec.category;
    (NodeClass as unknown as { description: string }).description = def.spec.description ?? '';
  }
}

/** Slot and link colours by type, for the types the library uses. */
export function registerTypeColors(lib: NodeLibrary, canvas: { default_connection_color_byType: Record<string, string> }, linkColors: Record<string, string>): void {
  const types = new Set<string>();
  for (const name of lib.names()) {
    const def = lib.get(name)!;
    for (const i of def.inputs) types.add(i.spec.type);
    for (const o of def.outputs) types.add(o.type);
  }
  for (const type of types) {
    if (type === '*' || type === 'COMBO') continue;
    canvas.default_connection_color_byType[type] = typeColor(type);
    linkColors[type] = typeColor(type);
  }
}
