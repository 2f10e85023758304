# The service: python -m src.main (daemon). Use with docker-compose.dev.yml (TimescaleDB, Prometheus, Grafana).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home crypto && mkdir -p data logs && chown -R crypto data logs
USER crypto
# Inside a container the health server must listen beyond loopback; publish its port to 127.0.0.1 only.
ENV CRYPTO_ML_CONFIG=/app/monitoring/container.yaml
EXPOSE 8080
HEALTHCHECK --interval=60s --timeout=10s --start-period=600s CMD python -m src.main health >/dev/null || exit 1
CMD ["python", "-m", "src.main"]
