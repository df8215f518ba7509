<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scimlite — seat cards</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/dashboard.css">
</head>
<body class="cards">
<header class="no-print">
  <h1>scimlite — seat cards</h1>
  <p>{{len(seats)}} seats. Print this page (one card per seat; a card is never split across pages), or
     <a href="/dashboard/cards.csv">download them as CSV</a>. <a href="/">Back to the board</a></p>
  % if local:
  <p class="warning">These cards show <code>{{scim_url}}</code>, the address you opened this page at, which only this
     machine reaches. Open the dashboard through ngrok's https address, or set <code>base_url</code>, then print.</p>
  % end
  % if not seats:
  <p>There are no seats: start the server with <code>--seats 30</code>.</p>
  % end
</header>
<main>
% for seat in seats:
  <article class="card" id="card-{{seat['number']}}">
    <h2>Seat {{seat['number']}}{{' — ' + seat['label'] if seat['label'] else ''}}</h2>
    <dl>
      <dt>SCIM base URL</dt><dd><code class="base-url">{{scim_url}}</code></dd>
      <dt>Token</dt><dd><code class="token">{{seat['token']}}</code></dd>
      <dt>Your dashboard</dt><dd><code>{{dashboard_url}}</code>, log in with your token</dd>
    </dl>
    <h3>Okta, the “SCIM 2.0 Test App (Header Auth)” (Provisioning › Configure API Integration)</h3>
    <dl class="okta-header-auth">
      <dt>Base URL</dt><dd><code>{{scim_url}}</code></dd>
      <dt>API Token</dt><dd><code>Bearer {{seat['token']}}</code> (with “Bearer” and a space)</dd>
    </dl>
    <h3>Okta, your own app integration with SCIM (Provisioning › Integration)</h3>
    <dl class="okta-custom">
      <dt>SCIM connector base URL</dt><dd><code>{{scim_url}}</code></dd>
      <dt>Unique identifier field for users</dt><dd><code>userName</code></dd>
      <dt>Authentication Mode</dt><dd>HTTP Header</dd>
      <dt>Authorization</dt><dd><code>{{seat['token']}}</code> (the token alone: Okta adds “Bearer”)</dd>
    </dl>
    <h3>Microsoft Entra ID (Provisioning › Admin Credentials)</h3>
    <dl class="entra">
      <dt>Tenant URL</dt><dd><code>{{scim_url}}</code></dd>
      <dt>Secret Token</dt><dd><code>{{seat['token']}}</code> (the token alone: Entra adds “Bearer”)</dd>
    </dl>
    <p class="hint">Then Okta's “Test API Credentials” (or “Test Connector Configuration”), or Entra's “Test
       Connection”: the instructor's board shows it.</p>
  </article>
% end
</main>
</body>
</html>
