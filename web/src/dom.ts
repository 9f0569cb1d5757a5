/** A tiny DOM builder: text always goes in as text (never HTML), so message content cannot inject markup. */

export type Child = Node | string | number | null | undefined | false;
type Handler = (ev: Event) => void;
export type Props = Record<string, string | number | boolean | Handler | null | undefined>;

/**
 * `h('button', { class: 'x', 'data-id': 'a', onclick: fn, disabled: true }, 'Send')`.
 * `on…` functions become listeners, `true` an empty attribute, `false`/null/undefined nothing.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

/** Replaces the children of `el`. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A round avatar with the initial of `name`, coloured by a hash of it. */
export function avatar(name: string, group = false): HTMLElement {
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) | 0;
  const el = h('span', { class: `avatar hue-${Math.abs(hash) % 8}`, 'aria-hidden': 'true' }, group ? '#' : (name[0] ?? '?').toUpperCase());
  return el;
}
