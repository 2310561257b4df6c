// Files on tickets: choosing or dropping them, uploading them with a progress bar, and showing
// them. The API wants the token on every request, so files are fetched with it and shown from
// blob: URLs: images as thumbnails that open full size, everything else as a download.

import { session, ApiError } from './api.js';
import { h, replace, time, announce, nextId } from './dom.js';

/** The most files a ticket holds (the API answers 409 beyond). */
export const MAX_FILES = 20;

// The types the API serves as images; it sends everything else as a download.
const IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

export function isImage(attachment) {
  return IMAGES.has(attachment.content_type);
}

export function humanSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let n = bytes;
  let unit = 'B';
  for (const u of units) {
    if (n < 1024) break;
    n /= 1024;
    unit = u;
  }
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} ${unit}`;
}

function errorFrom(status, data) {
  const err = data && data.error ? data.error : {};
  return new ApiError(status, err.code || `http_${status}`, err.message || `The server answered ${status}.`, err.details || null);
}

/**
 * Uploads one file to a ticket; `onProgress(fraction)` follows the bytes going out (fetch cannot
 * report that, XMLHttpRequest can). Resolves with the attachment, rejects with an ApiError.
 */
export function upload(ticketId, file, internal, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/tickets/${encodeURIComponent(ticketId)}/attachments`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (session.token) xhr.setRequestHeader('Authorization', `Bearer ${session.token}`);
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      const data = xhr.response;
      if (xhr.status === 201 && data && data.attachment) resolve(data.attachment);
      else reject(errorFrom(xhr.status, data));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network',
      'The file did not reach the server. Check your connection and try again.', null)));
    const form = new FormData();
    if (internal) form.append('internal', 'true');
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/** The bytes of an attachment, as a Blob. */
async function fetchBlob(attachment) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const response = await fetch(`/api/attachments/${encodeURIComponent(attachment.id)}`, { headers, cache: 'no-store' });
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw errorFrom(response.status, data);
  }
  const bytes = await response.blob();
  // Typed from what the server detected, so an image opens as an image and nothing else does.
  return new Blob([bytes], { type: isImage(attachment) ? attachment.content_type : 'application/octet-stream' });
}

/**
 * A place to pick or drop files before they are sent. `internalDefault()` says whether a newly
 * added file starts out internal (staff only; the reply form's "internal note" box).
 * Returns { element, files, clear, uploadAll(ticketId) }.
 */
export function filePicker({ staff = false, internalDefault = () => false } = {}) {
  const chosen = [];
  const inputId = nextId('files');
  const fileInput = h('input', { type: 'file', multiple: true, id: inputId, class: 'file-input', name: 'files', tabindex: '-1', 'aria-label': 'Files to attach' });
  const list = h('ul', { class: 'file-list' });
  const chooseButton = h('button', { type: 'button', class: 'choose-files', onclick: () => fileInput.click() }, 'Choose files');
  const zone = h('div', { class: 'dropzone' },
    h('span', { class: 'dropzone-icon', 'aria-hidden': 'true' }, '⇪'),
    h('span', null, 'Drop screenshots or files here, or '), chooseButton,
    h('span', { class: 'hint' }, ` Up to ${MAX_FILES} per ticket. Images show as pictures; other files as downloads.`),
    fileInput);
  const element = h('div', { class: 'file-picker' }, h('span', { class: 'label-like' }, 'Attachments'), zone, list);

  function add(files) {
    for (const file of files) {
      const row = { file, internal: staff && internalDefault(), element: null, bar: null, note: null };
      const internalBox = staff
        ? h('input', { type: 'checkbox', id: nextId('file-internal'), checked: row.internal, onchange: (e) => { row.internal = e.target.checked; } })
        : null;
      row.bar = h('progress', { max: '1', value: '0', hidden: true, 'aria-label': `Uploading ${file.name}` });
      row.note = h('span', { class: 'file-note', role: 'status' });
      row.element = h('li', { class: 'file-row' },
        h('span', { class: 'file-name' }, file.name), ' ',
        h('span', { class: 'muted' }, humanSize(file.size)),
        internalBox ? h('span', { class: 'check inline-check' }, internalBox, h('label', { for: internalBox.id }, 'Internal')) : null,
        h('button', { type: 'button', class: 'link-button', 'aria-label': `Remove ${file.name}`, onclick: () => remove(row) }, 'Remove'),
        row.bar, row.note);
      chosen.push(row);
      list.append(row.element);
    }
    if (files.length) announce(`${files.length} file${files.length === 1 ? '' : 's'} ready to send.`);
  }

  function remove(row) {
    const at = chosen.indexOf(row);
    if (at >= 0) chosen.splice(at, 1);
    row.element.remove();
  }

  fileInput.addEventListener('change', () => {
    add([...fileInput.files]);
    fileInput.value = '';
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    if (e.dataTransfer && e.dataTransfer.files) add([...e.dataTransfer.files]);
  });

  /**
   * Sends every chosen file, one after the other; sent ones leave the list, failed ones stay with
   * the reason. Resolves with { sent: [attachments], failed: [{ name, error }] }.
   */
  async function uploadAll(ticketId) {
    const sent = [];
    const failed = [];
    for (const row of [...chosen]) {
      row.bar.hidden = false;
      row.bar.value = 0;
      row.note.textContent = '';
      row.element.classList.remove('failed');
      try {
        const attachment = await upload(ticketId, row.file, row.internal, (f) => { row.bar.value = f; });
        sent.push(attachment);
        remove(row);
      } catch (error) {
        row.bar.hidden = true;
        row.element.classList.add('failed');
        row.note.textContent = error.message;
        failed.push({ name: row.file.name, error });
      }
    }
    return { sent, failed };
  }

  return {
    element,
    get count() {
      return chosen.length;
    },
    clear() {
      for (const row of [...chosen]) remove(row);
    },
    uploadAll,
  };
}

