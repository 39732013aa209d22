"""The Dapr Configuration daprd runs with: the workflow state retention policy.

Finished workflows are purged by the engine itself after the retention period (Dapr 1.17+,
`spec.workflow.stateRetentionPolicy`); the order keeps its outcome on its own record, so its
answers do not change when its history goes. Completed workflows follow the setting; failed and
terminated ones (which never reach the workflow's last activity, so their record has no outcome)
are kept for at least a week for investigation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

FAILED_MINIMUM_SECONDS: Final = 7 * 24 * 3600


def render(retention_seconds: int) -> str:
    failed = max(retention_seconds, FAILED_MINIMUM_SECONDS)
    return (
        "# Written by devstack from ORDER_HISTORY_RETENTION_SECONDS; edits are overwritten.\n"
        "apiVersion: dapr.io/v1alpha1\n"
        "kind: Configuration\n"
        "metadata:\n"
        "  name: order-processor\n"
        "spec:\n"
        "  workflow:\n"
        "    stateRetentionPolicy:\n"
        f'      completed: "{retention_seconds}s"\n'
        f'      failed: "{failed}s"\n'
        f'      terminated: "{failed}s"\n'
    )


def write(path: Path, retention_seconds: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(retention_seconds))
    return path
