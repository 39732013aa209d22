"""The service's domain errors. Framework-free: services and workflows raise these, and the API
layer (app.api.errors) alone decides which HTTP status and JSON body each becomes."""

from __future__ import annotations

from typing import ClassVar


class AppError(Exception):
    """An error a client can act on. `error` is its stable machine-readable name; `description`
    says in one line what it means (the OpenAPI page shows it)."""

    error: ClassVar[str] = "internal_error"
    description: ClassVar[str] = "Unexpected error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(AppError):
    error = "invalid_input"
    description = "Invalid input"


class NotFound(AppError):
    error = "not_found"
    description = "Not found"


class Conflict(AppError):
    error = "conflict"
    description = "Not possible in the current state"


class DecisionAlreadyMade(Conflict):
    """A manager's decision on an order is final: the first one recorded wins."""

    error = "decision_already_made"
    description = "Another decision on this order was recorded first"


class DependencyUnavailable(AppError):
    """The sidecar or the state store did not answer. Whether the request's change may still
    have happened is the request's to say (app.services.changes), not the error's: a write
    may have been sent before the failure."""

    error = "unavailable"
    description = (
        "Sidecar or state store unreachable. `may_have_happened`: false, nothing was changed; "
        "true, the change may have been made, and `retry` says how to repeat it safely "
        "(a create: with the same order_id, or Idempotency-Key)"
    )


class SidecarUnreachable(DependencyUnavailable):
    """This process's own Dapr sidecar could not be reached (connection refused, reset or closed
    before it answered): a fault of this replica alone, unlike a sidecar or store that answers
    late or with an error, which every replica shares. Another replica can serve the request
    (app.api.errors answers it so that the proxy retries it there, when that is safe)."""

    description = (
        "This replica's Dapr sidecar is not reachable; another replica can serve the request "
        "(the proxy retries it there). The body is a 503's"
    )


class StoredStateConflict(AppError):
    """The store already holds something else where this change writes once (a ledger entry of
    another amount, an order number that lists another order). Never taken as done; not a
    client's error either (500)."""

    error = "stored_state_conflict"
    description = "The state store holds a conflicting record"
