"""Canary releases: the router (ASGI), the judge (statistics) and the controller (state machine)."""
