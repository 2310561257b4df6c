// A small markdown renderer for the triage notes, which come from a model and may echo what a
// ticket said. It builds DOM nodes for a safe subset: paragraphs, headings (as small headings),
// bullet and numbered lists, bold, italic, inline code, code blocks, and links to http(s) only.
// Anything else stays text.

import { h } from './dom.js';

export function renderMarkdown(source) {
  const root = document.createDocumentFragment();
  const lines = String(source || '').replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  let paragraph = [];
  let list = null;

  const flushParagraph = () => {
    if (paragraph.length) {
      root.append(h('p', null, inline(paragraph.join(' '))));
      paragraph = [];
    }
  };
  const flushList = () => {
    if (list) {
      root.append(list);
      list = null;
    }
  };

  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)/);
    if (fence) {
      flushParagraph();
      flushList();
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) {
        code.push(lines[i]);
        i += 1;
      }
      i += 1;
      root.append(h('pre', { class: 'md-code' }, h('code', null, code.join('\n'))));
      continue;
    }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
    const bullet = line.match(/^\s*[-*+]\s+(.*)$/);
    const numbered = line.match(/^\s*(\d{1,9})[.)]\s+(.*)$/);
    if (heading) {
      flushParagraph();
      flushList();
      root.append(h('p', { class: 'md-heading' }, h('strong', null, inline(heading[2]))));
    } else if (bullet || numbered) {
      flushParagraph();
      const tag = bullet ? 'ul' : 'ol';
      if (!list || list.tagName.toLowerCase() !== tag) {
        flushList();
        list = h(tag, { class: 'md-list' });
        if (numbered && numbered[1] !== '1') list.setAttribute('start', numbered[1]);
      }
      list.append(h('li', null, inline(bullet ? bullet[1] : numbered[2])));
    } else if (!line.trim()) {
      flushParagraph();
      flushList();
    } else if (list && /^\s{2,}\S/.test(line)) {
      // A continuation line of the last list item.
      const last = list.lastElementChild;
      last.append(' ', ...inline(line.trim()));
    } else {
      flushList();
      paragraph.push(line.trim());
    }
    i += 1;
  }
  flushParagraph();
  flushList();
  return root;
}

const INLINE = /`([^`\n]+)`|\[([^\]\n]+)\]\(([^)\s]+)\)|\*\*(.+?)\*\*|__(.+?)__|\*([^*\s](?:[^*]*[^*\s])?)\*|\b_([^_\s](?:[^_]*[^_\s])?)_\b/g;

/** Inline spans of one block, as an array of nodes. */
export function inline(text, depth = 0) {
  const out = [];
  let last = 0;
  INLINE.lastIndex = 0;
  const source = String(text);
  const matches = [...source.matchAll(INLINE)];
  for (const m of matches) {
    if (m.index > last) out.push(document.createTextNode(source.slice(last, m.index)));
    last = m.index + m[0].length;
    const nested = (t) => (depth < 4 ? inline(t, depth + 1) : [document.createTextNode(t)]);
    if (m[1] !== undefined) {
      out.push(h('code', null, m[1]));
    } else if (m[2] !== undefined) {
      const href = safeUrl(m[3]);
      out.push(href
        ? h('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank' }, nested(m[2]))
        : document.createTextNode(m[0]));
    } else if (m[4] !== undefined || m[5] !== undefined) {
      out.push(h('strong', null, nested(m[4] ?? m[5])));
    } else {
      out.push(h('em', null, nested(m[6] ?? m[7])));
    }
  }
  if (last < source.length) out.push(document.createTextNode(source.slice(last)));
  return out;
}

/** The URL when it is absolute http or https, else null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}
