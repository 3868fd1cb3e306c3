# The llmcost image docker-compose.yml builds: `docker compose up -d --build`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the distribution needs (the build context also holds tests, data and any local venv).
COPY pyproject.toml README.md LICENSE ./
COPY exporter ./exporter
COPY alerting ./alerting
COPY llmcost ./llmcost
# The docs llmcost serves (the runbook at /runbook, the pages it links to at /docs/, their images), packaged beside the module that renders them.
COPY docs/*.md ./alerting/docs/
COPY docs/img/*.png ./alerting/docs/img/
RUN pip install . \
 && useradd --system --create-home --home-dir /var/lib/llmcost --uid 10001 llmcost

USER llmcost
WORKDIR /var/lib/llmcost
EXPOSE 9800
ENTRYPOINT ["llmcost"]
# Without configured tokens llmcost refuses a non-loopback address; compose passes a config with them.
CMD ["serve", "--listen", "0.0.0.0:9800"]
