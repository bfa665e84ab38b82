<?php
// Login: the page starts an (anonymous) session for its CSRF token; a good login gets a new session ID.
session_start();
if (empty($_SESSION['csrf'])) {
    $_SESSION['csrf'] = bin2hex(random_bytes(32));
}
$failed = false;
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    if (!hash_equals($_SESSION['csrf'], (string)($_POST['csrf'] ?? ''))) {
        http_response_code(403);
        exit('CSRF token invalid');
    }
    $user = (string)($_POST['username'] ?? '');
    if ($user === getenv('LG_APP_USER') && hash_equals(getenv('LG_APP_PASSWORD'), (string)($_POST['password'] ?? ''))) {
        session_regenerate_id(true);  // new ID, old session file deleted
        $_SESSION['user'] = $user;
        $_SESSION['csrf'] = bin2hex(random_bytes(32));
        header('Location: /account.php', true, 302);
        exit;
    }
    $failed = true;
    http_response_code(401);
}
$csrf = htmlspecialchars($_SESSION['csrf']);
?><!doctype html><html><head><meta charset="utf-8"><title>PHP test app</title></head><body>
<h1>Log in</h1><?= $failed ? '<p class="error">Wrong username or password.</p>' : '' ?>
<form method="post" action="/login.php"><input type="hidden" name="csrf" value="<?= $csrf ?>">
<label>Username <input name="username"></label> <label>Password <input type="password" name="password"></label>
<button type="submit">Log in</button></form></body></html>
