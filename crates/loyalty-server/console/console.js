// Loyalty Ledger staff console. Plain JavaScript, no libraries, no build
// step: the server embeds this file as it is. Everything the page shows is
// built with DOM calls and textContent (never innerHTML), so nothing a
// player's name contains can run as code.
'use strict';

// Errors the page met, for the browser tests (they must stay empty).
// Script errors, resources that failed to load (capture phase) and
// anything the Content-Security-Policy blocked all land here.
window.__consoleErrors = [];
window.addEventListener('error', (e) => window.__consoleErrors.push(
  e.message ? String(e.message) : `failed to load ${(e.target && (e.target.src || e.target.href)) || 'a resource'}`), true);
window.addEventListener('unhandledrejection', (e) => window.__consoleErrors.push(String(e.reason)));
document.addEventListener('securitypolicyviolation', (e) => window.__consoleErrors.push(`blocked by the policy: ${e.blockedURI} (${e.violatedDirective})`));

const state = {
  token: sessionStorage.getItem('loyalty.token'),
  me: null,
  // Bumped on every navigation: loops of the previous page stop.
  generation: 0,
  // Aborts the previous page's live stream on navigation.
  abort: null,
};

// ------------------------------------------------------------ helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    // Through the CSSOM: the page's Content-Security-Policy refuses inline
    // style attributes.
    else if (k === 'style') el.style.cssText = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNs = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n) => Number(n).toLocaleString('en-US');
const when = (t) => (t ? new Date(t).toLocaleString() : '');
const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
const can = (p) => !!state.me && state.me.permissions.includes(p);

function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.textContent = ''; }, 4000);
}

// Every error code as a sentence a pit boss understands.
function explain(err, status) {
  const d = (err && err.details) || {};
  switch (err && err.code) {
    case 'RATE_LIMIT_EXCEEDED':
      return `Too many in a short time. Wait ${d.retry_after_seconds || 'a few'} seconds, then try again.`;
    case 'RATE_LIMIT_UNAVAILABLE':
      return 'The reward limit cannot be checked right now, so nothing was awarded. Try again in a moment.';
    case 'REWARD_EXCEEDS_LIMIT':
      return `A manual reward is at most ${fmt(d.limit || 10000)} points either way.`;
    case 'INSUFFICIENT_BALANCE':
      return `The player has only ${fmt(d.available ?? 0)} points available; ${fmt(d.requested ?? 0)} were needed.`;
    case 'FORBIDDEN': return 'Your role does not allow this. Ask a supervisor.';
    case 'INVALID_STAFF_ID': return 'This reward must be in your own name.';
    case 'UNAUTHORIZED': return 'Your sign-in is not valid any more. Sign in again.';
    case 'VALIDATION_ERROR': return `Please check ${d.field ? fieldName(d.field) : 'the form'}: ${err.message}.`;
    case 'NOT_FOUND': return 'That was not found. It may have been removed, or the id is wrong.';
    case 'SLIP_NOT_OPEN': return 'This slip is already closed.';
    case 'SLIP_NOT_CLOSED': return 'Complete the slip first.';
    case 'IDEMPOTENCY_KEY_IN_USE': return 'Still working on the first press of this button. Wait a moment.';
    case 'IDEMPOTENCY_KEY_REUSED': return 'This was already sent with different details. Close the form and start again.';
    case 'CONFLICT': return d.current_version
      ? 'Someone else changed this in the meantime. It has been reloaded; check it and try again.'
      : `That cannot be done now: ${err.message}.`;
    case 'ESCROW_NOT_HELD': return `This hold is ${String(d.status || 'closed').toLowerCase().replace('_', ' ')}; nothing more can be settled or refunded.`;
    case 'ESCROW_AMOUNT_EXCEEDED': return `Only ${fmt(d.held_amount ?? 0)} points are still held.`;
    case 'POINTS_OUT_OF_RANGE': return 'That would take the points beyond what the system can record. Nothing was changed.';
    case 'UNAVAILABLE': return 'The system is busy or its storage is unreachable. Nothing was changed; try again.';
    case 'NETWORK': return 'The server could not be reached. Check the connection and try again.';
    default: return (err && err.message) || `The request failed (${status}).`;
  }
}

function fieldName(f) {
  return String(f).replace(/_/g, ' ').replace(/^body$/, 'the form');
}

class ApiError extends Error {
  constructor(err, status) {
    super(explain(err, status));
    this.code = err.code;
    this.details = err.details || {};
    this.status = status;
    this.body = null;
  }
}