/**
 * The files of a ticket. `urls` caches blob: URLs by attachment id for the page's lifetime (the
 * page revokes them when it goes); `nameOf(userId)` names uploaders; `onDelete(attachment,
 * button)` is offered where `canDelete(attachment)` allows.
 */
export function attachmentList(attachments, { urls, nameOf, canDelete, onDelete }) {
  if (!attachments.length) return null;
  return h('ul', { class: 'attachments', id: 'attachment-list' }, attachments.map((a) => {
    const item = h('li', { class: `attachment${a.internal ? ' internal' : ''}`, dataset: { id: a.id } });
    const meta = h('div', { class: 'attachment-meta' },
      h('span', { class: 'file-name' }, a.filename || 'file'),
      h('span', { class: 'muted' }, ` ${humanSize(a.size)} · ${nameOf(a.uploaded_by)} `, time(a.created_at)),
      a.internal ? h('span', { class: 'badge internal-badge' }, h('span', { 'aria-hidden': 'true' }, '⚑ '), 'Internal: staff only') : null,
      canDelete(a) ? h('button', { type: 'button', class: 'link-button danger-link', 'aria-label': `Delete ${a.filename}`, onclick: (e) => onDelete(a, e.currentTarget) }, 'Delete') : null);
    if (isImage(a)) {
      const thumb = h('a', { class: 'thumb', target: '_blank', rel: 'noopener', title: `Open ${a.filename} full size` },
        h('span', { class: 'thumb-loading muted' }, 'Loading…'));
      item.append(thumb, meta);
      showImage(a, thumb, urls);
    } else {
      item.append(h('button', { type: 'button', class: 'file-download', onclick: (e) => download(a, e.currentTarget, urls) },
        h('span', { 'aria-hidden': 'true' }, '⇩ '), `Download ${a.filename || 'file'}`), meta);
    }
    return item;
  }));
}

async function blobUrl(attachment, urls) {
  let url = urls.get(attachment.id);
  if (!url) {
    url = URL.createObjectURL(await fetchBlob(attachment));
    urls.set(attachment.id, url);
  }
  return url;
}

async function showImage(attachment, thumb, urls) {
  try {
    const url = await blobUrl(attachment, urls);
    thumb.href = url;
    replace(thumb, h('img', { src: url, alt: attachment.filename, loading: 'lazy', class: 'thumb-img' }));
  } catch (e) {
    replace(thumb, h('span', { class: 'muted' }, `Cannot show this image: ${e.message}`));
  }
}

async function download(attachment, button, urls) {
  try {
    button.disabled = true;
    const url = await blobUrl(attachment, urls);
    const a = h('a', { href: url, download: attachment.filename || 'file', hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) {
    announce(`The download failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

/** Revokes every blob: URL in the cache. */
export function forget(urls) {
  for (const url of urls.values()) URL.revokeObjectURL(url);
  urls.clear();
}
