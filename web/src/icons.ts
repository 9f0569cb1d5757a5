/** Inline SVG icons (no icon font and no emoji, so they look the same everywhere). */

const NS = 'http://www.w3.org/2000/svg';

/** Stroked outlines, except where noted. */
const ICONS = {
  check: ['M5 12.5l4.5 4.5L19.5 7'],
  checks: ['M1.5 12.5L6 17l10-10', 'M10.5 16l1 1 10-10'],
  clock: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18', 'M12 7v5l3 2'],
  alert: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18', 'M12 7.5v5.5', 'M12 16.5v.5'],
  image: ['M4 5h16v14H4z', 'M4 16l5-5 4 4 2-2 5 5', 'M15.5 8.5a1 1 0 1 0 0 .1'],
  send: ['M3 20.5L21 12 3 3.5l2.5 8.5z', 'M5.5 12H12'],
  plus: ['M12 5v14', 'M5 12h14'],
  users: ['M9 11a3.5 3.5 0 1 0 0-7a3.5 3.5 0 1 0 0 7', 'M2.5 20c.5-4 3-6 6.5-6s6 2 6.5 6', 'M16 4.5a3.5 3.5 0 0 1 0 6.5', 'M18 14.5c2 .8 3.2 2.6 3.5 5.5'],
} as const;

export type IconName = keyof typeof ICONS;

export function icon(name: IconName, cls = ''): SVGSVGElement {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', `icon icon-${name} ${cls}`.trim());
  svg.setAttribute('fill', 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', '2');
  svg.setAttribute('stroke-linecap', 'round');
  svg.setAttribute('stroke-linejoin', 'round');
  for (const d of ICONS[name]) {
    const path = document.createElementNS(NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}
