"""`make soak`: a chaos soak of `make run`'s supervised stack (issue 19, "Integrity", point 9).

Thousands of orders of mixed fate (small, approved, rejected, cancelled while waiting or at a
random moment) from a bounded number of clients, while one component at a time (Redis,
placement, scheduler, daprd, app) is killed or frozen every 20-40 s and nothing but the stack's
own supervisor restarts anything. At the end every order must have an outcome, every fault must
have healed, and the auditor must find every invariant kept.

A package of its own rather than a module of bench/: a benchmark only prints figures and is never
part of the pass/fail run, while the soak has a verdict (its exit status) and runs in
`make test` (tests/integration/test_soak.py calls the same `run_soak`). Its parts:
`shop` (an HTTP client that follows the service's 503 advice and counts every 5xx), `orders`
(the clients and their orders' fates), `chaos` (the faults and their recovery times), `run`
(the two together, the final wait and the auditor) and `report`.
"""

from soak.chaos import Fault
from soak.run import SoakOptions, SoakResult, run_soak

__all__ = ["Fault", "SoakOptions", "SoakResult", "run_soak"]