// One request to the API. With `key` (an Idempotency-Key) a dropped
// connection is retried with the same key, so it can never apply twice.
async function api(method, path, body, opts = {}) {
  const headers = { Authorization: `Bearer ${opts.token || state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.key) headers['Idempotency-Key'] = opts.key;
  let resp;
  for (let attempt = 0; ; attempt++) {
    try {
      resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      if (resp.status === 409 && opts.key && attempt < 5) {
        const peek = await resp.clone().json().catch(() => null);
        if (peek && peek.error && peek.error.code === 'IDEMPOTENCY_KEY_IN_USE') { await sleep(400); continue; }
      }
      break;
    } catch (e) {
      if (opts.key && attempt < 3) { await sleep(500 * (attempt + 1)); continue; }
      throw new ApiError({ code: 'NETWORK' }, 0);
    }
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (resp.ok && resp.status !== 202) return data;
  const err = (data && data.error) || { code: `HTTP_${resp.status}`, message: resp.statusText };
  const e = new ApiError(err, resp.status);
  e.body = data;
  if (resp.status === 401 && !opts.quiet) { signOut(false); }
  throw e;
}

function errorBox(id) {
  return h('div', { id, class: 'msg bad', role: 'alert', hidden: true });
}
function showError(box, e) {
  box.textContent = e instanceof ApiError ? e.message : String(e);
  box.hidden = false;
}

// ------------------------------------------------------------ sign in

async function signIn(token) {
  const me = await api('GET', '/v1/me', undefined, { token, quiet: true });
  if (me.kind !== 'staff') throw new ApiError({ code: 'FORBIDDEN' }, 403);
  state.token = token;
  state.me = me;
  sessionStorage.setItem('loyalty.token', token);
}

async function signOut(revoke = true) {
  // The tab forgets the token at once; then the server revokes it.
  const token = state.token;
  state.token = null;
  state.me = null;
  sessionStorage.removeItem('loyalty.token');
  if (revoke && token) {
    try { await api('DELETE', '/v1/me/token', undefined, { quiet: true, token }); } catch (e) { /* signed out anyway */ }
  }
  location.hash = '#/signin';
  render();
}

function signInView(main) {
  const box = errorBox('signin-error');
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, placeholder: 'll_…' });
  const button = h('button', { id: 'signin-button', type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card', id: 'signin-form' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste your staff token. It is kept for this browser tab only.'),
    h('label', { for: 'token' }, 'Staff token', input),
    h('p', {}, button),
    box);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    box.hidden = true;
    try {
      await signIn(input.value.trim());
      location.hash = '#/players';
    } catch (e) {
      showError(box, e.code === 'UNAUTHORIZED' ? 'That token is not valid. Check it and try again.' : e);
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  input.focus();
}

// ------------------------------------------------------------ players

function playersView(main, gen) {
  const input = h('input', { id: 'search', type: 'search', placeholder: 'Card number or name', autocomplete: 'off' });
  const results = h('ul', { id: 'results', class: 'list' });
  const box = errorBox('search-error');
  const more = h('button', { id: 'search-more', type: 'button', class: 'quiet', hidden: true }, 'More');
  let cursor = null;
  async function search(append) {
    box.hidden = true;
    const q = input.value.trim();
    const url = `/v1/players?limit=25${q ? `&q=${encodeURIComponent(q)}` : ''}${append && cursor ? `&cursor=${cursor}` : ''}`;
    try {
      const page = await api('GET', url);
      if (gen !== state.generation) return;
      if (!append) results.replaceChildren();
      for (const p of page.players) {
        results.append(h('li', {}, h('a', { href: `#/player/${p.id}`, class: 'player-link' },
          h('strong', {}, p.display_name), ' ', h('span', { class: 'muted' }, p.card_number || 'no card'))));
      }
      if (!results.children.length) results.append(h('li', { class: 'muted' }, 'No player matches.'));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (e) { showError(box, e); }
  }
  const form = h('form', { class: 'card', role: 'search' },
    h('h1', {}, 'Find a player'),
    h('div', { class: 'row' },
      h('label', { for: 'search', style: 'flex:1' }, 'Card number or name', input),
      h('button', { id: 'search-button', type: 'submit' }, 'Search')),
    box, results, more);
  form.addEventListener('submit', (ev) => { ev.preventDefault(); search(false); });
  more.addEventListener('click', () => search(true));
  main.append(form);
  if (can('players:write')) main.append(newPlayerForm());
  input.focus();
  search(false);
}

function newPlayerForm() {
  const name = h('input', { id: 'new-player-name', required: true, maxlength: 200 });
  const card = h('input', { id: 'new-player-card', maxlength: 64 });
  const box = errorBox('new-player-error');
  const button = h('button', { id: 'new-player-submit', type: 'submit' }, 'Enrol');
  let key = newKey();
  const form = h('form', { class: 'card' }, h('h2', {}, 'Enrol a new player'),
    h('div', { class: 'row' },
      h('label', { for: 'new-player-name', style: 'flex:2' }, 'Name', name),
      h('label', { for: 'new-player-card', style: 'flex:1' }, 'Card number (optional)', card),
      button), box);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    try {
      const body = { display_name: name.value };
      if (card.value.trim()) body.card_number = card.value.trim();
      const p = await api('POST', '/v1/players', body, { key });
      key = newKey();
      location.hash = `#/player/${p.id}`;
    } catch (e) { showError(box, e); } finally { button.disabled = false; }
  });
  return form;
}

