"""`make -s images` without OBSERVABILITY: the plain compose file's images, and no Jaeger build."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.images import exports_of_make_images


def test_plain_images_export_only_what_docker_compose_yml_needs_and_build_no_jaeger(
    local_images: dict[str, str], tmp_path: Path
) -> None:
    # An empty Jaeger cache: a build of Jaeger (minutes cold) would fill it.
    jaeger_cache = tmp_path / "jaeger-cache"
    jaeger_cache.mkdir()

    exports = exports_of_make_images({"JAEGER_CACHE_DIR": str(jaeger_cache)})

    assert sorted(exports) == ["DAPR_IMAGE_REPO", "NGINX_IMAGE", "PYTHON_IMAGE", "REDIS_IMAGE"]
    assert {name: local_images[name] for name in exports} == exports
    assert list(jaeger_cache.iterdir()) == []
