"""Identity stitching: which canonical user an event belongs to, and when to link identities.

Canonical ids are ``u:<user_id>`` for logged-in users and ``a:<anonymous_id>`` for anonymous
browsers never linked. Rules:

* an event with both ids links the anonymous id to the user: the **first link wins**;
* a later event linking the same anonymous id to another user is a *conflict* (a shared device):
  it is counted and attributed to the user it names, and nothing is merged;
* an event with only an anonymous id is always routed to ``a:<anonymous_id>``. Once that
  profile has been merged into a user it forwards every later event there. Routing never
  depends on state that a redelivery could see differently, so one event always reaches the
  same profile and its dedupe record (see :mod:`models.profile`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

USER = "u:"
ANON = "a:"


def user_key(user_id: str) -> str:
    return USER + user_id


def anon_key(anonymous_id: str) -> str:
    return ANON + anonymous_id


def routing_id(canonical: str) -> str:
    """The Kafka key that places a canonical user on its partition: the raw id.

    Ingress events are keyed by the raw id too (anonymous id, else user id), so an event whose
    canonical user has the same raw id as its key is already on that user's partition.
    """
    return canonical[2:]


def erased_key(canonical: str, salt: bytes) -> str:
    """The suppression-list key of an erased canonical id: a keyed hash (HMAC-SHA256), so the
    list stops the same id being rebuilt without keeping the id itself.

    >>> k = erased_key("u:alice", b"s")
    >>> len(k), k == erased_key("u:alice", b"s"), k == erased_key("u:alice", b"t")
    (64, True, False)
    """
    return hmac.new(salt, canonical.encode(), hashlib.sha256).hexdigest()


def external_id(canonical: str) -> tuple[str, str]:
    """``("user" | "anonymous", id)`` of a canonical id."""
    if canonical.startswith(USER):
        return "user", canonical[len(USER) :]
    return "anonymous", canonical[len(ANON) :]


class LinkOutcome(StrEnum):
    none = "none"
    """The event carries one id."""
    new = "new"
    """First link of this anonymous id: store it and merge the anonymous history."""
    known = "known"
    """The event carries both ids and this link is already stored. The merge it caused may have
    been lost in a crash (the link's store and the merge message are not one write), so the
    worker asks the anonymous profile to re-send it; merging is idempotent at the user."""
    conflict = "conflict"
    """The anonymous id is already linked to another user."""


@dataclass(frozen=True, slots=True)
class Resolution:
    canonical: str
    outcome: LinkOutcome


def resolve(user_id: str | None, anonymous_id: str | None, linked_user: str | None) -> Resolution:
    """Resolve one event's canonical user.

    Parameters
    ----------
    user_id, anonymous_id
        The ids the event carries (at least one).
    linked_user
        The user id this anonymous id was first linked to, if any.

    Examples
    --------
    >>> resolve("u1", "d1", None)
    Resolution(canonical='u:u1', outcome=<LinkOutcome.new: 'new'>)
    >>> resolve(None, "d1", "u1").canonical
    'a:d1'
    >>> resolve("u1", "d1", "u1").outcome.value
    'known'
    >>> resolve("u2", "d1", "u1").outcome.value
    'conflict'
    """
    if user_id is not None and anonymous_id is not None:
        if linked_user is None:
            return Resolution(user_key(user_id), LinkOutcome.new)
        outcome = LinkOutcome.known if linked_user == user_id else LinkOutcome.conflict
        return Resolution(user_key(user_id), outcome)
    if user_id is not None:
        return Resolution(user_key(user_id), LinkOutcome.none)
    if anonymous_id is None:
        raise ValueError("an event needs a user_id or an anonymous_id")
    return Resolution(anon_key(anonymous_id), LinkOutcome.none)
