"""The simulated paid-knowledge platform: a world with ground truth (``nba simulate``), and a
closed loop in which simulated users respond to actions. Pure Python, no Kafka: the writers in
:mod:`lab.sim.output` put the stream in a file or on the broker."""
