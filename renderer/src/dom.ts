/** Tiny DOM helpers: the editor's panels are plain elements, no framework. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> & { class?: string; text?: string; title?: string } = {},
  children: (Node | string | undefined | false)[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== undefined && c !== false) node.append(c);
  return node;
}

export function button(label: string, onClick: () => void, props: Record<string, string> = {}): HTMLButtonElement {
  const b = el('button', { type: 'button', ...props, text: label });
  b.addEventListener('click', onClick);
  return b;
}

export type ToastKind = 'info' | 'error' | 'success';

/** Short-lived messages in the corner; errors stay until clicked. */
export function toast(message: string, kind: ToastKind = 'info', ms = 4000): HTMLElement {
  let host = document.getElementById('toasts');
  if (!host) {
    host = el('div', { id: 'toasts' });
    document.body.append(host);
  }
  const item = el('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', text: message });
  item.addEventListener('click', () => item.remove());
  host.append(item);
  if (kind !== 'error') setTimeout(() => item.remove(), ms);
  return item;
}
