#!/usr/bin/env python3
"""ROT with spout in its image, as the quick start runs it: a writer rotated every megabyte, spout
reading the files from a container of its own (host network, the socket and the containers
directory mounted read-only), by line number what never arrived.

    python3 bench/rotation_in_docker.py RUNS IMAGE [DOCKER RUN OPTIONS...]
    python3 bench/rotation_in_docker.py 10 spout:latest --cap-add SYS_NICE
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

NAME = f"{bench.PREFIX}agent"


class InDocker:
    """spout's image following every container, shipping to the harness's receiver."""

    def __init__(self, image, options, port):
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True)
        subprocess.run(["docker", "run", "-d", "--name", NAME, "--network", "host", *options,
                        "-v", "/var/run/docker.sock:/var/run/docker.sock:ro",
                        "-v", "/var/lib/docker/containers:/var/lib/docker/containers:ro",
                        image, f"gelf+tcp://127.0.0.1:{port}", "--source", "files", "--http", "off"],
                       check=True, capture_output=True)

    def stop(self):
        logs = subprocess.run(["docker", "logs", NAME], capture_output=True, text=True)
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True)
        return (logs.stdout + logs.stderr).splitlines()


def main():
    runs, image, options = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    bench.build_image()
    bench.remove_bench_containers()
    results = []
    try:
        for _ in range(runs):
            r = bench.rotation(lambda port: InDocker(image, options, port), 200_000)
            results.append(r)
            print(f"lost {r['lost']}, repeated {r['repeated']}, warned {r['warned'] > 0}, writer {r['mb_s']:.1f} MB/s",
                  flush=True)
    finally:
        bench.remove_bench_containers()
    print(f"{sum(r['lost'] > 0 for r in results)} of {runs} runs lost lines, "
          f"{sum(r['warned'] > 0 for r in results)} warned; lost {bench.span(results, 'lost')}")


if __name__ == "__main__":
    main()