// ------------------------------------------------------------ one player

async function playerView(main, gen, id) {
  const [player, loyalty] = await Promise.all([
    api('GET', `/v1/players/${id}`), api('GET', `/v1/players/${id}/loyalty`)]);
  if (gen !== state.generation) return;
  const summary = h('section', { class: 'card', id: 'summary' });
  const slips = h('section', { class: 'card', id: 'slips' });
  const wallet = h('section', { class: 'card', id: 'wallet', hidden: true });
  const ledger = h('section', { class: 'card', id: 'ledger-card', hidden: !can('loyalty:view_all') });
  const actions = h('div', { class: 'row', id: 'actions' },
    can('loyalty:award') && h('button', { id: 'reward-open', type: 'button', onclick: () => rewardDialog(id, refresh) }, 'Manual reward'),
    can('ratingslip:write') && h('button', { id: 'slip-open', type: 'button', onclick: () => openSlipDialog(id, refresh) }, 'Open a slip'),
    can('wallet:escrow') && h('button', { id: 'hold-open', type: 'button', class: 'warn', onclick: () => holdDialog(id, refresh) }, 'Redeem points'));
  main.append(h('h1', { id: 'player-name' }, player.display_name,
    ' ', h('span', { class: 'muted' }, player.card_number || '')), actions, summary,
  h('div', { class: 'grid' }, slips, wallet), ledger);

  const ledgerBody = h('tbody', { id: 'ledger' });
  const older = h('button', { id: 'older', type: 'button', class: 'quiet', hidden: true }, 'Older entries');
  let ledgerCursor = null;
  ledger.append(h('h2', {}, 'Ledger'), h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Type'), h('th', { class: 'num' }, 'Points'),
      h('th', { class: 'num' }, 'Balance'), h('th', {}, 'Reason'))), ledgerBody)), older);
  older.addEventListener('click', () => loadLedger(true));

  function renderSummary(l) {
    summary.replaceChildren(
      h('div', { class: 'stats' },
        h('div', {}, h('div', { class: 'muted' }, 'Available'), h('div', { class: 'big', id: 'balance' }, fmt(l.current_balance))),
        h('div', {}, h('div', { class: 'muted' }, 'Held for redemptions'), h('div', { class: 'big', id: 'escrow' }, fmt(l.escrow_balance))),
        h('div', {}, h('div', { class: 'muted' }, 'Lifetime'), h('div', { class: 'big', id: 'lifetime' }, fmt(l.lifetime_points))),
        h('div', { style: 'min-width:200px;flex:1' }, h('div', { class: 'muted' }, 'Tier'),
          h('span', { class: 'tier', id: 'tier' }, l.tier),
          h('div', { class: 'progress', role: 'progressbar', 'aria-label': 'Progress to the next tier',
            'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': l.tier_progress, id: 'progress' },
          h('div', { style: `width:${Number(l.tier_progress) || 0}%` })),
          h('div', { class: 'muted' }, `${l.tier_progress}% to the next tier`))));
  }

  async function loadLedger(append) {
    if (!can('loyalty:view_all')) return;
    const url = `/v1/players/${id}/ledger?limit=20${append && ledgerCursor ? `&cursor=${ledgerCursor}` : ''}`;
    const page = await api('GET', url);
    if (gen !== state.generation) return;
    if (!append) ledgerBody.replaceChildren();
    for (const e of page.entries) {
      ledgerBody.append(h('tr', { class: 'entry', 'data-id': e.id },
        h('td', {}, when(e.created_at)), h('td', {}, e.transaction_type),
        h('td', { class: 'num' }, (e.points_change > 0 ? '+' : '') + fmt(e.points_change)),
        h('td', { class: 'num' }, fmt(e.balance_after)), h('td', {}, e.reason || '')));
    }
    ledgerCursor = page.next_cursor;
    older.hidden = !ledgerCursor;
  }

  async function refresh() {
    if (gen !== state.generation) return;
    const l = await api('GET', `/v1/players/${id}/loyalty`);
    if (gen !== state.generation) return;
    renderSummary(l);
    await Promise.all([loadLedger(false), renderSlips(slips, id, gen, refresh),
      renderWallet(wallet, id, gen, refresh)]);
  }

  renderSummary(loyalty);
  await Promise.all([loadLedger(false), renderSlips(slips, id, gen, refresh), renderWallet(wallet, id, gen, refresh)]);
  follow(id, gen, refresh);
}

