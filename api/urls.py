"""The native partner API under /api/v1/."""

from django.urls import path, re_path

from api import account, batches, files, jobs, partners, tuning

urlpatterns = [
    re_path(r"^jobs/?$", jobs.JobCollectionApi.as_view(), name="jobs"),
    path("jobs/<str:job_id>", jobs.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", jobs.JobCancelApi.as_view(), name="job-cancel"),
    path("jobs/<str:job_id>/events", jobs.JobEventsApi.as_view(), name="job-events"),
    re_path(r"^batches/?$", batches.BatchCollectionApi.as_view(), name="batches"),
    path("batches/<str:batch_id>", batches.BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<str:batch_id>/cancel", batches.BatchCancelApi.as_view(), name="batch-cancel"),
    path("capabilities", jobs.CapabilityListApi.as_view(), name="capabilities"),
    re_path(r"^files/?$", files.FileCollectionApi.as_view(), name="files"),
    path("files/<str:file_id>", files.FileDetailApi.as_view(), name="file-detail"),
    path("files/<str:file_id>/content", files.FileContentApi.as_view(), name="file-content"),
    re_path(r"^datasets/?$", tuning.DatasetCollectionApi.as_view(), name="datasets"),
    path("datasets/<str:dataset_id>", tuning.DatasetDetailApi.as_view(), name="dataset-detail"),
    re_path(r"^tuning-jobs/?$", tuning.TuningJobCollectionApi.as_view(), name="tuning-jobs"),
    path("tuning-jobs/estimate", tuning.TuningEstimateApi.as_view(), name="tuning-estimate"),
    path("tuning-jobs/<str:job_id>", tuning.TuningJobDetailApi.as_view(), name="tuning-job-detail"),
    path("tuning-jobs/<str:job_id>/events", tuning.TuningJobEventsApi.as_view(), name="tuning-job-events"),
    path("tuning-jobs/<str:job_id>/cancel", tuning.TuningJobCancelApi.as_view(), name="tuning-job-cancel"),
    path("models", tuning.ModelListApi.as_view(), name="models"),
    path("usage", account.UsageApi.as_view(), name="usage"),
    path("me", account.MeApi.as_view(), name="me"),
    re_path(r"^partners/?$", partners.PartnerDirectoryApi.as_view(), name="partners"),
    path("partners/<slug:slug>", partners.PartnerDirectoryDetailApi.as_view(), name="partner-detail"),
]
