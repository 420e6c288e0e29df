# syntax=docker/dockerfile:1
# Multi-stage build of openmldb-kafka-proxy: a static, stripped binary on a distroless base,
# running as an unprivileged user. Build: docker build -t openmldb-kafka-proxy .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: a fully static binary that needs no libc in the runtime image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/openmldb-kafka-proxy .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/openmldb-kafka-proxy /usr/local/bin/openmldb-kafka-proxy
# 65532 is distroless's "nonroot" user.
USER 65532:65532
# 9093: Kafka bootstrap listener (per-broker listeners follow: 9094 + node id).
# 9644: admin HTTP (/metrics, /livez, /readyz). Inside a container both must listen on 0.0.0.0
# (OKP_LISTEN, OKP_ADMIN__LISTEN) with OKP_ADVERTISED_HOST set to the address clients dial.
EXPOSE 9093 9644
ENTRYPOINT ["/usr/local/bin/openmldb-kafka-proxy", "run"]
