"""Flask test app: Flask-Login with remember-me, the signed client-side session, Flask-WTF forms with CSRF."""

import os
import sys

from flask import Flask, redirect, render_template_string, url_for
from flask_login import LoginManager, UserMixin, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired

USERNAME = os.environ["LG_APP_USER"]
PASSWORD_HASH = generate_password_hash(os.environ["LG_APP_PASSWORD"])

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["LG_FLASK_SECRET_KEY"]
csrf = CSRFProtect(app)
login_manager = LoginManager(app)
login_manager.login_view = "login"


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return User(user_id) if user_id == USERNAME else None


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Remember me")


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Flask test app</title></head>
<body>{{ body }}</body></html>"""

LOGIN = """<!doctype html><html><head><meta charset="utf-8"><title>Flask test app</title></head><body>
<h1>Log in</h1>{% if failed %}<p class="error">Wrong username or password.</p>{% endif %}
<form method="post" action="{{ url_for('login') }}">
{{ form.csrf_token }} {{ form.username.label }} {{ form.username }} {{ form.password.label }} {{ form.password }}
{{ form.remember }} {{ form.remember.label }} <button type="submit">Log in</button>
</form></body></html>"""

ACCOUNT = """<!doctype html><html><head><meta charset="utf-8"><title>Flask test app</title></head><body>
<h1>Account</h1><p>Signed in as {{ current_user.id }}</p>
<form method="post" action="{{ url_for('logout') }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}"><button type="submit">Log out</button>
</form></body></html>"""


@app.get("/")
def home() -> str:
    return render_template_string(PAGE, body="Public page")


@app.route("/login", methods=["GET", "POST"])
def login() -> object:
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        if form.username.data == USERNAME and check_password_hash(PASSWORD_HASH, form.password.data or ""):
            login_user(User(USERNAME), remember=form.remember.data)
            return redirect(url_for("account"))
        failed = True
    return render_template_string(LOGIN, form=form, failed=failed), 401 if failed else 200


@app.get("/account")
@login_required
def account() -> str:
    return render_template_string(ACCOUNT)


@app.post("/logout")
@login_required
def logout() -> object:
    logout_user()
    return redirect(url_for("login"))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=False, use_reloader=False, threaded=True)
