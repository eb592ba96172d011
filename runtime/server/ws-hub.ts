import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { WebSocket } from 'ws';
import type { PreviewImage } from '../nodes-api/spec.js';
import type { ExecutorEvent } from '../executor/events.js';
import type { ServerQueue } from './server-queue.js';

/** ComfyUI's BinaryEventTypes.PREVIEW_IMAGE and its image type codes. */
export const BINARY_PREVIEW_IMAGE = 1;
export const PREVIEW_FORMAT_CODES = { JPEG: 1, PNG: 2 } as const;

// Previews are disposable: a client this far behind gets the next one instead of a growing backlog.
const PREVIEW_BACKLOG_BYTES = 4 * 1024 * 1024;

/** The binary frame ComfyUI sends for a sampler preview: event type, image type, image bytes. */
export function encodePreviewFrame(format: keyof typeof PREVIEW_FORMAT_CODES, data: Uint8Array): Buffer {
  const frame = Buffer.alloc(8 + data.byteLength);
  frame.writeUInt32BE(BINARY_PREVIEW_IMAGE, 0);
  frame.writeUInt32BE(PREVIEW_FORMAT_CODES[format], 4);
  frame.set(data, 8);
  return frame;
}

export function clientIdFrom(value: string | null): string {
  return value && /^[\w-]{1,128}$/.test(value) ? value : randomUUID().replace(/-/g, '');
}

/**
 * The websocket side of the server: clients by `clientId` (ComfyUI's sid), queue status broadcasts,
 * and executor events forwarded with ComfyUI's routing (to the client that queued the prompt, to
 * everybody when the prompt named no client).
 */
export class WsHub {
  private readonly clients = new Map<string, Set<WebSocket>>();
  private executing?: { prompt_id: string; node: string; sid?: string };

  constructor(
    private readonly queue: ServerQueue,
    private readonly features: Record<string, unknown>,
  ) {}

  attach(ws: WebSocket, sid: string): void {
    let set = this.clients.get(sid);
    if (!set) this.clients.set(sid, (set = new Set()));
    set.add(ws);
    ws.on('close', () => {
      set.delete(ws);
      if (set.size === 0 && this.clients.get(sid) === set) this.clients.delete(sid);
    });
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => this.onMessage(ws, data, isBinary));
    this.sendTo(ws, 'status', { status: { exec_info: { queue_remaining: this.queue.remaining() } }, sid });
    // A client reconnecting mid-run learns which node is executing, as ComfyUI does.
    if (this.executing && this.executing.sid === sid) this.sendTo(ws, 'executing', { node: this.executing.node, display_node: this.executing.node, prompt_id: this.executing.prompt_id });
  }

  get connected(): number {
    let n = 0;
    for (const set of this.clients.values()) n += set.size;
    return n;
  }

  broadcastStatus(): void {
    this.send('status', { status: { exec_info: { queue_remaining: this.queue.remaining() } } });
  }

  /** Sends to one client id, or to everybody when `sid` is undefined. */
  send(type: string, data: unknown, sid?: string): void {
    const text = JSON.stringify({ type, data });
    for (const ws of this.targets(sid)) if (ws.readyState === WebSocket.OPEN) ws.send(text);
  }

  forward(event: ExecutorEvent): void {
    const sid = this.queue.ownerOf(event.data.prompt_id);
    if (event.type === 'executing') {
      this.executing = event.data.node === null ? undefined : { prompt_id: event.data.prompt_id, node: event.data.node, sid };
    }
    if (event.type === 'preview_image') {
      void this.sendPreview(event.data.image, sid);
      return;
    }
    this.send(event.type, event.data, sid);
  }

  close(): void {
    for (const set of this.clients.values()) {
      for (const ws of set) {
        ws.close(1001, 'server shutting down');
        // A peer that never completes the closing handshake must not keep the process alive.
        setTimeout(() => ws.terminate(), 1000).unref();
      }
    }
    this.clients.clear();
  }

  private async sendPreview(image: PreviewImage, sid?: string): Promise<void> {
    let format: keyof typeof PREVIEW_FORMAT_CODES;
    let data: Uint8Array;
    if (image.format === 'WEBP') {
      // ComfyUI's frame only knows JPEG and PNG.
      try {
        data = await sharp(image.data).jpeg({ quality: 90 }).toBuffer();
      } catch {
        return;
      }
      format = 'JPEG';
    } else {
      format = image.format;
      data = image.data;
    }
    const frame = encodePreviewFrame(format, data);
    for (const ws of this.targets(sid)) {
      if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < PREVIEW_BACKLOG_BYTES) ws.send(frame, { binary: true });
    }
  }

  private targets(sid?: string): Iterable<WebSocket> {
    if (sid === undefined) return [...this.clients.values()].flatMap((s) => [...s]);
    return [...(this.clients.get(sid) ?? [])];
  }

  private sendTo(ws: WebSocket, type: string, data: unknown): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type, data }));
  }

  /** Clients may announce feature flags (ComfyUI's handshake); we answer with ours and ignore the rest. */
  private onMessage(ws: WebSocket, data: unknown, isBinary: boolean): void {
    if (isBinary) return;
    try {
      const msg = JSON.parse(String(data)) as { type?: unknown };
      if (msg?.type === 'feature_flags') this.sendTo(ws, 'feature_flags', this.features);
    } catch {
      // not JSON: nothing a client can ask us over the socket
    }
  }
}
