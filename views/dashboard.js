// scimlite's dashboard: fills the page from /dashboard/data every two seconds, and
// the instructor's board of seats from /dashboard/seats.
// Everything is set as text (never as HTML), so nothing an IdP sends can run here.
'use strict';

const REFRESH_MS = 2000;
// The instructor looking at a seat's data (/?seat=N) asks for that seat's; a seat's
// session is given its own whatever it asks.
const ASKED_SEAT = new URLSearchParams(window.location.search).get('seat');
const SEAT_QUERY = ASKED_SEAT === null ? '' : `?seat=${encodeURIComponent(ASKED_SEAT)}`;
const expanded = new Set();    // exchange ids whose details are open
const details = new Map();     // exchange id -> its details, once fetched

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? '' : String(text);
  if (className) td.className = className;
  return td;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function countText(shown, total) {
  return shown < total ? `(newest ${shown} of ${total})` : `(${total})`;
}

function userRows(users) {
  return users.map((user) => {
    const row = document.createElement('tr');
    row.dataset.id = user.id;
    cell(row, user.userName, 'user-name');
    cell(row, user.name);
    cell(row, user.active ? 'yes' : 'no', user.active ? 'active' : 'inactive');
    cell(row, user.groups.join(', '));
    return row;
  });
}

function groupRows(groups) {
  return groups.map((group) => {
    const row = document.createElement('tr');
    row.dataset.id = group.id;
    cell(row, group.displayName, 'group-name');
    cell(row, group.members, 'number');
    return row;
  });
}

function pretty(text) {
  if (!text) return '(empty)';
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (error) {
    return text;
  }
}

function headerLines(headers) {
  return Object.entries(headers || {}).map(([name, value]) => `${name}: ${value}`).join('\n');
}

function detailBlock(title, headers, body) {
  const block = document.createElement('div');
  block.className = 'detail';
  const heading = document.createElement('h3');
  heading.textContent = title;
  const head = document.createElement('pre');
  head.className = 'headers';
  head.textContent = headerLines(headers);
  const content = document.createElement('pre');
  content.className = 'body';
  content.textContent = pretty(body);
  block.append(heading, head, content);
  return block;
}

function detailRow(id) {
  const row = document.createElement('tr');
  row.className = 'exchange-detail';
  const td = row.insertCell();
  td.colSpan = 6;
  const inside = document.createElement('div');   // the cell stays a table cell; the grid is inside
  inside.className = 'detail-grid';
  td.append(inside);
  const exchange = details.get(id);
  if (!exchange) {
    inside.textContent = 'Loading…';
  } else if (exchange.error) {
    inside.textContent = exchange.error;
  } else {
    inside.append(detailBlock(`Request: ${exchange.method} ${exchange.path}`, exchange.request_headers, exchange.request_body),
                  detailBlock(`Response: ${exchange.status}`, exchange.response_headers, exchange.response_body));
  }
  return row;
}

async function loadDetails(id) {
  try {
    const answer = await fetch(`/dashboard/exchanges/${encodeURIComponent(id)}${SEAT_QUERY}`, {cache: 'no-store'});
    if (answer.status === 401) return window.location.reload();
    details.set(id, answer.ok ? await answer.json() : {error: 'That exchange is no longer kept.'});
  } catch (error) {
    details.delete(id);
    expanded.delete(id);
    document.getElementById('status').textContent = `Could not load the exchange: ${error.message}`;
  }
  render(lastData);
}

function toggle(id) {
  if (expanded.has(id)) {
    expanded.delete(id);
  } else {
    expanded.add(id);
    if (!details.has(id)) loadDetails(id);
  }
  render(lastData);
  const button = document.querySelector(`tr.exchange[data-id="${CSS.escape(id)}"] button.expand`);
  if (button) button.focus();   // the redraw replaced the button that was clicked
}

function statusClass(status) {
  if (status >= 500) return 'status-5xx';
  if (status >= 400) return 'status-4xx';
  return 'status-2xx';
}

function exchangeRows(exchanges) {
  const rows = [];
  for (const exchange of exchanges) {
    const row = document.createElement('tr');
    row.className = 'exchange';
    row.dataset.id = exchange.id;
    const time = row.insertCell();
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'expand';
    button.setAttribute('aria-expanded', expanded.has(exchange.id) ? 'true' : 'false');
    const received = new Date(exchange.received);
    button.textContent = received.toLocaleTimeString();
    button.title = received.toLocaleString();
    button.addEventListener('click', () => toggle(exchange.id));
    time.append(button);
    cell(row, exchange.method, 'method');
    cell(row, exchange.path, 'path');
    cell(row, exchange.status, `status ${statusClass(exchange.status)}`);
    cell(row, exchange.duration_ms.toFixed(1), 'number');
    cell(row, exchange.user_agent, 'agent');
    rows.push(row);
    if (expanded.has(exchange.id)) rows.push(detailRow(exchange.id));
  }
  return rows;
}

