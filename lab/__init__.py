"""The offline lab: the simulated world and closed loop (:mod:`lab.sim`), log reading and replay,
prequential evaluation (``nba evaluate``), batch reference models written independently of the
online code, the contact-rule checker and the policy reports.

Nothing in the service imports it, except the CLI's offline commands, lazily. It depends on
``schemas`` and ``models`` only, and its own libraries come with the ``lab`` extra
(``pip install 'omnichannel-nba[lab]'``).
"""
