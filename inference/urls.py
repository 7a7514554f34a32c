from django.urls import path, re_path

from inference import apis

urlpatterns = [
    re_path(r"^jobs/?$", apis.JobCollectionApi.as_view(), name="jobs"),
    path("jobs/<str:job_id>", apis.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", apis.JobCancelApi.as_view(), name="job-cancel"),
    path("capabilities", apis.CapabilityListApi.as_view(), name="capabilities"),
]
