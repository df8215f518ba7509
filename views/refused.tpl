<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scimlite — not for this session</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/dashboard.css">
</head>
<body class="login">
<main>
  <h1>scimlite</h1>
  <p class="error" role="alert">{{detail}}</p>
  <p><a href="/">Back to the dashboard</a></p>
</main>
</body>
</html>