// Live updates: the event stream when the role may read it, else polling.
async function follow(playerId, gen, refresh) {
  let last = '';
  const changed = async () => {
    const l = await api('GET', `/v1/players/${playerId}/loyalty`).catch(() => null);
    const mark = l ? `${l.current_balance}/${l.escrow_balance}/${l.updated_at}` : last;
    if (mark !== last) { last = mark; await refresh().catch(() => {}); }
  };
  if (can('audit:read')) {
    try {
      const subs = await api('GET', '/v1/subscribers');
      const resp = await fetch(`/v1/events/stream?after=${subs.outbox_head}`, {
        headers: { Authorization: `Bearer ${state.token}` },
        signal: state.abort.signal,
      });
      if (resp.ok && resp.body) {
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        while (gen === state.generation) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n');
            if (!data) continue;
            let ev;
            try { ev = JSON.parse(data); } catch (e) { continue; }
            if (ev.payload && ev.payload.player_id === playerId) await changed();
          }
        }
        reader.cancel().catch(() => {});
        return;
      }
    } catch (e) {
      if (gen !== state.generation) return; // navigated away: the stream was aborted
    }
  }
  while (gen === state.generation) {
    await sleep(2000);
    if (gen === state.generation) await changed();
  }
}

// ------------------------------------------------------------ slips

async function renderSlips(box, playerId, gen, refresh) {
  const lists = await Promise.all(['OPEN', 'PAUSED'].map((st) =>
    api('GET', `/v1/rating-slips?player_id=${playerId}&status=${st}&limit=20`)));
  if (gen !== state.generation) return;
  const slips = lists.flatMap((l) => l.rating_slips);
  box.replaceChildren(h('h2', {}, 'Rating slips at the table'));
  if (!slips.length) box.append(h('p', { class: 'muted', id: 'no-slips' }, 'No open slip.'));
  for (const slip of slips) box.append(slipCard(slip, gen, refresh));
  const results = box.__results || [];
  for (const r of results) box.append(r);
}

function slipCard(slip, gen, refresh) {
  const preview = h('span', { class: 'slip-preview' }, '…');
  const box = errorBox(null);
  const bet = h('input', { class: 'slip-bet', type: 'number', min: '0.01', step: '0.01', value: slip.average_bet, 'aria-label': 'Average bet' });
  const card = h('div', { class: 'slip card', 'data-id': slip.id, 'data-status': slip.status },
    h('div', {}, h('strong', {}, slip.status === 'PAUSED' ? 'Paused' : 'Playing'), ' · seat ', slip.seat_number ?? '–',
      ' · ', h('span', { class: 'muted' }, `${Math.floor(slip.accumulated_seconds / 60)} min played`)),
    h('div', {}, 'Points if completed now: ', preview),
    can('ratingslip:write') && h('div', { class: 'row' },
      slip.status === 'OPEN'
        ? h('button', { type: 'button', class: 'quiet slip-pause', onclick: () => act('pause') }, 'Pause')
        : h('button', { type: 'button', class: 'quiet slip-resume', onclick: () => act('resume') }, 'Resume'),
      h('label', {}, 'Average bet', bet),
      h('button', { type: 'button', class: 'quiet slip-bet-save', onclick: saveBet }, 'Change bet'),
      h('button', { type: 'button', class: 'slip-complete', onclick: complete }, 'Complete')),
    box);
  async function act(action) {
    try { await api('POST', `/v1/rating-slips/${slip.id}/${action}`, {}); await refresh(); } catch (e) { showError(box, e); }
  }
  async function saveBet() {
    try { await api('PATCH', `/v1/rating-slips/${slip.id}`, { average_bet: bet.value }); await refresh(); } catch (e) { showError(box, e); }
  }
  async function complete(ev) {
    const button = ev.currentTarget;
    button.disabled = true;
    const slips = card.parentElement;
    try {
      const done = await api('POST', `/v1/rating-slips/${slip.id}/complete`, {}, { key: newKey() });
      slips.__results = [completionResult(done)];
    } catch (e) {
      if (e.code === 'PARTIAL_COMPLETION') slips.__results = [partialPanel(slip.id, refresh, slips)];
      else { showError(box, e); button.disabled = false; return; }
    }
    await refresh();
  }
  // The live preview of the points: what completing now would earn.
  // (The card is not on the page yet when this starts: the first reading
  // happens regardless, later ones while the card is shown.)
  (async () => {
    for (let first = true; gen === state.generation && (first || card.isConnected); first = false) {
      try {
        const p = await api('GET', `/v1/rating-slips/${slip.id}/preview`, undefined, { quiet: true });
        preview.textContent = `${fmt(p.points)} (${fmt(p.rounds)} rounds)`;
      } catch (e) { preview.textContent = '—'; }
      await sleep(5000);
    }
  })();
  return card;
}

