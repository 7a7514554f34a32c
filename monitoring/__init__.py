"""Operating the alliance: health and readiness, worker heartbeats, Prometheus metrics, structured event logs and
the operator's view in the admin. It stands above the domain apps (it reads jobs, partners and tuning jobs) and
hooks into them through Django and Celery signals only."""
