<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scimlite — {{'seat %d' % seat if seat else 'dashboard'}}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/dashboard.css">
<script src="/dashboard/dashboard.js" defer></script>
</head>
<body data-seat="{{seat}}">
<header>
  <h1>scimlite</h1>
  % if seat:
  <p id="seat-name" class="seat-name">Seat {{seat}}{{' — ' + label if label else ''}}</p>
  % end
  <p class="endpoint">SCIM base URL <code>{{scim_url}}</code></p>
  <p id="status" class="status" aria-live="polite">Loading…</p>
  % if seat and not own:
  <p><a href="/">Back to the board</a></p>
  % end
  <form method="post" action="/dashboard/logout"><button type="submit" class="link">Log out</button></form>
</header>
<main>
  % if board:
  <section id="board-section" class="wide">
    <h2>Seats <span id="seats-count" class="count"></span></h2>
    <p class="hint">Each seat's IdP, live: when it first reached each step (your local time), its last error,
       and its exchanges. <a href="/dashboard/cards">Seat cards to print</a> ·
       <a href="/dashboard/cards.csv">the same as CSV</a></p>
    <table id="seats">
      <thead><tr><th>Seat</th><th>Label</th>
        % for name, heading, meaning in steps:
        <th data-milestone="{{name}}" title="{{meaning}}">{{heading}} <span class="count reached-count"></span></th>
        % end
        <th>Last error</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <form id="label-form" class="inline" method="post" action="/dashboard/seats/label">
      <label>Seat <input type="number" name="seat" min="1" required></label>
      <label>Label <input type="text" name="label" maxlength="80" placeholder="the attendee's name"></label>
      <button type="submit">Save label</button>
    </form>
    <p class="hint">Test Connection is Okta's “Test API Credentials”, <code>GET /Users?startIndex=1&amp;count=2</code>,
       or Entra's “Test Connection”, <code>GET /Users?filter=userName eq "&lt;a random GUID&gt;"</code>.</p>
    <details class="hint">
      <summary>What each step means</summary>
      <dl class="steps">
        % for name, heading, meaning in steps:
        <dt>{{heading}}</dt><dd>{{meaning}}</dd>
        % end
      </dl>
    </details>
    <h2 class="own-data">Your own data set <span class="count">(requests with the server's token)</span></h2>
  </section>
  % end
  <section id="users-section">
    <h2>Users <span id="users-count" class="count"></span></h2>
    <table id="users">
      <thead><tr><th>userName</th><th>Name</th><th>Active</th><th>Groups</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="groups-section">
    <h2>Groups <span id="groups-count" class="count"></span></h2>
    <table id="groups">
      <thead><tr><th>displayName</th><th>Members</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="exchanges-section" class="wide">
    <h2>Recent SCIM exchanges <span id="exchanges-count" class="count"></span></h2>
    % if recording:
    <p class="hint">The newest first; the server keeps the last {{kept}}. Click one to see what was sent and answered.
       Tokens and passwords are scrubbed before anything is stored.</p>
    % else:
    <p class="hint">Recording is off (<code>record_exchanges = off</code> in config.ini).</p>
    % end
    <table id="exchanges">
      <thead><tr><th>Time</th><th>Method</th><th>Path</th><th>Status</th><th>ms</th><th>Client</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  % if seat:
  <section id="reset-section" class="wide">
    <details>
      <summary>{{'Reset my seat' if own else 'Reset seat %d' % seat}}</summary>
      <p class="warning">This deletes the seat's users, groups, exchanges and progress on the board; its token
         stays. Okta and Entra still hold the ids they provisioned: until you re-push the app's users and groups
         (Okta) or restart provisioning (Entra), their updates get 404s.</p>
      <form method="post" action="/dashboard/reset{{'' if own else '?seat=%d' % seat}}">
        <button type="submit" class="danger">Yes, empty seat {{seat}}</button>
      </form>
    </details>
  </section>
  % end
  % if seats_hint:
  <p id="seats-hint" class="hint wide">Running a workshop? <code>--seats 30</code> gives each attendee a token and a data
     set of their own, and this page a board of their progress (README: Workshops, seats for a whole room).</p>
  % end
</main>
</body>
</html>
