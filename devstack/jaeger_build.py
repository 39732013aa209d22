"""`python -m devstack.jaeger_build`, kept working: the build itself is devstack.build.jaeger."""

from devstack.build import go_tool
from devstack.build.jaeger import build

if __name__ == "__main__":
    go_tool.main(build)
