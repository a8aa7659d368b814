# One image for every service: `python -m services.<name>` runs one of them
# (docker-compose.yml, deploy/k8s/), the default command runs all four in one
# process. Configuration comes from the environment only (CONTRACT.md 1).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The notice (通报) as PDF: WeasyPrint needs Pango and HarfBuzz's subsetter,
# and Chinese text needs a CJK font (Noto CJK, found through fontconfig by
# WeasyPrint and matplotlib alike). poppler-utils (pdftotext, pdftoppm) lets
# an operator check a rendered notice inside the container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        fonts-noto-cjk poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml constraints.txt ./
COPY shared/ shared/
COPY services/ services/
RUN pip install -c constraints.txt . \
    && groupadd --system --gid 10001 linkage \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home linkage \
    && mkdir -p /app/var \
    && chown linkage:linkage /app/var

# Only used when no *_DATABASE_URL is given (embedded SQLite).
ENV LINKAGE_VAR_DIR=/app/var
# matplotlib caches its font list; /app is not writable by the service user.
ENV MPLCONFIGDIR=/app/var/matplotlib

USER 10001:10001

EXPOSE 9101-9104

# SIGTERM stops the services gracefully (shared/runner.py); give them 30 s.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services"]
