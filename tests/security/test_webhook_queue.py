"""Webhook deliveries travel on their own `webhooks` queue: a real worker serving that queue alone delivers them,
so a slow endpoint occupies that queue's worker and never the reaper's `default`."""

from __future__ import annotations

import threading
import time
from http.server import HTTPServer

import pytest

from inference import dispatch
from inference.models import Job
from tests.factories import make_partner
from tests.integration.processes import start_worker
from tests.security.test_webhook_delivery import _Recorder
from tests.services import skip_or_fail_without_services

pytestmark = pytest.mark.services


def test_a_worker_serving_only_the_webhooks_queue_delivers_a_finished_jobs_webhook(transactional_db, tmp_path):
    skip_or_fail_without_services()
    _Recorder.requests = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    job = Job.objects.create(
        partner=make_partner(), capability="keyword_extraction", model="m", queue="embeddings", status="succeeded",
        input={"text": "x"}, output={"keywords": []}, webhook_url=f"http://127.0.0.1:{server.server_port}/hook",
    )  # fmt: skip
    worker = start_worker(tmp_path, "w-webhooks", queues="webhooks", beat=False, ALLIANCE_WEBHOOK_ALLOW_PRIVATE="1")
    try:
        dispatch.send(dispatch.DELIVER_WEBHOOK, str(job.pk))  # routed by the settings, as execution sends it
        deadline = time.monotonic() + 60
        while not _Recorder.requests and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()
        server.shutdown()
        server.server_close()
    assert len(_Recorder.requests) == 1, worker.log()[-2000:]
    assert "inference.tasks.deliver_webhook" in worker.log()
    assert job.webhook_deliveries.get().delivered
