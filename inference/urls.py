from django.urls import path, re_path

from inference import apis, file_apis

urlpatterns = [
    re_path(r"^jobs/?$", apis.JobCollectionApi.as_view(), name="jobs"),
    path("jobs/<str:job_id>", apis.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", apis.JobCancelApi.as_view(), name="job-cancel"),
    path("capabilities", apis.CapabilityListApi.as_view(), name="capabilities"),
    re_path(r"^files/?$", file_apis.FileCollectionApi.as_view(), name="files"),
    path("files/<str:file_id>", file_apis.FileDetailApi.as_view(), name="file-detail"),
    path("files/<str:file_id>/content", file_apis.FileContentApi.as_view(), name="file-content"),
]
