"""Domain rules with no I/O: the catalog and stock arithmetic, the order record and what a manager
may do to an order. Services load and save; these modules decide."""
