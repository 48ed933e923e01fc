"""HTTP routes of every node (DESIGN.md, "HTTP on every node")."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path, re_path

from etl import static_files, status_page, views
from etl.graphql import view as graphql

urlpatterns = [
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    path("metrics", views.metrics),
    path("admin/", admin.site.urls),
    re_path(r"^static/(?P<path>.+)$", static_files.serve),  # the admin's CSS and JS
    path("", status_page.status_page),
    path("graphql", graphql.graphql_view()),
]
