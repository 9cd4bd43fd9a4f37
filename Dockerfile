# One image for every process: the Dagster webserver, the Dagster daemon, the API and the scale location's workers.
#   docker build -t gamerec .
#   docker run -p 3000:3000 gamerec webserver      # Dagster UI
#   docker run gamerec daemon                        # schedules and sensors
#   docker run -p 8000:8000 gamerec api              # Litestar service
#   docker run -e GAMEREC_CELERY_BROKER=pyamqp://guest:guest@rabbitmq:5672// gamerec worker -c 2   # one per machine
# Configure with the environment variables of the README's Configuration table (all parsed by
# gamerec_assets/settings.py: GAMEREC_MYSQL_URL, GAMEREC_S3_BUCKET, AWS_ENDPOINT_URL, DAGSTER_MYSQL_*, ...);
# without them the container uses the embedded default under /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GAMEREC_HOME=/data \
    DAGSTER_HOME=/opt/dagster/home \
    WANDB_MODE=offline

RUN groupadd --system gamerec && useradd --system --gid gamerec --home-dir /app gamerec

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gamerec_assets ./gamerec_assets
COPY gamerec_api ./gamerec_api
RUN pip install .

COPY workspace.yaml ./
# The production instance config (MySQL through dagster-mysql when DAGSTER_MYSQL_HOST is set).
COPY dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY docker/entrypoint.sh /usr/local/bin/gamerec-entrypoint
RUN chmod 0755 /usr/local/bin/gamerec-entrypoint \
 && mkdir -p /data \
 && chown -R gamerec:gamerec /data ${DAGSTER_HOME} /app

USER gamerec
EXPOSE 3000 8000
ENTRYPOINT ["gamerec-entrypoint"]
CMD ["api"]