const CLOCK = {hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'};   // narrow columns

function timeText(stamp) {
  return stamp ? new Date(stamp).toLocaleTimeString([], CLOCK) : '—';
}

function editLabel(seat) {
  const form = document.getElementById('label-form');
  form.elements.seat.value = seat.number;
  form.elements.label.value = seat.label || '';
  form.elements.label.focus();
}

function seatRows(seats) {
  const milestones = [...document.querySelectorAll('#seats th[data-milestone]')].map((th) => th.dataset.milestone);
  return seats.map((seat) => {
    const row = document.createElement('tr');
    row.dataset.seat = seat.number;
    cell(row, seat.number, 'number');
    const label = cell(row, seat.label, 'label');
    const edit = document.createElement('button');
    edit.type = 'button';
    edit.className = 'link edit';
    edit.textContent = seat.label ? 'edit' : 'name it';
    edit.addEventListener('click', () => editLabel(seat));
    label.append(seat.label ? ' ' : '', edit);
    for (const name of milestones) {
      const stamp = seat.milestones[name];
      const td = cell(row, timeText(stamp), `milestone ${stamp ? 'reached' : 'pending'}`);
      td.dataset.milestone = name;
      if (stamp) td.title = new Date(stamp).toLocaleString();
    }
    const error = seat.last_error;
    const errorCell = cell(row, error ? `${error.status} ${error.detail || ''}`.trim() : '', 'error');
    if (error) {
      errorCell.classList.add(statusClass(error.status));
      errorCell.title = `${new Date(error.at).toLocaleString()}: ${error.detail || ''}`;
    }
    const link = document.createElement('a');
    link.href = `/?seat=${seat.number}`;
    link.textContent = 'exchanges';
    row.insertCell().append(link);
    return row;
  });
}

let lastData = null;
let lastText = null;   // the data as received: the page is redrawn only when it changes
let lastSeatsText = null;

function render(data) {
  if (!data) return;
  replaceRows(document.querySelector('#users tbody'), userRows(data.users.shown));
  document.getElementById('users-count').textContent = countText(data.users.shown.length, data.users.total);
  replaceRows(document.querySelector('#groups tbody'), groupRows(data.groups.shown));
  document.getElementById('groups-count').textContent = countText(data.groups.shown.length, data.groups.total);
  replaceRows(document.querySelector('#exchanges tbody'), exchangeRows(data.exchanges.shown));
  document.getElementById('exchanges-count').textContent =
    data.exchanges.recording ? `(newest ${data.exchanges.shown.length}; ${data.exchanges.kept} are kept)` : '';
}

async function fetchText(path) {
  const answer = await fetch(path, {cache: 'no-store'});
  if (answer.status === 401) {   // the session ended: back to the login form
    window.location.reload();
    return null;
  }
  if (!answer.ok) throw new Error(`the server answered ${answer.status}`);
  return answer.text();
}

async function refresh() {
  const status = document.getElementById('status');
  const board = document.querySelector('#seats tbody');
  try {
    const text = await fetchText(`/dashboard/data${SEAT_QUERY}`);
    if (text === null) return;
    if (text !== lastText) {   // a redraw would drop the keyboard focus and any selected text
      lastText = text;
      lastData = JSON.parse(text);
      render(lastData);
    }
    if (board) {
      const seatsText = await fetchText('/dashboard/seats');
      if (seatsText === null) return;
      if (seatsText !== lastSeatsText) {
        lastSeatsText = seatsText;
        const seats = JSON.parse(seatsText).seats;
        replaceRows(board, seatRows(seats));
        const started = seats.filter((seat) => seat.milestones.first_request).length;
        document.getElementById('seats-count').textContent = `(${seats.length}; ${started} started)`;
        for (const th of document.querySelectorAll('#seats th[data-milestone]')) {   // how many got this far
          const reached = seats.filter((seat) => seat.milestones[th.dataset.milestone]).length;
          th.querySelector('.reached-count').textContent = `(${reached})`;
        }
      }
    }
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    status.classList.remove('stale');
  } catch (error) {
    status.textContent = `Not updated: ${error.message}`;
    status.classList.add('stale');
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
