//! Writers for the engines production runs on: systemd, Docker Compose, Kubernetes.
