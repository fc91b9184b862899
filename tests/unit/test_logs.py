"""Rate-limited logs (issue 18, finding 8): an error storm writes a few lines per source; raw
bytes (keys, payloads) never reach a log line (finding 10)."""

from __future__ import annotations

import logging

from app.logs import RateLimit, Redact, install


def test_a_storm_of_one_template_passes_a_burst_per_window_and_says_what_it_dropped() -> None:
    now = [0.0]
    limit = RateLimit(burst=5, window_s=10.0, clock=lambda: now[0])
    passed = []
    for second in range(40):  # 40 s of a broker outage, 2,500 lines a second from one call site
        now[0] = float(second)
        for p in range(2_500):
            rec = logging.LogRecord("aiokafka", logging.ERROR, "", 0, "Unable connect to %s", (p,), None)
            if limit.filter(rec):
                passed.append(rec.getMessage())
    assert len(passed) == 4 * 5  # four windows of ten seconds, five lines each
    assert "similar lines suppressed" in passed[5] and "24995" in passed[5]


def test_different_templates_and_levels_are_limited_separately() -> None:
    limit = RateLimit(burst=1, window_s=10.0, clock=lambda: 0.0)
    records = [
        logging.LogRecord("a", logging.ERROR, "", 0, "x %s", (1,), None),
        logging.LogRecord("a", logging.WARNING, "", 0, "x %s", (1,), None),
        logging.LogRecord("a", logging.ERROR, "", 0, "y %s", (1,), None),
        logging.LogRecord("b", logging.ERROR, "", 0, "x %s", (1,), None),
        logging.LogRecord("a", logging.ERROR, "", 0, "x %s", (2,), None),
    ]
    assert [limit.filter(r) for r in records] == [True, True, True, True, False]


def test_install_puts_one_filter_on_each_handler() -> None:
    logger = logging.getLogger("nba-test-install")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        install(logger)
        install(logger)
        assert sum(isinstance(f, RateLimit) for f in handler.filters) == 1
        assert sum(isinstance(f, Redact) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


def test_raw_keys_and_payloads_are_replaced_by_their_size_and_a_keyed_hash() -> None:
    redact = Redact(key=b"k")
    args = (b"u:alice", bytearray(b'{"user_id":"alice"}'), "topic", 7)
    rec = logging.LogRecord(
        "aiokafka", logging.DEBUG, "", 0, "Sending (key=%r value=%r) to %s %d", args, None
    )
    assert redact.filter(rec)
    text = rec.getMessage()
    assert "alice" not in text and "<7 bytes #" in text and "<19 bytes #" in text and text.endswith("topic 7")
    again = logging.LogRecord("aiokafka", logging.DEBUG, "", 0, "k=%r", (b"u:alice",), None)
    redact.filter(again)
    assert again.getMessage() == "k=" + text.split("key=")[1].split(" value")[0]  # same id, same hash
