// Express test app: express-session (signed connect.sid, MemoryStore), csrf-sync tokens kept in the
// server-side session and rendered into the forms, POST /logout calling req.session.destroy().
// A second listener on a separate loopback port answers what the MemoryStore holds (store.all / store.get).
"use strict";

const crypto = require("node:crypto");
const express = require("express");
const session = require("express-session");
const { csrfSync } = require("csrf-sync");

const port = Number(process.env.LG_PORT);
const adminPort = Number(process.env.LG_ADMIN_PORT);
const username = process.env.LG_APP_USER;
const salt = crypto.randomBytes(16);
const passwordHash = crypto.scryptSync(process.env.LG_APP_PASSWORD, salt, 32);

const store = new session.MemoryStore();
const { csrfSynchronisedProtection, generateToken } = csrfSync({
  getTokenFromRequest: (req) => (req.body ? req.body._csrf : undefined),
});

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const page = (body) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>Express test app</title></head><body>${body}</body></html>`;

function passwordMatches(given) {
  const hash = crypto.scryptSync(String(given || ""), salt, 32);
  return crypto.timingSafeEqual(hash, passwordHash);
}

function requireLogin(req, res, next) {
  if (req.session.user) return next();
  res.redirect("/login");
}

const app = express();
app.disable("x-powered-by");
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    name: "connect.sid",
    secret: process.env.LG_SESSION_SECRET,
    store,
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: "lax", path: "/" },
  }),
);
app.use(csrfSynchronisedProtection); // every POST: the form's _csrf must equal the session's token

app.get("/", (req, res) => res.send(page("<h1>Public page</h1>")));

function loginForm(req, error) {
  return page(`<h1>Log in</h1>${error ? '<p class="error">Wrong username or password.</p>' : ""}
<form method="post" action="/login"><input type="hidden" name="_csrf" value="${escape(generateToken(req))}">
<label>Username <input name="username"></label> <label>Password <input type="password" name="password"></label>
<button type="submit">Log in</button></form>`);
}

app.get("/login", (req, res) => res.send(loginForm(req, false)));

app.post("/login", (req, res, next) => {
  if (req.body.username !== username || !passwordMatches(req.body.password)) {
    return res.status(401).send(loginForm(req, true));
  }
  // express-session's own advice: a new session ID at login (session fixation)
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = username;
    req.session.save((err2) => (err2 ? next(err2) : res.redirect("/account")));
  });
});

app.get("/account", requireLogin, (req, res) => {
  res.send(
    page(`<h1>Account</h1><p>Signed in as ${escape(req.session.user)}</p>
<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${escape(generateToken(req))}">
<button type="submit">Log out</button></form>`),
  );
});

app.post("/logout", requireLogin, (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie("connect.sid", { path: "/" });
    res.redirect("/login");
  });
});

app.use((err, req, res, next) => {
  const status = err.status || err.statusCode || 500;
  if (status >= 500) console.error(err);
  res.status(status).send(page(`<h1>${status}</h1><p>${escape(err.message)}</p>`));
});

// The inspection endpoint: what the MemoryStore holds, on its own loopback port (not the app's).
const admin = express();
admin.get("/sessions", (req, res, next) => store.all((err, all) => (err ? next(err) : res.json(all || {}))));
admin.get("/sessions/:sid", (req, res, next) =>
  store.get(req.params.sid, (err, s) => (err ? next(err) : s ? res.json(s) : res.status(404).json(null))),
);

app.listen(port, "127.0.0.1");
admin.listen(adminPort, "127.0.0.1");
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
console.log(`express test app on 127.0.0.1:${port}, store inspection on 127.0.0.1:${adminPort}`);
