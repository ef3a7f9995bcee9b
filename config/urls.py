from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz, readyz
from config.views import api_unknown_path

# Each app owns ``urls.py`` (its API under /api/v1/) and ``portal_urls.py`` (its pages).
api_v1 = [
    path("", include(f"{app}.urls"))
    for app in (
        "accounts",
        "wallets",
        "gifts",
        "creators",
        "payouts",
        "memberships",
        "moderation",
        "notifications",
        "staff",
    )
]
portal = [
    path("", include(f"{app}.portal_urls"))
    for app in (
        "accounts",
        "wallets",
        "moderation",  # before gifts: it owns GET creator/live/
        "gifts",
        "creators",
        "payouts",
        "memberships",
        "notifications",
        "staff",
    )
]

urlpatterns = [
    # Browsers ask for /favicon.ico on every page that names none (the overlay, the admin).
    path("favicon.ico", RedirectView.as_view(url="/static/img/favicon.svg", permanent=True)),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Last of the API: anything else under /api/ answers the JSON error, also under DEBUG.
    re_path(r"^api/", api_unknown_path),
    *portal,
]

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
