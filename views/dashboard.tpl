<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scimlite — dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/dashboard.css">
<script src="/dashboard/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>scimlite</h1>
  <p class="endpoint">SCIM base URL <code>{{scim_url}}</code></p>
  <p id="status" class="status" aria-live="polite">Loading…</p>
  <form method="post" action="/dashboard/logout"><button type="submit" class="link">Log out</button></form>
</header>
<main>
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
</main>
</body>
</html>
