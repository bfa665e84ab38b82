<?php
// Login-only page with the logout form (the CSRF token from the session).
session_start();
if (empty($_SESSION['user'])) {
    header('Location: /login.php', true, 302);
    exit;
}
$user = htmlspecialchars($_SESSION['user']);
$csrf = htmlspecialchars($_SESSION['csrf']);
?><!doctype html><html><head><meta charset="utf-8"><title>PHP test app</title></head><body>
<h1>Account</h1><p>Signed in as <?= $user ?></p>
<form method="post" action="/logout.php"><input type="hidden" name="csrf" value="<?= $csrf ?>">
<button type="submit">Log out</button></form></body></html>
