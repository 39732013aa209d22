"""The container images docker-compose.yml runs that no registry here ships, made from what the
build room compiled (local), and the Docker engine that loads them (docker_engine)."""
