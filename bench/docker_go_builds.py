"""Docker builds of go-gin services as the docker and swarm runtimes run them (BuildKit through
compose's builder), beside the baseline measured in the same run: the same builds from go-gin 3's
Dockerfile, which has no cache mounts (each service downloads its modules and compiles every
dependency in its own layers).

    python bench/docker_go_builds.py [--services N] [--build-image IMAGE] [--base-image IMAGE]

Each service has its own name (its own go.mod and sources), so no image layer of another service
applies: what one build can reuse from another is only what the Dockerfile shares on purpose.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_series(template: Path, label: str, count: int, images: dict[str, str], work: Path) -> list[float]:
    from ecoctl.clients.docker import build_image
    from ecoctl.service_templates import find_template, render_template

    stamp = f"{int(time.time())}"
    seconds = []
    for index in range(count):
        name = f"bench{label}{stamp}n{index}"
        folder = work / name
        render_template(find_template(str(template)), folder, {"service_name": name})
        lines: list[str] = []
        start = time.perf_counter()
        build_image(folder, images, f"ecoctl-bench/{name}:latest", lines.append, network="host")
        seconds.append(time.perf_counter() - start)
    return seconds


def remove_images(prefix: str) -> None:
    import docker

    client = docker.from_env()
    for image in client.images.list(name=prefix):
        for tag in image.tags:
            client.images.remove(tag, force=True)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=3, help="go-gin services per Dockerfile (default 3)")
    parser.add_argument("--build-image", default="ecoctl-test/go:1.26", help="BUILD_IMAGE (a Go toolchain)")
    parser.add_argument("--base-image", default="ecoctl-base/bookworm:latest", help="BASE_IMAGE")
    options = parser.parse_args()
    images = {"BUILD_IMAGE": options.build_image, "BASE_IMAGE": options.base_image}
    with tempfile.TemporaryDirectory(prefix="ecoctl-bench-docker-go-") as folder:
        work = Path(folder)
        try:
            baseline = build_series(ROOT / "templates" / "go-gin" / "versions" / "3", "old", options.services,
                                    images, work)
            shared = build_series(ROOT / "templates" / "go-gin", "new", options.services, images, work)
        finally:
            remove_images("ecoctl-bench/*")
    print(f"{'docker build of a go-gin service':<40}{'go-gin 3 (s)':>14}{'go-gin 4 (s)':>14}{'ratio':>8}")
    for index, (old, new) in enumerate(zip(baseline, shared)):
        label = "first service" if index == 0 else f"service {index + 1}"
        print(f"{label:<40}{old:>14.2f}{new:>14.2f}{new / old:>8.2f}")
    print("go-gin 4's first service may find the cache mounts warm from an earlier build on this engine;"
          " the rows after it always do")


if __name__ == "__main__":
    main()
