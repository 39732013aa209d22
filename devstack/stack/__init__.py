"""The local stack as plain processes: its settings' ports (ports), the replicas and their proxy
(replicas), the process definitions and what a stack is given when built (process), the
supervisor, observability's extras, the Stack that starts them all (stack), and the one factory
of private stacks for the tests, the benchmark and the soak (private)."""

from devstack.stack.private import PrivateStackOptions, isolated_settings, private_stack
from devstack.stack.process import Extras, ExtrasFactory, Layout, Service, http_json, http_status
from devstack.stack.stack import (
    DEFAULT_EXTRAS,
    INFRASTRUCTURE,
    PROXY,
    SERVICE_ORDER,
    WORKFLOW_ACTOR_TYPES,
    Stack,
    StackError,
    free_port_block,
    free_ports,
    workflow_engine_problem,
)

__all__ = [
    "DEFAULT_EXTRAS",
    "INFRASTRUCTURE",
    "PROXY",
    "SERVICE_ORDER",
    "WORKFLOW_ACTOR_TYPES",
    "Extras",
    "ExtrasFactory",
    "Layout",
    "PrivateStackOptions",
    "Service",
    "Stack",
    "StackError",
    "free_port_block",
    "free_ports",
    "http_json",
    "http_status",
    "isolated_settings",
    "private_stack",
    "workflow_engine_problem",
]
