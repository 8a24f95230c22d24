"""The Subscription root."""

from __future__ import annotations

import strawberry

from resolvers import subscriptions


@strawberry.type
class Subscription:
    record_status_changed = strawberry.subscription(
        resolver=subscriptions.record_status_changed,
        description=(
            "Status changes the caller may see, filtered by record or patient when given.\n"
            "With afterSequence, first replays the missed events after that position, then goes "
            "live."
        ),
    )
    break_glass_activated = strawberry.subscription(
        resolver=subscriptions.break_glass_activated,
        description="Admins only: every break-glass grant of the tenant as it is made",
    )