function completionResult(done) {
  const l = done.loyalty;
  const tier = l.tier_before !== l.tier_after ? ` The player moved from ${l.tier_before} to ${l.tier_after}!` : '';
  return h('div', { class: 'msg ok slip-result', role: 'status' },
    `Slip completed: +${fmt(l.points_earned)} points, balance ${fmt(l.balance_after)}.${tier}`);
}

// A slip that closed without its points: say so, and offer the retry
// (recover-loyalty, idempotent: pressing twice awards once).
function partialPanel(slipId, refresh, slips) {
  const out = h('div', { class: 'msg warn partial', role: 'alert' },
    h('p', {}, 'The slip is closed, but its points could not be awarded yet. The system keeps retrying by itself; you can retry now.'));
  const key = newKey();
  const retry = h('button', { type: 'button', class: 'retry-award' }, 'Retry award');
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try {
      const done = await api('POST', `/v1/rating-slips/${slipId}/recover-loyalty`, {}, { key });
      slips.__results = [completionResult(done)];
      await refresh();
    } catch (e) {
      out.append(h('p', { class: 'retry-error' }, e.message));
      retry.disabled = false;
    }
  });
  out.append(retry);
  return out;
}

// ------------------------------------------------------------ dialogs

function dialog(title, id, fields, submitText, onSubmit) {
  const box = errorBox(`${id}-error`);
  const ok = h('div', { id: `${id}-ok`, class: 'msg ok', role: 'status', hidden: true });
  const submit = h('button', { id: `${id}-submit`, type: 'submit' }, submitText);
  const close = h('button', { id: `${id}-close`, type: 'button', class: 'quiet' }, 'Close');
  const form = h('form', { class: 'card', id: `${id}-form`, 'aria-label': title },
    h('h2', {}, title), ...fields, h('div', { class: 'row' }, submit, close), box, ok);
  const overlay = h('div', { class: 'overlay' }, form);
  close.addEventListener('click', () => overlay.remove());
  overlay.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') overlay.remove(); });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    submit.disabled = true;
    box.hidden = true;
    try {
      const text = await onSubmit();
      ok.textContent = text;
      ok.hidden = false;
      submit.hidden = true;
      close.focus();
    } catch (e) {
      showError(box, e);
      submit.disabled = false;
    }
  });
  document.body.append(overlay);
  const first = form.querySelector('input, select, textarea');
  if (first) first.focus();
  return form;
}

// One Idempotency-Key per dialog: a double click or a resend after a dropped
// connection replays the first answer instead of rewarding twice.
async function rewardDialog(playerId, refresh) {
  const key = newKey();
  const points = h('input', { id: 'reward-points', type: 'number', required: true, step: 1,
    min: can('loyalty:adjust') ? -10000 : 1, max: 10000 });
  const reason = h('textarea', { id: 'reward-reason', required: true, minlength: 10, maxlength: 500 });
  const slip = h('select', { id: 'reward-slip' }, h('option', { value: '' }, 'No slip'));
  api('GET', `/v1/rating-slips?player_id=${playerId}&limit=20`).then((page) => {
    for (const sl of page.rating_slips) slip.append(h('option', { value: sl.id }, `${sl.status} slip from ${when(sl.started_at)}`));
  }).catch(() => {});
  dialog('Manual reward', 'reward', [
    h('label', { for: 'reward-points' }, can('loyalty:adjust') ? 'Points (negative for an adjustment)' : 'Points (1 to 10,000)', points),
    h('label', { for: 'reward-reason' }, 'Reason (at least 10 characters)', reason),
    h('label', { for: 'reward-slip' }, 'Rating slip (optional)', slip),
  ], 'Award points', async () => {
    const body = { player_id: playerId, staff_id: state.me.id, points: Number(points.value), reason: reason.value };
    if (slip.value) body.rating_slip_id = slip.value;
    const entry = await api('POST', '/v1/loyalty/manual-rewards', body, { key });
    refresh().catch(() => {});
    return entry.idempotent_replay
      ? 'This reward was already given; it was not given twice.'
      : `Awarded ${fmt(entry.points_change)} points. New balance ${fmt(entry.balance_after)}.`;
  });
}

