/** ComfyUI websocket messages the editor reacts to, plus decoded binary previews. */
export type ServerMessage =
  | { type: 'status'; data: { status: { exec_info: { queue_remaining: number } }; sid?: string } }
  | { type: 'execution_start'; data: { prompt_id: string } }
  | { type: 'execution_cached'; data: { prompt_id: string; nodes: string[] } }
  | { type: 'executing'; data: { prompt_id: string; node: string | null } }
  | { type: 'progress'; data: { prompt_id: string; node: string; value: number; max: number } }
  | { type: 'executed'; data: { prompt_id: string; node: string; output: Record<string, unknown[]> } }
  | { type: 'execution_success'; data: { prompt_id: string } }
  | { type: 'execution_error'; data: { prompt_id: string; node_id: string; node_type: string; exception_message: string; exception_type: string } }
  | { type: 'execution_interrupted'; data: { prompt_id: string; node_id: string } }
  | { type: 'preview'; data: { blob: Blob } };

const PREVIEW_IMAGE = 1;
const MIME: Record<number, string> = { 1: 'image/jpeg', 2: 'image/png' };

/** Decodes ComfyUI's binary preview frame: event type, image type, image bytes (all big-endian words). */
export function decodeBinaryFrame(buffer: ArrayBuffer): ServerMessage | undefined {
  if (buffer.byteLength < 8) return undefined;
  const view = new DataView(buffer);
  if (view.getUint32(0) !== PREVIEW_IMAGE) return undefined;
  const mime = MIME[view.getUint32(4)] ?? 'image/jpeg';
  return { type: 'preview', data: { blob: new Blob([buffer.slice(8)], { type: mime }) } };
}

/** A websocket to the server that reconnects with backoff and keeps its client id across reconnects. */
export class ServerSocket {
  private ws?: WebSocket;
  private retry = 0;
  private closed = false;
  private readonly listeners = new Set<(m: ServerMessage) => void>();
  private readonly stateListeners = new Set<(connected: boolean) => void>();

  constructor(private readonly clientId: string) {}

  connect(): void {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws?clientId=${encodeURIComponent(this.clientId)}`;
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      for (const l of this.stateListeners) l(true);
    };
    ws.onmessage = (event) => {
      let msg: ServerMessage | undefined;
      if (event.data instanceof ArrayBuffer) msg = decodeBinaryFrame(event.data);
      else {
        try {
          msg = JSON.parse(String(event.data)) as ServerMessage;
        } catch {
          return;
        }
      }
      if (msg) for (const l of [...this.listeners]) l(msg);
    };
    ws.onclose = () => {
      for (const l of this.stateListeners) l(false);
      if (this.closed) return;
      const delay = Math.min(10_000, 300 * 2 ** this.retry++);
      setTimeout(() => this.connect(), delay);
    };
  }

  onMessage(listener: (m: ServerMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onConnection(listener: (connected: boolean) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}
