"""Client-side operations: submit a ticket, push a customer's reply, follow a run."""

from __future__ import annotations

from hatchet_sdk import Hatchet
from hatchet_sdk.runnables.workflow import TaskRunRef

from agent.tickets import CustomerReply, Ticket, TicketOutcome
from workflows.support import REPLY_EVENT, SupportWorkflow, TicketRun


async def submit_ticket(
    hatchet: Hatchet,
    workflow: SupportWorkflow,
    ticket: Ticket,
    *,
    reply_timeout_seconds: float,
    reply_lookback_seconds: float = 300,
) -> TaskRunRef[TicketRun, TicketOutcome]:
    """Start the durable workflow for a ticket; the ticket id tags every descendant run."""
    await workflow.register(hatchet)
    return await workflow.ticket.aio_run(
        TicketRun(
            ticket=ticket,
            reply_timeout_seconds=reply_timeout_seconds,
            reply_lookback_seconds=reply_lookback_seconds,
        ),
        wait_for_result=False,
        additional_metadata={"ticket_id": ticket.ticket_id},
    )


async def push_reply(hatchet: Hatchet, reply: CustomerReply) -> str:
    """Publish the customer's reply; only the run waiting on this ticket id can take it."""
    event = await hatchet.event.aio_push(
        REPLY_EVENT, reply.model_dump(mode="json"), scope=reply.ticket_id
    )
    return event.event_id
