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

/** How long toasts stay: errors longer (they matter more), but nothing stays on screen forever. */
export const TOAST_MS: Record<ToastKind, number> = { info: 4000, success: 4000, error: 12000 };

/** Messages in the corner: each closes on click or with its × button, and expires on its own. */
export function toast(message: string, kind: ToastKind = 'info', ms = TOAST_MS[kind]): HTMLElement {
  let host = document.getElementById('toasts');
  if (!host) {
    host = el('div', { id: 'toasts' });
    document.body.append(host);
  }
  const close = el('button', { type: 'button', class: 'toast-close', 'aria-label': 'Close', text: '×' });
  const item = el('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, [el('span', { class: 'toast-text', text: message }), close]);
  item.addEventListener('click', () => item.remove());
  host.append(item);
  setTimeout(() => item.remove(), ms);
  return item;
}

/** Removes the toasts of one kind (errors, once a later run succeeded). */
export function clearToasts(kind: ToastKind): void {
  document.querySelectorAll(`#toasts .toast-${kind}`).forEach((t) => t.remove());
}
