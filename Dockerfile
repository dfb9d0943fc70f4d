FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md cli.py ./
COPY aftercare ./aftercare
COPY tasks ./tasks
COPY migrations ./migrations
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
CMD ["aftercare", "--help"]
