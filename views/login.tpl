<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scimlite — log in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/dashboard.css">
</head>
<body class="login">
<main>
  <h1>scimlite</h1>
  <p>The dashboard shows the users and groups your IdP provisioned, and what it sent.
     Log in with the server's token (the one Okta or Entra sends), or in a workshop with your seat's
     token, from your seat card.</p>
  % if error:
  <p class="error" role="alert">{{error}}</p>
  % end
  <form method="post" action="/dashboard/login">
    <label for="token">Token</label>
    <input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
    <button type="submit">Log in</button>
  </form>
</main>
</body>
</html>
