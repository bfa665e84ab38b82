<?php // Public page (no session).
?><!doctype html><html><head><meta charset="utf-8"><title>PHP test app</title></head>
<body><h1>Public page</h1><p><a href="/account.php">Your account</a></p></body></html>
