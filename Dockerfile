# The worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app app
COPY agents agents
COPY models models
COPY schemas schemas
RUN pip install --no-cache-dir .
ENV NBA_WORKER__WEB_HOST=0.0.0.0 NBA_WORKER__DATADIR=/var/lib/nba
EXPOSE 6066
CMD ["nba", "worker"]
