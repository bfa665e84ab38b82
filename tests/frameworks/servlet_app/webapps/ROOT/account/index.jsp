<%@ page contentType="text/html; charset=UTF-8" %><!doctype html>
<html><head><meta charset="utf-8"><title>Servlet test app</title></head><body>
<h1>Account</h1><p>Signed in as <%= request.getRemoteUser().replace("&", "&amp;").replace("<", "&lt;") %></p>
<form method="post" action="/logout"><button type="submit">Log out</button></form></body></html>
