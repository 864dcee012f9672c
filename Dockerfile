# wa-outbound: one process serving the API, the dispatcher and the webhook receiver.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    WA_DATABASE_URL=sqlite+aiosqlite:////data/wa_outbound.db
RUN useradd --system --uid 10001 --home-dir /data --create-home app
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
USER app
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health/live').status != 200)"
ENTRYPOINT ["wa-outbound"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
