"""A patient's access log: the audit trail's rows that name the patient, as a person reads them.

The actor is named as a patient would recognise them, never by a token subject: the provider
linked to the subject, else a description of the role it acted in. Both are SQL expressions, so
every read of the log (a page of rows, or a one-statement tree's JSON) writes them the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Enum, String, any_, case, func, literal, null, type_coerce

from models.enums import Role

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import QueryableAttribute
    from sqlalchemy.types import TypeEngine

    Expression = ColumnElement[Any] | QueryableAttribute[Any]

# Ranked as app/domain/viewer.py's effective_role ranks a token's groups.
_RANKED = (Role.ADMIN, Role.PROVIDER, Role.PATIENT)
_UNNAMED = {
    Role.ADMIN: "clinic administrator",
    Role.PROVIDER: "clinic staff",
    Role.PATIENT: "the patient",
}
UNKNOWN_CALLER = "unknown caller"

# The role as its GraphQL name (the label a tree writes), read back as a Role.
ROLE_NAME: TypeEngine[Any] = Enum(
    Role, name="role_name", native_enum=False, create_constraint=False,
    values_callable=lambda roles: [role.name for role in roles],
)  # fmt: skip


def _of_ranked_role(roles: Expression, value: Callable[[Role], str], otherwise: Any) -> Any:
    """``value`` of the highest ranked role among the groups ``roles`` lists, else ``otherwise``."""
    return case(
        *((literal(role.value, String) == any_(roles), literal(value(role))) for role in _RANKED),
        else_=otherwise,
    )


def actor_role(roles: Expression) -> ColumnElement[Role | None]:
    """The role an audited caller acted in, from the groups (``roles``) its audit row lists."""
    return type_coerce(_of_ranked_role(roles, lambda role: role.name, null()), ROLE_NAME)


def actor(
    roles: Expression, provider_given_name: Expression, provider_family_name: Expression
) -> ColumnElement[str]:
    """The names of the provider linked to the caller's subject, if any, else its role's."""
    unnamed = _of_ranked_role(roles, _UNNAMED.__getitem__, literal(UNKNOWN_CALLER))
    # ``||`` is null when either name is.
    named = provider_given_name.op("||", return_type=String)(literal(" ")).op(
        "||", return_type=String
    )(provider_family_name)
    return func.coalesce(named, unnamed, type_=String)
