"""Thin Faust agents: read, convert, call ``models``, update tables, send.

Two stages: ``ingest`` (partitioned by ingress key) validates, dead-letters and resolves identity,
``consent`` and ``feedback`` validate consent changes and sender feedback and route them to
their user;
``users`` (partitioned by canonical user) applies events to profiles, fires due times and decides;
``learner`` (one instance) trains the shared models and publishes their snapshots.
"""

from agents.runtime import Runtime

__all__ = ["Runtime", "register"]


def register(app: object, rt: Runtime) -> None:
    """Attach every agent to ``app`` (called by :func:`app.factory.create_app`)."""
    from agents import consent, erase, feedback, ingest, learner, users

    ingest.register(app, rt)
    consent.register(app, rt)
    feedback.register(app, rt)
    erase.register(app, rt)
    users.register(app, rt)
    learner.register(app, rt)
