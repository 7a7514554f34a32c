from django.urls import path

from api.openai import batches, views

urlpatterns = [
    path("models", views.ModelsApi.as_view()),
    path("models/<path:model>", views.ModelDetailApi.as_view()),
    path("chat/completions", views.ChatCompletionsApi.as_view()),
    path("completions", views.CompletionsApi.as_view()),
    path("embeddings", views.EmbeddingsApi.as_view()),
    path("images/generations", views.ImageGenerationsApi.as_view()),
    path("files", views.FilesApi.as_view()),
    path("files/<str:file_id>", views.FileDetailApi.as_view()),
    path("files/<str:file_id>/content", views.FileContentApi.as_view()),
    path("batches", batches.BatchesApi.as_view()),
    path("batches/<str:batch_id>", batches.BatchDetailApi.as_view()),
    path("batches/<str:batch_id>/cancel", batches.BatchCancelApi.as_view()),
    path("fine_tuning/jobs", views.FineTuningJobsApi.as_view()),
    path("fine_tuning/jobs/<str:job_id>", views.FineTuningJobDetailApi.as_view()),
    path("fine_tuning/jobs/<str:job_id>/events", views.FineTuningJobEventsApi.as_view()),
    path("fine_tuning/jobs/<str:job_id>/cancel", views.FineTuningJobCancelApi.as_view()),
    path("fine_tuning/jobs/<str:job_id>/checkpoints", views.FineTuningJobCheckpointsApi.as_view()),
]
