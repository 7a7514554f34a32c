from django.urls import path

from portal.playground import views

app_name = "playground"

urlpatterns = [
    path("", views.index, name="index"),
    path("jobs", views.run, name="run"),
    path("jobs/<str:job_id>", views.job, name="job"),
    path("jobs/<str:job_id>/events", views.job_events, name="job-events"),
]
