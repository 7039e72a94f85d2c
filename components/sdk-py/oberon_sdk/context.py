"""What a component knows of the request: :class:`Context` and :class:`User`."""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple


@dataclass(frozen=True)
class User:
    """The signed-in user, present only when the gateway authenticated the request.
    A component that shows anything of it declares ``Cacheability.PERSONAL``."""

    #: ``ISSUER#SUBJECT`` (the issuer's own ``%`` and ``#`` percent-encoded): unique
    #: across identity providers, so key anything by it.
    id: str
    roles: Tuple[str, ...] = ()

    def has_role(self, role: str) -> bool:
        """Whether the user has the role ``role``."""
        return role in self.roles

    @property
    def subject(self) -> str:
        """The user's id at their identity provider (``sub``), for display."""
        return self.id.split("#", 1)[1] if "#" in self.id else self.id

    @property
    def issuer(self) -> str:
        """The identity provider that authenticated the user (its ``iss``)."""
        issuer = self.id.split("#", 1)[0] if "#" in self.id else ""
        return issuer.replace("%23", "#").replace("%25", "%")


@dataclass(frozen=True)
class Context:
    """One request, as the renderer gives it to ``render``."""

    #: The normalised request path, e.g. ``/events/42``.
    path: str = "/"
    #: Route parameters, e.g. ``[("id", "42")]`` for ``/events/{id}``.
    params: List[Tuple[str, str]] = field(default_factory=list)
    #: Query string parameters, in order.
    query_pairs: List[Tuple[str, str]] = field(default_factory=list)
    #: The BCP 47 language tag chosen for the response, e.g. ``en-GB``.
    locale: str = "en"
    user: Optional[User] = None
    request_id: str = ""

    def param(self, name: str) -> Optional[str]:
        """The route parameter ``name`` (e.g. ``id`` for ``/events/{id}``), if present."""
        return _lookup(self.params, name)

    def query(self, name: str) -> Optional[str]:
        """The first query string parameter ``name``, if present."""
        return _lookup(self.query_pairs, name)

    @classmethod
    def from_wit(cls, raw) -> "Context":
        """The SDK's context from the contract's record (``wit_world.imports.types.Context``)."""
        user = raw.user
        return cls(
            path=raw.path,
            params=list(raw.params),
            query_pairs=list(raw.query),
            locale=raw.locale,
            user=None if user is None else User(user.id, tuple(user.roles)),
            request_id=raw.request_id,
        )


def _lookup(pairs, name):
    for key, value in pairs:
        if key == name:
            return value
    return None
