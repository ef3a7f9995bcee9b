from django.urls import path

from notifications import views

urlpatterns = [
    path("email/verify/<str:token>/", views.verify_page, name="email-verify"),
    path("email/unsubscribe/<str:token>/", views.unsubscribe_page, name="email-unsubscribe"),
    path("account/notifications/", views.preferences_page, name="notification-preferences"),
]
