"""Who is asking about orders, and which orders they may see.

With CUSTOMER_AUTH=jwt an order belongs to the customer whose token created it (the token's
`sub`). A customer sees only their own orders; a manager sees every order. With it off there are
no customers: everyone sees every order, as before identities existed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from app.domain.orders import Order
from app.errors import InvalidInput

# Names end up in log lines and in the order's timeline: one line each, of a length a person
# reads at a glance. 64 fits an e-mail address or an identity provider's subject id (a UUID is 36).
NAME_MAX_LENGTH: Final = 64


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a customer or an approver (None: it can)."""
    if not name:
        return "must not be empty"
    if len(name) > NAME_MAX_LENGTH:
        return f"must be at most {NAME_MAX_LENGTH} characters"
    # isprintable() is False for newlines, tabs and every other control or format character:
    # nothing that could start a forged log line or hide what follows it.
    if not name.isprintable():
        return "must be printable characters only (no newlines, tabs or control characters)"
    return None


def checked_name(name: str, what: str) -> str:
    """`name` when it can name a person (InvalidInput, saying why, otherwise)."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidInput(f"{what} {problem}")
    return name


@dataclass(frozen=True)
class Viewer:
    """Who a request comes from, as far as orders are concerned.

    `customer`: whose orders new ones become (None: nobody's, as with CUSTOMER_AUTH=off or the
    static manager token). `sees_all`: every order is visible; otherwise only the customer's own.
    `manager`: may see who decided an order (customers never do)."""

    customer: str | None
    sees_all: bool
    manager: bool

    def may_see(self, owner: str | None) -> bool:
        """Whether an order owned by `owner` (None: nobody) is visible to this viewer."""
        return self.sees_all or (self.customer is not None and owner == self.customer)

    @property
    def sees_deciders(self) -> bool:
        # Anyone while auth is off (as before customers existed); with it on, managers only.
        return self.manager or (self.sees_all and self.customer is None)


# CUSTOMER_AUTH=off: no identities, every order visible to everyone (today's behaviour).
EVERYONE: Final = Viewer(customer=None, sees_all=True, manager=False)
# The static manager token (MANAGER_TOKEN), which names no customer.
STATIC_MANAGER: Final = Viewer(customer=None, sees_all=True, manager=True)


def customer(name: str) -> Viewer:
    return Viewer(
        customer=checked_name(name, "the token's sub (customer name)"),
        sees_all=False,
        manager=False,
    )


def manager(name: str | None) -> Viewer:
    """A manager known by a token: every order visible; their own orders are theirs."""
    if name is not None:
        checked_name(name, "the token's sub (manager name)")
    return Viewer(customer=name, sees_all=True, manager=True)


def seen_by(order: Order, viewer: Viewer) -> Order:
    """The order as `viewer` may see it: who decided it only for those who may know."""
    if viewer.sees_deciders:
        return order
    return replace(order, decided_by=None)
