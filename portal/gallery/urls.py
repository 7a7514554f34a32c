from django.urls import path

from portal.gallery import views

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("usecases/<slug:slug>/", views.usecase_detail, name="usecase-detail"),
    path("usecases/<slug:slug>/images/<int:image_id>", views.usecase_image, name="usecase-image"),
    path("usecases/<slug:slug>/runs", views.recipe_run_create, name="usecase-runs"),
    path("usecases/<slug:slug>/runs/<str:run_id>", views.recipe_run_detail, name="usecase-run"),
    path("usecases/<slug:slug>/runs/<str:run_id>/record", views.recipe_run_record_view, name="usecase-run-record"),
]
