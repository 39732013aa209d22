"""`python -m devstack.observability`, kept working: rewrites the committed compose files of
observability (the recipes: devstack.stack.observability)."""

from devstack.stack.observability import write_compose_files

if __name__ == "__main__":
    write_compose_files()
