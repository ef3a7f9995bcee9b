from django.urls import path

from gifts import views

urlpatterns = [
    path("creators/<str:handle>/", views.creator_page, name="creator-page"),
    path("creator/", views.creator_dashboard, name="creator-dashboard"),
]
