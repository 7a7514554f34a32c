from django.urls import path

from portal.gallery import views

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("usecases/<slug:slug>/", views.usecase_detail, name="usecase-detail"),
    path("usecases/<slug:slug>/images/<int:image_id>", views.usecase_image, name="usecase-image"),
]
