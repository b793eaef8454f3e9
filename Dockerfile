# The image of every pipeline process: `openclaw-saas run ingress|streams|forwarder|delivery`
# (docker-compose.yml runs one container per process kind; `openclaw-saas migrate` and
# `openclaw-saas topics create` run once before them). Needs a registry for the base image.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    INGRESS_HOST=0.0.0.0 \
    METRICS_HOST=0.0.0.0 \
    STREAMS_DATA_DIR=/var/lib/openclaw-saas/streams
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/openclaw-saas openclaw
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
USER openclaw
WORKDIR /var/lib/openclaw-saas
# 8080: ingress webhooks and its /metrics; 9100: /metrics of a worker (METRICS_PORT)
EXPOSE 8080 9100
ENTRYPOINT ["openclaw-saas"]
CMD ["run", "ingress"]
