"""Views of the Django test site: a public page and a login-required page with the logout form."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@login_required
def account(request: HttpRequest) -> HttpResponse:
    return render(request, "account.html")
