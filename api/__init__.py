"""The HTTP API a helpdesk talks to: tickets and replies in, status out.

A sibling of the command line over the same core (``workflows``): the same
ticket models validate what arrives, the same client operations submit and
reply, the same transcript reader answers status requests.
"""
