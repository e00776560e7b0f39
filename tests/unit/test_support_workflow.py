from datetime import timedelta

import pytest
from hatchet_sdk import ClientConfig, ClientTLSConfig, Hatchet

from tests.conftest import offline_token
from workflows.models import ReplyEvent
from workflows.names import REPLY_EVENT
from workflows.settings import WAIT_SLICE_SECONDS, Settings
from workflows.steps import addressed_run, receive_reply
from workflows.support import (
    build_support_workflow,
    reply_filter,
    reply_filter_by_id,
    wait_result_payload,
    wait_slice,
)


def test_wait_result_with_reply_event() -> None:
    result = {"CREATE": {REPLY_EVENT: [{"ticket_id": "T-1", "message": "fixed"}]}}
    assert wait_result_payload(result) == (True, {"ticket_id": "T-1", "message": "fixed"})


def test_wait_result_with_timeout() -> None:
    assert wait_result_payload({"CREATE": {"sleep:5s": [{"sleep_duration": "5s"}]}}) == (
        False,
        None,
    )
    assert wait_result_payload({}) == (False, None)


def test_reply_filter_lets_scope_only_payloads_through_but_not_other_tickets() -> None:
    assert reply_filter("T-42") == "!has(input.ticket_id) || input.ticket_id == 'T-42'"


RUN = "8f2c7a51-3d0e-4b7a-9c1e-2f6b5d4a3c21"


def test_reply_filter_by_id_leaves_out_the_replies_taken() -> None:
    assert reply_filter_by_id("T-42", []) == (
        "(!has(input.ticket_id) || input.ticket_id == 'T-42')"
        " && (!has(input.reply_id) || !(input.reply_id in []))"
    )
    assert reply_filter_by_id("T-42", ["a1", "b.2"]).endswith("!(input.reply_id in ['a1', 'b.2']))")


def test_reply_filter_by_id_refuses_what_would_break_out_of_a_cel_string() -> None:
    for bad in ("a' || true || '", "a\n", "", "x" * 101):
        with pytest.raises(ValueError, match="CEL filter"):
            reply_filter_by_id("T-42", ["ok", bad])


def test_a_reply_to_a_closed_run_of_the_ticket_is_refused_and_taken() -> None:
    event = _event({"message": "works", "reply_id": "r-9", "run_id": RUN})
    assert addressed_run(event) == RUN
    got = receive_reply(event, closed_run=RUN)
    assert (got.accepted, got.reply_id) == (False, "r-9")
    assert got.error == f"the reply answers run {RUN} of this ticket, which has closed"
    assert receive_reply(event).accepted  # its own run, a replaced one, or not finished yet
    for odd in (None, 5, "not-a-run", RUN + "\n"):
        assert addressed_run(_event({"message": "works", "run_id": odd})) is None


def test_the_reply_id_comes_back_with_the_reply_or_its_refusal() -> None:
    taken = receive_reply(_event({"message": "fixed", "reply_id": "r-1"}))
    assert (taken.accepted, taken.reply_id) == (True, "r-1")
    refused = receive_reply(_event({"message": " ", "reply_id": "r-2"}))
    assert (refused.accepted, refused.reply_id) == (False, "r-2")
    other = receive_reply(_event({"ticket_id": "T-2", "message": "hi", "reply_id": "r-3"}))
    assert (other.accepted, other.reply_id) == (False, "r-3")
    # An id that cannot go into the filter is no id: the next wait moves its lookback instead.
    for bad in ("r' || true || '", 7, "r-4\n"):
        got = receive_reply(_event({"message": "fixed", "reply_id": bad}))
        assert not got.accepted and got.reply_id is None, bad
        assert got.error is not None and ("reply_id" in got.error or "reply id" in got.error)
    assert receive_reply(_event({"message": "no id"})).reply_id is None


def test_new_runs_take_replies_by_id_and_old_inputs_keep_their_rule() -> None:
    from tests.conftest import make_ticket
    from workflows.client import ticket_run
    from workflows.models import TicketRun

    run = ticket_run(make_ticket("T-1"), Settings())
    assert run.replies_by_id
    recorded = run.model_dump(mode="json")
    del recorded["replies_by_id"]  # an input recorded before the field existed
    assert not TicketRun.model_validate(recorded).replies_by_id


def _event(payload: object) -> ReplyEvent:
    return ReplyEvent(ticket_id="T-1", round=1, payload=payload)


def test_a_valid_reply_is_taken() -> None:
    got = receive_reply(_event({"ticket_id": "T-1", "message": "fixed", "resolved": True}))
    assert (got.accepted, got.message, got.resolved) == (True, "fixed", True)


