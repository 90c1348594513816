# The bertfleet image for k8s/: Debian 12 + Node 20, with everything
# scripts/setup.sh installs (OpenBLAS, nats-server, npm packages, the addon).
FROM node:20-bookworm
WORKDIR /opt/bertfleet
COPY . .
RUN bash scripts/setup.sh && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/opt/bertfleet/bin/bertfleet"]
