"""URLs of the Django test site: the stock LoginView and LogoutView, a login-required page."""

import views
from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path("", views.home),
    path("account/", views.account),
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("accounts/logout/", auth_views.LogoutView.as_view()),
]
