from django.urls import path

from usecases import views

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("usecases/<slug:slug>/", views.usecase_detail, name="usecase-detail"),
]
