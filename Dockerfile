# The serving image: the API and the exported champions' bundles (`make run` writes bundle/sms/ and, when the
# e-mail channel is built, bundle/email/; the e-mail channel serves when bundle/email/ is in the image).
# Build: docker build -t spamfilter-api .   Run: docker run -p 8000:8000 spamfilter-api
# With the spamd listener for spamc and MTAs: docker run -p 8000:8000 -p 783:783 -e SPAMD_PORT=783 spamfilter-api

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements-serve.txt ./
RUN pip install -r requirements-serve.txt
COPY pyproject.toml requirements-train.txt README.md ./
COPY spamfilter ./spamfilter
RUN pip install --no-deps .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app \
    && mkdir -p /app/data \
    && chown app:app /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY api ./api
COPY bundle ./bundle
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODEL_URI=bundle/sms \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=2 \
    PREDICTION_LOG_URL=sqlite:////app/data/predictions.db \
    LOG_TEXT=false
USER 10001:10001
# 8000: the HTTP API. 783: the spamd listener (SpamAssassin's port), off unless SPAMD_PORT is set; binding a
# port below 1024 as this non-root user needs Docker 20.10+ (unprivileged low ports), else use a high one.
EXPOSE 8000 783
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "api"]
