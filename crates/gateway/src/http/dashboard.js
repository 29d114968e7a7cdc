/* WhatsApp Gateway dashboard: vanilla JS, no dependencies, nothing loaded from elsewhere.
 *
 * Every value that comes from the API reaches the page through textContent (or a text node, or a
 * fixed attribute such as `title`), never as markup. The bearer token lives in sessionStorage (this
 * tab only) and is sent only in the Authorization header of same-origin API calls. For automation,
 * `/dashboard#token=...` stores the token once and removes the fragment from the address bar. */
(function () {
  'use strict';

  const TOKEN_KEY = 'whatsapp-gateway.dashboard.token';
  const REFRESH_MS = 10000;
  const MESSAGE_LIMIT = 25;
  // The namespace of SVG elements (an identifier, never fetched).
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // The JSON API, path-relative so the page also works when a proxy mounts the gateway under a prefix.
  const API = {
    metrics: 'api/v1/whatsapp/delivery-metrics',
    messages: 'api/v1/whatsapp/messages',
    status: 'api/v1/whatsapp/delivery-status',
    phonePerformance: (phone) => 'api/v1/whatsapp/phones/' + encodeURIComponent(phone) + '/performance',
  };

  const STATUSES = ['pending', 'retrying', 'queued', 'sending', 'sent', 'delivered', 'read', 'undelivered', 'failed', 'dead_lettered', 'canceled', 'expired', 'accepted', 'scheduled', 'partially_delivered', 'received', 'receiving'];
  const HEALTH = ['healthy', 'degraded', 'failing'];

  // Twilio error codes a WhatsApp sender meets most (see Twilio's error dictionary).
  const ERROR_CODES = {
    0: 'No error code given',
    20429: 'Too many concurrent requests',
    21211: "Invalid 'To' phone number",
    21610: 'Recipient unsubscribed (STOP)',
    30003: 'Unreachable destination handset',
    30004: 'Message blocked',
    30005: 'Unknown destination handset',
    30006: 'Landline or unreachable carrier',
    30007: 'Filtered by the carrier',
    30008: 'Unknown error',
    63003: 'Not a WhatsApp user',
    63007: 'WhatsApp sender not found',
    63014: 'Blocked by the recipient',
    63016: 'Outside the 24-hour window: use a template',
    63018: 'WhatsApp rate limit exceeded',
    63024: 'Invalid message recipient',
    63032: 'WhatsApp limitation for this user',
  };

  const state = {
    token: null,
    granularity: 'hour',
    toPhone: '',
    status: '',
    phone: null,
    detailId: null,
    detailOpener: null,
    paused: false,
    timer: null,
    busy: false,
    lastRefresh: 0,
    report: null,
  };

  const $ = (id) => document.getElementById(id);

  /* ---------- DOM helpers (text only) ---------- */

  // Builds an element; `text` becomes textContent, other props become attributes, children are
  // nodes or strings (strings become text nodes).
  function h(tag, props, children) {
    const node = document.createElement(tag);
    setProps(node, props);
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function svg(tag, props, children) {
    const node = document.createElementNS(SVG_NS, tag);
    setProps(node, props);
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function setProps(node, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.setAttribute('class', value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function setMessage(node, text) {
    node.textContent = text || '';
    show(node, Boolean(text));
  }

  function statusBadge(status) {
    const known = STATUSES.includes(status) ? status : 'unknown';
    return h('span', { class: 'badge st-' + known, text: status || '—' });
  }

  /* ---------- formatting ---------- */

  const pad = (n) => String(n).padStart(2, '0');

  function parseTime(iso) {
    if (!iso) return null;
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function clock(date) {
    return pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds());
  }

  function day(date) {
    return date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate());
  }

  // Local time; the date only when it is not today.
  function shortTime(iso) {
    const date = parseTime(iso);
    if (!date) return iso ? String(iso) : '—';
    return day(date) === day(new Date()) ? clock(date) : day(date) + ' ' + clock(date);
  }

  function fullTime(iso) {
    const date = parseTime(iso);
    return date ? day(date) + ' ' + clock(date) : iso ? String(iso) : '—';
  }

  // A time cell: local time shown, the API's UTC value as a tooltip.
  function timeNode(iso, full) {
    return h('time', { datetime: iso || null, title: iso || null, text: full ? fullTime(iso) : shortTime(iso) });
  }

  function count(n) {
    return typeof n === 'number' ? n.toLocaleString() : '—';
  }

  function percent(value) {
    return typeof value === 'number' ? value.toLocaleString(undefined, { maximumFractionDigits: 2 }) + ' %' : '—';
  }

  function duration(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    if (ms < 90 * 60000) return (ms / 60000).toFixed(1) + ' min';
    return (ms / 3600000).toFixed(1) + ' h';
  }

  /* ---------- the token ---------- */

  function readToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null;
    }
  }

  function storeToken(token) {
    state.token = token;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // Storage disabled: the token lives in memory until the page is closed.
    }
  }

  // `#token=...` (for automation): stored once, then removed from the address bar and history entry.
  // Returns whether a token was taken.
  function takeTokenFromFragment() {
    const fragment = window.location.hash.replace(/^#/, '');
    if (!fragment) return false;
    let token = null;
    for (const part of fragment.split('&')) {
      if (part.startsWith('token=')) {
        try {
          token = decodeURIComponent(part.slice('token='.length)).trim();
        } catch (_) {
          token = null;
        }
      }
    }
    if (token === null) return false;
    history.replaceState(null, '', window.location.pathname + window.location.search);
    if (token) storeToken(token);
    return Boolean(token);
  }

  /* ---------- the API ---------- */

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // GETs a path of the API with the bearer token; throws an ApiError carrying the problem's
  // `detail`. A 401 sends the user back to the token form.
  async function api(path, params) {
    if (!state.token) throw new ApiError(401, 'Not signed in.');
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== '') query.set(key, String(value));
    }
    const url = query.toString() ? path + '?' + query.toString() : path;
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: 'Bearer ' + state.token, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (error) {
      throw new ApiError(0, 'Cannot reach the gateway: ' + error.message);
    }
    if (response.ok) return response.json();
    let detail = '';
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || '';
    } catch (_) {
      detail = '';
    }
    if (!detail) detail = 'HTTP ' + response.status + (response.statusText ? ' ' + response.statusText : '');
    if (response.status === 429) {
      const retry = response.headers.get('Retry-After');
      if (retry) detail += ' (retry in ' + retry + ' s)';
    }
    if (response.status === 401) signOut('The gateway refused the token: ' + detail);
    throw new ApiError(response.status, detail);
  }

  /* ---------- metrics ---------- */

  async function loadMetrics() {
    try {
      const report = await api(API.metrics, { granularity: state.granularity, to_phone: state.toPhone });
      state.report = report;
      renderMetrics(report);
      setMessage($('banner'), '');
      return true;
    } catch (error) {
      if (error.status !== 401) setMessage($('banner'), 'Delivery metrics: ' + error.message);
      return false;
    }
  }

  function setCard(key, value) {
    const card = document.querySelector('.stat[data-key="' + key + '"] .value');
    if (card) card.textContent = value;
  }

  function renderMetrics(report) {
    const t = report.totals;
    for (const key of ['total', 'sent', 'delivered', 'read', 'failed', 'undelivered']) setCard(key, count(t[key]));
    setCard('delivery_rate', t.total > 0 ? percent(t.delivery_rate) : '—');
    setCard('read_rate', t.delivered > 0 ? percent(t.read_rate) : '—');
    setCard('failure_rate', t.total > 0 ? percent(t.failure_rate) : '—');
    for (const key of ['average_delivery_time_ms', 'p50_delivery_time_ms', 'p95_delivery_time_ms']) setCard(key, duration(t[key]));

    const span = report.granularity === 'day' ? 'Daily buckets' : 'Hourly buckets';
    let range = span + ', ' + fullTime(report.from) + ' to ' + fullTime(report.to);
    if (report.to_phone) range += ', only messages to ' + report.to_phone;
    $('range').textContent = range + '.';
    $('chart-title').textContent = report.granularity === 'day' ? 'Messages per day' : 'Messages per hour';

    renderChart(report);
    renderErrors(t.error_breakdown || {});
  }

  function renderErrors(breakdown) {
    const rows = Object.entries(breakdown)
      .map(([code, n]) => [code, Number(n)])
      .sort((a, b) => b[1] - a[1] || Number(a[0]) - Number(b[0]));
    const sum = rows.reduce((acc, [, n]) => acc + n, 0);
    const body = $('errors-table').querySelector('tbody');
    body.replaceChildren(
      ...rows.map(([code, n]) =>
        h('tr', null, [
          h('td', { class: 'mono', text: code === '0' ? 'none' : code }),
          h('td', { text: ERROR_CODES[code] || '' }),
          h('td', { class: 'num', text: count(n) }),
          h('td', { class: 'num', text: sum > 0 ? percent(Math.round((n * 1000) / sum) / 10) : '—' }),
        ]),
      ),
    );
    show($('errors-table'), rows.length > 0);
    show($('errors-empty'), rows.length === 0);
  }

  // A "nice" upper bound and step for the y axis.
  function axis(max) {
    if (max <= 4) return { top: 4, step: 1 };
    const rough = max / 4;
    const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
    return { top: Math.ceil(max / step) * step, step };
  }

  // An axis label: the date for day buckets and at midnight, else the hour.
  function bucketLabel(start, granularity) {
    const date = new Date(start);
    if (granularity === 'day' || (date.getHours() === 0 && date.getMinutes() === 0)) {
      return date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
    }
    return pad(date.getHours()) + ':' + pad(date.getMinutes());
  }

  function renderChart(report) {
    const container = $('chart');
    const step = report.granularity === 'day' ? 86400000 : 3600000;
    const from = Date.parse(report.from);
    const to = Date.parse(report.to);
    const byStart = new Map();
    for (const bucket of report.buckets || []) byStart.set(Date.parse(bucket.start), bucket);
    const starts = new Set(byStart.keys());
    if (Number.isFinite(from) && Number.isFinite(to)) {
      for (let s = Math.floor(from / step) * step; s < to && starts.size < 800; s += step) starts.add(s);
    }
    const slots = [...starts].filter(Number.isFinite).sort((a, b) => a - b);

    const width = Math.max(320, Math.round(container.clientWidth || 720));
    const height = 240;
    const margin = { left: 44, right: 10, top: 12, bottom: 30 };
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;

    const stacks = slots.map((start) => {
      const b = byStart.get(start);
      if (!b) return { start, parts: null, total: 0 };
      const failed = b.failed + b.undelivered;
      const parts = [
        ['read', b.read],
        ['delivered', Math.max(0, b.delivered - b.read)],
        ['failed', failed],
        ['other', Math.max(0, b.total - b.delivered - failed)],
      ];
      return { start, bucket: b, parts, total: parts.reduce((acc, [, n]) => acc + n, 0) };
    });
    const { top, step: yStep } = axis(Math.max(0, ...stacks.map((s) => s.total)));
    const y = (value) => margin.top + plotH - (value / top) * plotH;

    const root = svg('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      width: width,
      height: height,
      role: 'img',
      'aria-label': (report.granularity === 'day' ? 'Messages per day' : 'Messages per hour') + ': read, delivered, failed or undelivered',
    });

    for (let v = 0; v <= top; v += yStep) {
      root.append(svg('line', { class: 'grid', x1: margin.left, x2: width - margin.right, y1: y(v), y2: y(v) }));
      root.append(svg('text', { class: 'tick', x: margin.left - 6, y: y(v) + 4, 'text-anchor': 'end', text: count(v) }));
    }

    const slotW = slots.length ? plotW / slots.length : plotW;
    const barW = Math.max(1, Math.min(36, slotW * 0.7));
    const labelEvery = Math.max(1, Math.ceil(64 / slotW));
    stacks.forEach((stack, i) => {
      const x = margin.left + i * slotW + (slotW - barW) / 2;
      if (i % labelEvery === 0) {
        // Centred under its bar, but kept inside the chart at both ends.
        const centre = margin.left + i * slotW + slotW / 2;
        const [lx, anchor] = centre + 24 > width ? [width - 2, 'end'] : [centre, 'middle'];
        root.append(svg('text', { class: 'tick', x: lx, y: height - 10, 'text-anchor': anchor, text: bucketLabel(stack.start, report.granularity) }));
      }
      if (!stack.parts || stack.total === 0) return;
      const b = stack.bucket;
      const date = new Date(stack.start);
      const when = report.granularity === 'day' ? day(date) : day(date) + ' ' + pad(date.getHours()) + ':' + pad(date.getMinutes());
      const group = svg('g', { class: 'bar', tabindex: 0 }, [
        svg('title', {
          text:
            when + ': ' + b.total + ' messages; read ' + b.read + ', delivered ' + b.delivered + ', failed ' + b.failed + ', undelivered ' +
            b.undelivered + '; delivery rate ' + percent(b.delivery_rate),
        }),
      ]);
      let base = 0;
      for (const [kind, n] of stack.parts) {
        if (n <= 0) continue;
        const y0 = y(base + n);
        group.append(svg('rect', { class: 'seg-' + kind, x: x, y: y0, width: barW, height: Math.max(1, y(base) - y0) }));
        base += n;
      }
      root.append(group);
    });

    root.append(svg('line', { class: 'axis', x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0) }));
    if (!(report.buckets || []).length) {
      root.append(svg('text', { class: 'empty-label', x: margin.left + plotW / 2, y: margin.top + plotH / 2, 'text-anchor': 'middle', text: 'No messages in this range' }));
    }
    container.replaceChildren(root);
  }

  /* ---------- recent messages ---------- */

  async function loadMessages() {
    try {
      const page = await api(API.messages, { limit: MESSAGE_LIMIT, status: state.status });
      renderMessages(page.messages || []);
      setMessage($('messages-error'), '');
      return true;
    } catch (error) {
      if (error.status !== 401) setMessage($('messages-error'), error.message);
      return false;
    }
  }

  function renderMessages(messages) {
    const body = $('messages-table').querySelector('tbody');
    body.replaceChildren(
      ...messages.map((m) => {
        const to = h('td', { class: 'mono', text: m.to });
        if (m.direction === 'inbound') to.append(' ', h('span', { class: 'tag', text: 'incoming' }));
        const row = h('tr', { tabindex: 0, 'aria-label': 'Message to ' + m.to + ', ' + m.status }, [
          h('td', null, [timeNode(m.created_at)]),
          to,
          h('td', null, [statusBadge(m.status)]),
          h('td', { class: 'mono', title: m.error_message || null, text: m.error_code === null || m.error_code === undefined ? '—' : m.error_code }),
          h('td', { class: 'num', text: count(m.attempts) }),
        ]);
        if (m.id === state.detailId) row.classList.add('selected');
        const open = () => openDetail(m.id, row);
        row.addEventListener('click', open);
        row.addEventListener('keydown', (event) => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            open();
          }
        });
        return row;
      }),
    );
    show($('messages-empty'), messages.length === 0);
  }

  /* ---------- one message, in the side panel ---------- */

  function openDetail(id, opener) {
    state.detailId = id;
    state.detailOpener = opener || null;
    for (const row of document.querySelectorAll('#messages-table tr.selected')) row.classList.remove('selected');
    if (opener && opener.closest('#messages-table')) opener.classList.add('selected');
    $('detail-title').textContent = 'Message';
    $('detail-facts').replaceChildren(h('div', { class: 'muted', text: 'Loading…' }));
    $('detail-history').querySelector('tbody').replaceChildren();
    $('detail-attempts').querySelector('tbody').replaceChildren();
    show($('detail-attempts-empty'), false);
    show($('detail-history-empty'), false);
    setMessage($('detail-error'), '');
    show($('detail'), true);
    document.body.classList.add('drawer-open');
    $('detail-close').focus();
    loadDetail(id);
  }

  function closeDetail() {
    state.detailId = null;
    show($('detail'), false);
    document.body.classList.remove('drawer-open');
    for (const row of document.querySelectorAll('#messages-table tr.selected')) row.classList.remove('selected');
    if (state.detailOpener && document.contains(state.detailOpener)) state.detailOpener.focus();
    state.detailOpener = null;
  }

  async function loadDetail(id) {
    try {
      const status = await api(API.status, { id: id });
      if (state.detailId !== id) return true; // another message was opened meanwhile
      renderDetail(status);
      setMessage($('detail-error'), '');
      return true;
    } catch (error) {
      if (error.status !== 401 && state.detailId === id) {
        setMessage($('detail-error'), error.message);
        if (!$('detail-history').querySelector('tbody').children.length) $('detail-facts').replaceChildren();
      }
      return false;
    }
  }

  function fact(label, value) {
    if (value === null || value === undefined || value === '') return [];
    const dd = h('dd');
    if (value instanceof Node) dd.append(value);
    else dd.textContent = String(value);
    return [h('dt', { text: label }), dd];
  }

  function renderDetail(m) {
    $('detail-title').textContent = m.direction === 'inbound' ? 'Incoming message' : 'Message to ' + m.to;
    const error = m.error_code !== null && m.error_code !== undefined ? m.error_code + (m.error_message ? ': ' + m.error_message : '') : m.error_message;
    const lookup = h('button', { type: 'button', class: 'link', text: m.to });
    lookup.addEventListener('click', () => {
      $('phone-input').value = m.to;
      lookupPhone(m.to);
    });
    $('detail-facts').replaceChildren(
      ...fact('Status', statusBadge(m.status)),
      ...fact('Id', m.id),
      ...fact('To', m.direction === 'inbound' ? m.to : lookup),
      ...fact('From', m.from),
      ...fact('Direction', m.direction),
      ...fact('Twilio SID', m.message_sid),
      ...fact('Reference', m.reference),
      ...fact('Priority', m.priority),
      ...fact('Attempts', m.attempts),
      ...fact('Error', error),
      ...fact('Created', timeNode(m.created_at, true)),
      ...fact('Queued', m.queued_at ? timeNode(m.queued_at, true) : null),
      ...fact('Sent', m.sent_at ? timeNode(m.sent_at, true) : null),
      ...fact('Delivered', m.delivered_at ? timeNode(m.delivered_at, true) : null),
      ...fact('Read', m.read_at ? timeNode(m.read_at, true) : null),
      ...fact('Failed', m.failed_at ? timeNode(m.failed_at, true) : null),
      ...fact('Next attempt', m.next_attempt_at ? timeNode(m.next_attempt_at, true) : null),
      ...fact('Template', m.content_sid),
      ...fact('Media', m.media_urls && m.media_urls.length ? m.media_urls.length + ' attachment(s)' : null),
      ...fact('Body', m.body),
    );

    const history = m.history || [];
    show($('detail-history'), history.length > 0);
    show($('detail-history-empty'), history.length === 0);
    $('detail-history').querySelector('tbody').replaceChildren(
      ...history.map((e) => {
        const change = h('td', { class: 'change' }, [
          e.previous_status ? statusBadge(e.previous_status) : h('span', { class: 'muted', text: '—' }),
          h('span', { class: 'arrow', text: ' → ' }),
          statusBadge(e.status),
        ]);
        if (e.error_code !== null && e.error_code !== undefined) change.append(h('span', { class: 'mono muted', text: ' ' + e.error_code }));
        if (e.detail) change.append(h('div', { class: 'muted small', text: e.detail }));
        return h('tr', { class: e.applied ? null : 'ignored' }, [
          h('td', null, [timeNode(e.at)]),
          change,
          h('td', { text: e.source }),
          h('td', { text: e.applied ? 'yes' : 'no (stale or duplicate)' }),
        ]);
      }),
    );

    const attempts = m.send_attempts || [];
    $('detail-attempts').querySelector('tbody').replaceChildren(
      ...attempts.map((a) => {
        const started = parseTime(a.started_at);
        const finished = parseTime(a.finished_at);
        const took = started && finished ? duration(finished - started) : a.finished_at ? '' : 'in flight';
        const error = a.error_code !== null && a.error_code !== undefined ? a.error_code + (a.error_message ? ': ' + a.error_message : '') : a.error_message || '—';
        return h('tr', null, [
          h('td', { class: 'num', text: a.attempt }),
          h('td', { text: a.outcome }),
          h('td', null, [timeNode(a.started_at), took ? h('div', { class: 'muted small', text: took }) : null]),
          h('td', { class: 'num', text: a.http_status === null || a.http_status === undefined ? '—' : a.http_status }),
          h('td', { class: 'small', text: error }),
        ]);
      }),
    );
    show($('detail-attempts'), attempts.length > 0);
    show($('detail-attempts-empty'), attempts.length === 0);
  }

  /* ---------- phone lookup ---------- */

  function lookupPhone(phone) {
    const value = (phone || '').trim();
    if (!value) return;
    state.phone = value;
    loadPhone(value);
  }

  async function loadPhone(phone) {
    try {
      const perf = await api(API.phonePerformance(phone));
      if (state.phone !== phone) return true;
      renderPhone(perf);
      setMessage($('phone-error'), '');
      return true;
    } catch (error) {
      if (state.phone !== phone || error.status === 401) return false;
      setMessage($('phone-error'), error.message);
      if (error.status === 404 || error.status === 422) {
        state.phone = null; // nothing to refresh
        show($('phone-result'), false);
      }
      return false;
    }
  }

  function renderPhone(perf) {
    $('phone-number').textContent = perf.phone;
    const health = HEALTH.includes(perf.health) ? perf.health : 'unknown';
    const badge = $('phone-health');
    badge.className = 'badge health-' + health;
    badge.textContent = perf.health;
    $('phone-facts').replaceChildren(
      ...fact('Messages', count(perf.total_messages)),
      ...fact('Delivered', count(perf.delivered)),
      ...fact('Read', count(perf.read)),
      ...fact('Failed', count(perf.failed)),
      ...fact('Delivery rate', perf.total_messages > 0 ? percent(perf.delivery_rate) : '—'),
      ...fact('Last message', perf.last_message_at ? timeNode(perf.last_message_at, true) : '—'),
    );
    const errors = perf.recent_errors || [];
    $('phone-errors').querySelector('tbody').replaceChildren(
      ...errors.map((e) => {
        const row = h('tr', { tabindex: 0, title: 'Message ' + e.message_id }, [
          h('td', null, [timeNode(e.at)]),
          h('td', { class: 'mono', text: e.error_code === null || e.error_code === undefined ? '—' : e.error_code }),
          h('td', { class: 'small', text: e.error_message || ERROR_CODES[e.error_code] || '—' }),
        ]);
        const open = () => openDetail(e.message_id, row);
        row.addEventListener('click', open);
        row.addEventListener('keydown', (event) => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            open();
          }
        });
        return row;
      }),
    );
    show($('phone-errors'), errors.length > 0);
    show($('phone-errors-empty'), errors.length === 0);
    show($('phone-result'), true);
  }

  /* ---------- refresh, sign in and out ---------- */

  async function refresh() {
    if (!state.token || state.busy) return;
    state.busy = true;
    $('updated').textContent = 'Updating…';
    const jobs = [loadMetrics(), loadMessages()];
    if (state.phone) jobs.push(loadPhone(state.phone));
    if (state.detailId) jobs.push(loadDetail(state.detailId));
    const results = await Promise.all(jobs);
    state.busy = false;
    if (!state.token) return; // signed out by a 401
    state.lastRefresh = Date.now();
    const ok = results.every(Boolean);
    $('updated').textContent = (ok ? 'Updated ' : 'Some parts failed at ') + clock(new Date()) + (state.paused ? ' · paused' : '');
  }

  function tick() {
    if (!state.paused && !document.hidden) refresh();
  }

  function startTimer() {
    stopTimer();
    state.timer = window.setInterval(tick, REFRESH_MS);
  }

  function stopTimer() {
    if (state.timer !== null) window.clearInterval(state.timer);
    state.timer = null;
  }

  function resetViews() {
    if (!$('detail').hidden) closeDetail();
    for (const value of document.querySelectorAll('.stat .value')) value.textContent = '—';
    for (const body of document.querySelectorAll('#app tbody')) body.replaceChildren();
    $('chart').replaceChildren();
    $('range').textContent = '';
    $('updated').textContent = '';
    for (const id of ['banner', 'messages-error', 'phone-error']) setMessage($(id), '');
    show($('phone-result'), false);
    state.phone = null;
    state.report = null;
  }

  function showLogin(message) {
    show($('app'), false);
    show($('toolbar'), false);
    show($('login'), true);
    setMessage($('login-error'), message || '');
    $('token-input').focus();
  }

  function showApp() {
    show($('login'), false);
    show($('app'), true);
    show($('toolbar'), true);
    startTimer();
    refresh();
  }

  function signOut(message) {
    storeToken(null);
    stopTimer();
    resetViews();
    showLogin(message);
  }

  function setPaused(paused) {
    state.paused = paused;
    const button = $('pause');
    button.textContent = paused ? 'Resume auto-refresh' : 'Pause auto-refresh';
    button.setAttribute('aria-pressed', String(paused));
    const label = $('updated');
    label.textContent = label.textContent.replace(/ · paused$/, '') + (paused ? ' · paused' : '');
    if (!paused) refresh();
  }

  function init() {
    takeTokenFromFragment();

    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('token-input');
      const token = input.value.trim().replace(/^Bearer\s+/i, '');
      input.value = '';
      if (!token) {
        showLogin('Paste a token first.');
        return;
      }
      storeToken(token);
      showApp();
    });
    $('signout').addEventListener('click', () => signOut(''));
    $('refresh').addEventListener('click', () => refresh());
    $('pause').addEventListener('click', () => setPaused(!state.paused));

    for (const button of document.querySelectorAll('[data-granularity]')) {
      button.addEventListener('click', () => {
        state.granularity = button.getAttribute('data-granularity') === 'day' ? 'day' : 'hour';
        for (const other of document.querySelectorAll('[data-granularity]')) {
          other.setAttribute('aria-pressed', String(other === button));
        }
        loadMetrics();
      });
    }
    $('phone-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      state.toPhone = $('to-phone').value.trim();
      loadMetrics();
    });
    $('to-phone').addEventListener('search', () => {
      if (!$('to-phone').value.trim() && state.toPhone) {
        state.toPhone = '';
        loadMetrics();
      }
    });
    $('status-filter').addEventListener('change', () => {
      state.status = $('status-filter').value;
      loadMessages();
    });
    $('phone-form').addEventListener('submit', (event) => {
      event.preventDefault();
      lookupPhone($('phone-input').value);
    });
    $('detail-close').addEventListener('click', closeDetail);
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !$('detail').hidden) closeDetail();
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && state.token && !state.paused && Date.now() - state.lastRefresh >= REFRESH_MS) refresh();
    });
    // A `#token=...` URL opened in a tab already showing the page does not reload it.
    window.addEventListener('hashchange', () => {
      if (takeTokenFromFragment()) {
        resetViews();
        showApp();
      }
    });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(() => {
        if (state.report) renderChart(state.report);
      }, 150);
    });

    state.token = state.token || readToken();
    if (state.token) showApp();
    else showLogin('');
  }

  init();
})();
