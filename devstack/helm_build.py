"""`python -m devstack.helm_build`, kept working: the build itself is devstack.build.helm."""

from devstack.build import go_tool
from devstack.build.helm import build

if __name__ == "__main__":
    go_tool.main(build)