async function openSlipDialog(playerId, refresh) {
  const key = newKey();
  const table = h('select', { id: 'slip-table', required: true });
  const seat = h('input', { id: 'slip-seat', type: 'number', min: 1, max: 20, step: 1 });
  const bet = h('input', { id: 'slip-bet', type: 'number', required: true, min: '0.01', step: '0.01' });
  const tables = await api('GET', '/v1/tables?limit=200');
  for (const t of tables.tables) table.append(h('option', { value: t.id }, `${t.name} (${t.game_type})`));
  dialog('Open a rating slip', 'slip', [
    h('label', { for: 'slip-table' }, 'Table', table),
    h('label', { for: 'slip-seat' }, 'Seat (optional)', seat),
    h('label', { for: 'slip-bet' }, 'Average bet', bet),
  ], 'Start rating', async () => {
    const body = { player_id: playerId, table_id: table.value, average_bet: bet.value };
    if (seat.value) body.seat_number = Number(seat.value);
    await api('POST', '/v1/rating-slips', body, { key });
    refresh().catch(() => {});
    return 'The slip is open; play is being rated.';
  });
}

async function holdDialog(playerId, refresh) {
  const key = newKey();
  const merchant = h('select', { id: 'hold-merchant', required: true });
  const amount = h('input', { id: 'hold-amount', type: 'number', required: true, min: 1, max: 1000000, step: 1 });
  const reason = h('input', { id: 'hold-reason', required: true, maxlength: 500 });
  const reference = h('input', { id: 'hold-reference', maxlength: 200 });
  const merchants = await api('GET', '/v1/merchants?limit=200');
  for (const m of merchants.merchants) merchant.append(h('option', { value: m.id }, m.name));
  dialog('Redeem points (hold for an outlet)', 'hold', [
    h('label', { for: 'hold-merchant' }, 'Outlet', merchant),
    h('label', { for: 'hold-amount' }, 'Points to hold', amount),
    h('label', { for: 'hold-reason' }, 'What for', reason),
    h('label', { for: 'hold-reference' }, "Outlet's check number (optional)", reference),
  ], 'Hold points', async () => {
    const body = { player_id: playerId, merchant_id: merchant.value, amount: Number(amount.value), reason: reason.value };
    if (reference.value.trim()) body.reference = reference.value.trim();
    const e = await api('POST', '/v1/escrows', body, { key });
    refresh().catch(() => {});
    return `${fmt(e.amount)} points are held. Settle when the outlet confirms.`;
  });
}

// ------------------------------------------------------------ wallet

async function renderWallet(box, playerId, gen, refresh) {
  const readers = ['wallet:escrow', 'loyalty:view_all', 'audit:read'];
  if (!readers.some(can)) return;
  const page = await api('GET', `/v1/players/${playerId}/escrows?limit=20`);
  if (gen !== state.generation) return;
  box.hidden = false;
  box.replaceChildren(h('h2', {}, 'Redemptions'));
  if (!page.escrows.length) box.append(h('p', { class: 'muted' }, 'No redemption yet.'));
  for (const e of page.escrows) box.append(escrowCard(e, refresh));
}

function escrowCard(e, refresh) {
  const err = errorBox(null);
  const amount = h('input', { class: 'escrow-amount', type: 'number', min: 1, max: e.held_amount, step: 1, 'aria-label': 'Points to settle' });
  const final = h('input', { class: 'escrow-final', type: 'checkbox', checked: true });
  // One key per intended action on this version of the escrow.
  const keys = { settle: newKey(), capture: newKey(), refund: newKey() };
  async function post(what, path, body) {
    try {
      await api('POST', path, { ...body, expected_version: e.version }, { key: keys[what] });
      await refresh();
    } catch (x) {
      showError(err, x);
      if (x.code === 'CONFLICT') refresh().catch(() => {});
    }
  }
  const held = e.status === 'HELD';
  return h('div', { class: 'escrow card', 'data-id': e.id },
    h('div', {}, h('strong', { class: 'escrow-status' }, e.status), ' · ', fmt(e.amount), ' points · ', e.reason,
      e.reference ? ` · ${e.reference}` : ''),
    h('div', { class: 'muted' }, `settled ${fmt(e.settled_amount)}, refunded ${fmt(e.refunded_amount)}, held `,
      h('span', { class: 'escrow-held' }, fmt(e.held_amount))),
    held && can('wallet:escrow') && h('div', { class: 'row' },
      h('button', { type: 'button', class: 'escrow-settle', onclick: () => post('settle', `/v1/escrows/${e.id}/settle`, {}) }, 'Settle all'),
      h('label', {}, 'Points', amount),
      h('label', {}, h('span', {}, 'Last capture'), final),
      h('button', { type: 'button', class: 'quiet escrow-capture', onclick: () => post('capture', `/v1/escrows/${e.id}/settle`, { amount: Number(amount.value), final: final.checked }) }, 'Settle part'),
      h('button', { type: 'button', class: 'quiet escrow-refund', onclick: () => post('refund', `/v1/escrows/${e.id}/refund`, {}) }, 'Refund')),
    err);
}

// ------------------------------------------------------------ reports

