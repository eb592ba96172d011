import { button, el } from './dom.js';

export interface ViewerImage {
  src: string;
  label: string;
}

type Mode = 'single' | 'side' | 'slider';

/**
 * A full-window viewer for output images. With two or more images it compares a pair (A | B, e.g.
 * Base | ResAdapter) side by side, or stacked under a slider that reveals B over A. Escape, the close
 * button or a click on the backdrop closes it.
 */
export class ImageViewer {
  private root?: HTMLElement;
  private images: ViewerImage[] = [];
  private mode: Mode = 'single';
  private a = 0;
  private b = 1;
  private split = 50;
  private readonly onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape') this.close();
  };

  open(images: ViewerImage[], first = 0): void {
    if (images.length === 0) return;
    this.images = images;
    this.a = Math.min(first, images.length - 1);
    this.b = images.length > 1 ? (this.a + 1) % images.length : this.a;
    this.mode = images.length > 1 ? 'side' : 'single';
    this.split = 50;
    this.root?.remove();
    this.root = el('div', { class: 'viewer', role: 'dialog', 'aria-label': 'Image viewer', 'aria-modal': 'true' });
    this.root.addEventListener('click', (e) => e.target === this.root && this.close());
    document.body.append(this.root);
    window.addEventListener('keydown', this.onKey);
    this.render();
  }

  get isOpen(): boolean {
    return Boolean(this.root?.isConnected);
  }

  close(): void {
    this.root?.remove();
    this.root = undefined;
    window.removeEventListener('keydown', this.onKey);
  }

  private picker(which: 'a' | 'b'): HTMLSelectElement {
    const select = el('select', { class: `viewer-pick-${which}`, 'aria-label': which === 'a' ? 'Image A' : 'Image B' });
    this.images.forEach((img, i) => select.append(el('option', { value: String(i), text: img.label })));
    select.value = String(which === 'a' ? this.a : this.b);
    select.addEventListener('change', () => {
      if (which === 'a') this.a = Number(select.value);
      else this.b = Number(select.value);
      this.render();
    });
    return select;
  }

  private render(): void {
    if (!this.root) return;
    const modes: [Mode, string][] = [['single', 'Single'], ['side', 'Side by side'], ['slider', 'Slider']];
    const bar = el('div', { class: 'viewer-bar' }, [
      ...(this.images.length > 1
        ? modes.map(([m, label]) => button(label, () => ((this.mode = m), this.render()), { class: m === this.mode ? 'primary' : '', 'data-mode': m }))
        : []),
      this.picker('a'),
      this.mode !== 'single' ? this.picker('b') : undefined,
      button('Close', () => this.close(), { class: 'viewer-close' }),
    ].filter((x): x is HTMLButtonElement | HTMLSelectElement => Boolean(x)));
    const A = this.images[this.a]!;
    const B = this.images[this.b]!;
    const figure = (img: ViewerImage, cls: string) => el('figure', { class: cls }, [el('img', { src: img.src, alt: img.label }), el('figcaption', { text: img.label })]);
    let stage: HTMLElement;
    if (this.mode === 'single') stage = el('div', { class: 'viewer-stage single' }, [figure(A, 'viewer-a')]);
    else if (this.mode === 'side') stage = el('div', { class: 'viewer-stage side' }, [figure(A, 'viewer-a'), figure(B, 'viewer-b')]);
    else {
      const top = el('img', { class: 'viewer-slider-b', src: B.src, alt: B.label });
      top.style.clipPath = `inset(0 0 0 ${this.split}%)`;
      const range = el('input', { type: 'range', min: '0', max: '100', value: String(this.split), class: 'viewer-range', 'aria-label': 'Reveal B' });
      range.addEventListener('input', () => {
        this.split = Number(range.value);
        top.style.clipPath = `inset(0 0 0 ${this.split}%)`;
      });
      stage = el('div', { class: 'viewer-stage slider' }, [
        el('div', { class: 'viewer-slider-box' }, [el('img', { class: 'viewer-slider-a', src: A.src, alt: A.label }), top]),
        el('div', { class: 'viewer-slider-labels' }, [el('span', { text: `A: ${A.label}` }), range, el('span', { text: `B: ${B.label}` })]),
      ]);
    }
    this.root.replaceChildren(el('div', { class: 'viewer-panel' }, [bar, stage]));
  }
}
