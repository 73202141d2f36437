# pointlog image: docker build -t pointlog .   (or: docker compose up --build)
#
# Two stages: the first compiles wheels (the annoy sdist is C++, hence build-essential),
# the second installs them into a clean slim image without a compiler.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
# annoy's setup.py adds -march=native on x86_64, which ties the wheel to the build
# host's CPU. Build for a portable baseline instead (its other default flags kept).
# Override with --build-arg ANNOY_COMPILER_ARGS=... (comma separated), e.g. add
# -march=native for an image that only runs where it is built.
ARG ANNOY_COMPILER_ARGS="-D_CRT_SECURE_NO_WARNINGS,-fpermissive,-O3,-ffast-math,-fno-associative-math,-DANNOYLIB_MULTITHREADED_BUILD,-std=c++14"
ENV ANNOY_COMPILER_ARGS=${ANNOY_COMPILER_ARGS}
WORKDIR /src
# Only what the distribution needs (the build context also holds tests/, infra/ ...).
COPY pyproject.toml README* ./
COPY api ./api
COPY streams ./streams
COPY storage ./storage
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index /wheels/*.whl \
 && useradd --system --uid 10001 --home-dir /data pointlog \
 && mkdir -p /data && chown pointlog /data
ENV POINTLOG_KAFKA_BOOTSTRAP=kafka:9092 \
    POINTLOG_DATA_DIR=/data \
    POINTLOG_TOPIC=pointlog.ops
USER pointlog
WORKDIR /data
VOLUME /data
EXPOSE 6333
CMD ["pointlog", "serve", "--host", "0.0.0.0", "--port", "6333"]
