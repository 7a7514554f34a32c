from django.urls import path, re_path

from inference import apis, file_apis, tuning_apis

urlpatterns = [
    re_path(r"^jobs/?$", apis.JobCollectionApi.as_view(), name="jobs"),
    path("jobs/<str:job_id>", apis.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", apis.JobCancelApi.as_view(), name="job-cancel"),
    path("capabilities", apis.CapabilityListApi.as_view(), name="capabilities"),
    re_path(r"^files/?$", file_apis.FileCollectionApi.as_view(), name="files"),
    path("files/<str:file_id>", file_apis.FileDetailApi.as_view(), name="file-detail"),
    path("files/<str:file_id>/content", file_apis.FileContentApi.as_view(), name="file-content"),
    re_path(r"^datasets/?$", tuning_apis.DatasetCollectionApi.as_view(), name="datasets"),
    path("datasets/<str:dataset_id>", tuning_apis.DatasetDetailApi.as_view(), name="dataset-detail"),
    re_path(r"^tuning-jobs/?$", tuning_apis.TuningJobCollectionApi.as_view(), name="tuning-jobs"),
    path("tuning-jobs/estimate", tuning_apis.TuningEstimateApi.as_view(), name="tuning-estimate"),
    path("tuning-jobs/<str:job_id>", tuning_apis.TuningJobDetailApi.as_view(), name="tuning-job-detail"),
    path("tuning-jobs/<str:job_id>/events", tuning_apis.TuningJobEventsApi.as_view(), name="tuning-job-events"),
    path("tuning-jobs/<str:job_id>/cancel", tuning_apis.TuningJobCancelApi.as_view(), name="tuning-job-cancel"),
    path("models", tuning_apis.ModelListApi.as_view(), name="models"),
]