async function reportsView(main, gen) {
  const to = new Date();
  const from = new Date(to.getTime() - 24 * 3600 * 1000);
  const [report, alerts] = await Promise.all([
    api('GET', `/v1/reports/manual-rewards?from=${from.toISOString()}&to=${to.toISOString()}&bucket=hour`),
    api('GET', '/v1/alerts?limit=50')]);
  if (gen !== state.generation) return;
  main.append(h('h1', {}, 'Manual rewards, last 24 hours'),
    h('section', { class: 'card' }, chart(report, from, to)),
    h('section', { class: 'card' }, h('h2', {}, 'Alerts'), alertsList(alerts.alerts)));
}

const palette = ['#14532d', '#b45309', '#1d4ed8', '#9d174d', '#0f766e', '#6d28d9', '#4d7c0f', '#be123c'];

// One line per staff member: rewards per hour, with the alert threshold.
function chart(report, from, to) {
  const W = 960; const H = 320; const L = 40; const B = 28; const T = 12; const R = 12;
  const hours = 24;
  const start = Math.floor(from.getTime() / 3600000) * 3600000;
  const byStaff = new Map();
  for (const b of report.buckets) {
    const i = Math.round((new Date(b.bucket_start).getTime() - start) / 3600000);
    if (i < 0 || i > hours) continue;
    if (!byStaff.has(b.staff_id)) byStaff.set(b.staff_id, new Array(hours + 1).fill(0));
    byStaff.get(b.staff_id)[i] += b.count;
  }
  const threshold = report.alert.threshold;
  const maxY = Math.max(threshold + 5, ...[...byStaff.values()].flat());
  const x = (i) => L + (i * (W - L - R)) / hours;
  const y = (v) => H - B - (v * (H - B - T)) / maxY;
  const svg = s('svg', { class: 'chart', id: 'reward-chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': 'Manual rewards per staff member per hour, with the alert threshold' });
  for (let v = 0; v <= maxY; v += Math.max(5, Math.ceil(maxY / 5 / 5) * 5)) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e5e7eb' }), s('text', { x: 4, y: y(v) + 4 }, v));
  }
  for (let i = 0; i <= hours; i += 3) {
    const d = new Date(start + i * 3600000);
    svg.append(s('text', { x: x(i) - 12, y: H - 8 }, `${String(d.getHours()).padStart(2, '0')}:00`));
  }
  svg.append(s('line', { class: 'threshold', x1: L, x2: W - R, y1: y(threshold), y2: y(threshold),
    stroke: '#b91c1c', 'stroke-dasharray': '6 4', 'stroke-width': 2 }),
  s('text', { x: W - R - 190, y: y(threshold) - 6 }, `alert threshold: ${threshold} per hour`));
  const legend = h('div', { class: 'legend' });
  let n = 0;
  for (const [staff, counts] of byStaff) {
    const color = palette[n++ % palette.length];
    svg.append(s('polyline', { class: 'staff-line', fill: 'none', stroke: color, 'stroke-width': 2.5,
      points: counts.map((c, i) => `${x(i)},${y(c)}`).join(' ') }));
    legend.append(h('span', {}, h('i', { style: `background:${color}` }), `staff ${staff.slice(-8)}: ${counts.reduce((a, b) => a + b, 0)}`));
  }
  if (!byStaff.size) legend.append(h('span', { class: 'muted' }, 'No manual reward in the last 24 hours.'));
  return h('div', {}, svg, legend);
}

function alertsList(alerts) {
  if (!alerts.length) return h('p', { class: 'muted', id: 'alerts' }, 'No alert.');
  return h('ul', { class: 'list', id: 'alerts' }, alerts.map((a) => h('li', {},
    h('div', { style: 'padding:.6rem .4rem' }, h('strong', {}, `${a.count} manual rewards in ${a.window_seconds / 60} minutes`),
      ` by staff ${a.staff_id} — ${when(a.occurred_at)}`))));
}

// ------------------------------------------------------------ audit

