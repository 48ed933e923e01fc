"""HTTP routes of every node (DESIGN.md, "HTTP on every node")."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from etl import views
from etl.graphql import view as graphql

urlpatterns = [
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    path("metrics", views.metrics),
    path("admin/", admin.site.urls),
    path("", views.status_page),
    path("graphql", graphql.graphql_view()),
]
