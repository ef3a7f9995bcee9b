from django.urls import path

from creators import views

urlpatterns = [
    path("creator/start/", views.creator_start, name="creator-start"),
]