function auditView(main, gen) {
  const fields = ['correlation_id', 'staff_id', 'player_id'].map((f) =>
    h('label', { for: `audit-${f}` }, f.replace('_', ' '), h('input', { id: `audit-${f}`, autocomplete: 'off' })));
  const from = h('input', { id: 'audit-from', type: 'datetime-local' });
  const to = h('input', { id: 'audit-to', type: 'datetime-local' });
  const results = h('tbody', { id: 'audit-results' });
  const box = errorBox('audit-error');
  const iso = (v) => (v ? new Date(v).toISOString() : '');
  const form = h('form', { class: 'card' }, h('h1', {}, 'Audit search'),
    h('div', { class: 'row' }, fields, h('label', { for: 'audit-from' }, 'From', from), h('label', { for: 'audit-to' }, 'To', to),
      h('button', { id: 'audit-search', type: 'submit' }, 'Search')), box,
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['When', 'Player', 'Type', 'Points', 'Staff', 'Reason', 'Correlation']
      .map((c) => h('th', {}, c)))), results)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    box.hidden = true;
    const q = new URLSearchParams({ limit: '100' });
    for (const f of ['correlation_id', 'staff_id', 'player_id']) {
      const v = document.getElementById(`audit-${f}`).value.trim();
      if (v) q.set(f, v);
    }
    if (from.value) q.set('from', iso(from.value));
    if (to.value) q.set('to', iso(to.value));
    try {
      const page = await api('GET', `/v1/ledger?${q}`);
      if (gen !== state.generation) return;
      results.replaceChildren(...page.entries.map((e) => h('tr', { class: 'audit-row' },
        h('td', {}, when(e.created_at)), h('td', {}, e.player_id), h('td', {}, e.transaction_type),
        h('td', { class: 'num' }, fmt(e.points_change)), h('td', {}, e.staff_id || ''), h('td', {}, e.reason || ''),
        h('td', {}, e.correlation_id))));
      if (!page.entries.length) results.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'Nothing matches.')));
    } catch (e) { showError(box, e); }
  });
  main.append(form, exportForm());
}

// The ledger export for a date range, downloaded with the token (a plain
// link could not carry it).
function exportForm() {
  const from = h('input', { id: 'export-from', type: 'date' });
  const to = h('input', { id: 'export-to', type: 'date' });
  const format = h('select', { id: 'export-format' }, h('option', { value: 'csv' }, 'CSV (spreadsheet)'), h('option', { value: 'jsonl' }, 'JSON lines'));
  const status = h('p', { id: 'export-status', class: 'muted', role: 'status' });
  const box = errorBox('export-error');
  const form = h('form', { class: 'card' }, h('h2', {}, 'Export the ledger'),
    h('div', { class: 'row' }, h('label', { for: 'export-from' }, 'From (day)', from), h('label', { for: 'export-to' }, 'To (day, included)', to),
      h('label', { for: 'export-format' }, 'Format', format), h('button', { id: 'export-download', type: 'submit' }, 'Download')), status, box);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    box.hidden = true;
    const q = new URLSearchParams({ format: format.value });
    if (from.value) q.set('from', new Date(`${from.value}T00:00:00`).toISOString());
    if (to.value) q.set('to', new Date(new Date(`${to.value}T00:00:00`).getTime() + 86400000).toISOString());
    try {
      const resp = await fetch(`/v1/exports/ledger?${q}`, { headers: { Authorization: `Bearer ${state.token}` } });
      if (!resp.ok) {
        const data = await resp.json().catch(() => ({}));
        throw new ApiError(data.error || { code: `HTTP_${resp.status}` }, resp.status);
      }
      const blob = await resp.blob();
      const text = await blob.text();
      const lines = text.split('\n').filter((l) => l).length - (format.value === 'csv' ? 1 : 0);
      const a = h('a', { href: URL.createObjectURL(blob), download: `ledger.${format.value === 'csv' ? 'csv' : 'jsonl'}` });
      document.body.append(a);
      a.click();
      a.remove();
      status.textContent = `Downloaded ${lines} ledger entries.`;
    } catch (e) { showError(box, e); }
  });
  return form;
}

// ------------------------------------------------------------ routing

async function render() {
  const gen = ++state.generation;
  if (state.abort) state.abort.abort();
  state.abort = new AbortController();
  const main = document.getElementById('main');
  document.querySelectorAll('.overlay').forEach((o) => o.remove());
  main.replaceChildren();
  const route = location.hash.replace(/^#\/?/, '').split('/');
  if (state.token && !state.me) {
    try { await signIn(state.token); } catch (e) { state.token = null; sessionStorage.removeItem('loyalty.token'); }
  }
  if (gen !== state.generation) return;
  const nav = document.getElementById('nav');
  nav.hidden = !state.me;
  if (!state.me) { signInView(main); return; }
  document.getElementById('whoami').textContent = `${state.me.name} · ${state.me.role.replace('_', ' ')}`;
  document.getElementById('nav-reports').hidden = !can('audit:read');
  document.getElementById('nav-audit').hidden = !can('loyalty:view_all');
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${route[0]}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    switch (route[0]) {
      case 'player': await playerView(main, gen, route[1]); break;
      case 'reports': await reportsView(main, gen); break;
      case 'audit': auditView(main, gen); break;
      default: playersView(main, gen);
    }
  } catch (e) {
    if (gen === state.generation) main.append(h('div', { class: 'msg bad', role: 'alert' }, e.message));
  }
}

document.getElementById('signout').addEventListener('click', () => signOut(true));
window.addEventListener('hashchange', render);
render();
