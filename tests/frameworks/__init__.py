"""Real framework applications (Django, Flask, Express, PHP, a servlet container) for the forced-logout tests.

Each application uses its framework's own login, sessions and logout. `frameworks.apps.start_app(name, folder)`
starts one as a real process on a free loopback port; `RunningApp.client()` is a scripted browser for it;
`RunningApp.session(id)` asks the application's own session store; `RunningApp.profile` is what a policy
writer needs to know about it (cookie names, CSRF source, logout request, logged-in/out checks).
"""
