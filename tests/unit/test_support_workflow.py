from datetime import timedelta

from workflows.settings import Settings
from workflows.support import REPLY_EVENT, parse_wait_result, reply_filter


def test_wait_result_with_reply_event() -> None:
    result = {"CREATE": {REPLY_EVENT: [{"ticket_id": "T-1", "message": "fixed"}]}}
    reply = parse_wait_result(result)
    assert reply is not None
    assert (reply.ticket_id, reply.message) == ("T-1", "fixed")


def test_wait_result_with_timeout() -> None:
    assert parse_wait_result({"CREATE": {"sleep:5s": [{"sleep_duration": "5s"}]}}) is None
    assert parse_wait_result({}) is None


def test_reply_filter_is_a_cel_equality_on_the_ticket_id() -> None:
    assert reply_filter("T-42") == "input.ticket_id == 'T-42'"


def test_execution_timeout_outlasts_the_reply_wait() -> None:
    settings = Settings(reply_timeout_seconds=7200)
    assert settings.ticket_execution_timeout > timedelta(seconds=7200)
    assert Settings(ticket_execution_timeout_seconds=30).ticket_execution_timeout == timedelta(
        seconds=30
    )
