FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md cli.py ./
COPY aftercare ./aftercare
COPY tasks ./tasks
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /var/lib/aftercare --shell /usr/sbin/nologin aftercare \
 && mkdir -p /var/lib/aftercare/media /var/lib/aftercare/beat /var/lib/aftercare/metrics \
 && chown -R aftercare:aftercare /var/lib/aftercare && chmod 0700 /var/lib/aftercare/media
ENV PYTHONUNBUFFERED=1 AFTERCARE_HOME=/var/lib/aftercare
# Never root: a flaw in the web app or a task then reaches only this user's files (photos, the beat schedule).
USER aftercare
CMD ["aftercare", "--help"]