def test_a_reply_carrying_only_the_message_is_taken_for_the_waiting_ticket() -> None:
    got = receive_reply(_event({"message": "still broken"}))
    assert got.accepted and got.ticket_id == "T-1" and got.message == "still broken"


def test_malformed_replies_are_refused_with_the_reason_never_raised() -> None:
    cases = {
        "no message": ({}, "message: Field required"),
        "empty": ({"message": " "}, "the message is empty"),
        "a number": ({"message": 42}, "message: Input should be a valid string"),
        "too long": ({"message": "x" * 200_001}, "the message is 200001 characters; the limit"),
        "not an object": (7, "the payload is int, not a JSON object"),
        "other ticket": ({"ticket_id": "T-2", "message": "hi"}, "names ticket 'T-2'"),
    }
    for name, (payload, reason) in cases.items():
        got = receive_reply(_event(payload))
        assert not got.accepted, name
        assert got.error is not None and reason in got.error, (name, got.error)


def test_execution_timeout_outlasts_the_reply_wait() -> None:
    settings = Settings(reply_timeout_seconds=7200)
    assert settings.ticket_execution_timeout > timedelta(seconds=7200)
    # The engine keeps timing a waiting (evicted) task from its last wake-up:
    # any ticket's single sleep, whatever its own reply timeout, must fit.
    for worker_reply_timeout in (3, 7200, 48 * 3600):
        timeout = Settings(reply_timeout_seconds=worker_reply_timeout).ticket_execution_timeout
        for ticket_reply_timeout in (2.5, 7200, 30 * 24 * 3600):  # the API allows 30 days
            assert timedelta(seconds=wait_slice(ticket_reply_timeout)) < timeout
    assert Settings(ticket_execution_timeout_seconds=30).ticket_execution_timeout == timedelta(
        seconds=30
    )


def test_a_long_wait_goes_in_slices_that_add_up_to_it() -> None:
    thirty_days = 30 * 24 * 3600
    left, slices = float(thirty_days), []
    while left >= 1:
        slices.append(wait_slice(left))
        left -= slices[-1]
    assert max(slices) == WAIT_SLICE_SECONDS and sum(slices) == thirty_days
    assert wait_slice(2.5) == 3  # whole seconds, never shorter than asked
    # A wait within the default reply timeout is one sleep of it, as in earlier
    # versions: a ticket waiting across an upgrade replays its durable log unchanged.
    default = Settings().reply_timeout_seconds
    assert wait_slice(default) == default == WAIT_SLICE_SECONDS


def test_no_task_of_a_ticket_expires_in_the_queue_before_the_ticket_may_end() -> None:
    # Hatchet's default schedule timeout (5 minutes) cancelled queued triage children, and
    # their tickets, when 1,000 tickets arrived at once.
    hatchet = Hatchet(
        config=ClientConfig(token=offline_token(), tls_config=ClientTLSConfig(strategy="none"))
    )
    settings = Settings(reply_timeout_seconds=7 * 24 * 3600)
    tasks = [
        task
        for runnable in build_support_workflow(hatchet, settings).all()
        for task in runnable.to_proto().tasks
    ]
    (ticket,) = [t for t in tasks if t.readable_id == "support-ticket"]
    assert ticket.timeout == "169h"
    assert len(tasks) == 8
    assert {t.readable_id: t.schedule_timeout for t in tasks} == {
        t.readable_id: "169h" for t in tasks
    }


def test_a_failed_ticket_orchestration_is_retried_and_replays_its_log() -> None:
    # A dropped engine connection fails the durable step in flight; a retry replays the log.
    hatchet = Hatchet(
        config=ClientConfig(token=offline_token(), tls_config=ClientTLSConfig(strategy="none"))
    )
    ticket = build_support_workflow(hatchet, Settings(ticket_retries=5)).ticket.to_proto().tasks[0]
    assert (ticket.readable_id, ticket.retries) == ("support-ticket", 5)
    assert Settings().ticket_retries == 3


def test_model_turns_count_against_the_configured_rate_limit_key() -> None:
    # Workers that share an API key share a limit; another key (another quota) is apart.
    hatchet = Hatchet(
        config=ClientConfig(token=offline_token(), tls_config=ClientTLSConfig(strategy="none"))
    )

    def keys(settings: Settings) -> dict[str, list[str]]:
        return {
            task.readable_id: [r.key for r in task.rate_limits]
            for runnable in build_support_workflow(hatchet, settings).all()
            for task in runnable.to_proto().tasks
            if task.rate_limits
        }

    assert keys(Settings()) == {"llm-turn": ["support-agent:llm-requests"]}
    assert keys(Settings(llm_rate_limit_key="team-b:llm")) == {"llm-turn": ["team-b:llm"]}
