"""Live order updates: what an order's progress stream (SSE, in app.api) is made of.

The hub (hub.py) polls each order that a stream watches, once for all its streams, and hands
each change to them; progress.py numbers the changes (the streams' event ids). The hub is also
the OrderEventPublisher the app runs with (app.workflows.contracts.OrderEvent): the services
publish an order's acceptance and a manager's decision, the workflow's activities each step
they start and the recorded outcome, and a published event makes that order's poll happen at
once. The event is only a signal: what the streams send is the order as the poll reads it.
"""
