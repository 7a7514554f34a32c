from django.urls import path

from portal import tuning_views, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("switch/", views.switch_partner, name="switch"),
    path("keys/", views.keys, name="keys"),
    path("keys/issue/", views.key_issue, name="key-issue"),
    path("keys/webhook-secret/rotate/", views.webhook_secret_rotate_view, name="webhook-secret-rotate"),
    path("keys/<str:public_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("keys/<str:public_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("usage/", views.usage, name="usage"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/<str:job_id>/", views.job_detail, name="job-detail"),
    path("files/<str:file_id>", views.file_content, name="file"),
    path("datasets/", tuning_views.datasets, name="datasets"),
    path("datasets/upload/", tuning_views.dataset_upload, name="dataset-upload"),
    path("datasets/<str:dataset_id>/delete/", tuning_views.dataset_delete, name="dataset-delete"),
    path("tuning/", tuning_views.tuning_jobs, name="tuning"),
    path("tuning/estimate", tuning_views.tuning_estimate, name="tuning-estimate"),
    path("tuning/start/", tuning_views.tuning_start, name="tuning-start"),
    path("tuning/<str:job_id>/", tuning_views.tuning_detail, name="tuning-detail"),
    path("tuning/<str:job_id>/status", tuning_views.tuning_status, name="tuning-status"),
    path("tuning/<str:job_id>/cancel/", tuning_views.tuning_cancel, name="tuning-cancel"),
    path("members/", views.members, name="members"),
    path("members/invite/", views.member_invite_view, name="member-invite"),
    path("members/invitations/<int:invitation_id>/revoke/", views.invitation_revoke_view, name="invitation-revoke"),
    path("invitations/<str:token>/", views.invitation_view, name="invitation"),
    path("invitations/<str:token>/accept/", views.invitation_accept_view, name="invitation-accept"),
    path("invitations/<str:token>/decline/", views.invitation_decline_view, name="invitation-decline"),
    path("members/<int:membership_id>/role/", views.member_role, name="member-role"),
    path("members/<int:membership_id>/remove/", views.member_remove_view, name="member-remove"),
    path("audit/", views.audit, name="audit"),
    path("showcases/", views.showcases, name="showcases"),
    path("showcases/new/", views.showcase_new, name="showcase-new"),
    path("showcases/<int:usecase_id>/", views.showcase_edit, name="showcase-edit"),
    path("showcases/<int:usecase_id>/submit/", views.showcase_submit, name="showcase-submit"),
]
