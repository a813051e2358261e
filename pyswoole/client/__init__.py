"""Clients: the blocking ``Client`` with ``client_select``, and the coroutine client ``co.Client``."""

from pyswoole.client.sync import Client, client_select

__all__ = ["Client", "client_select"]
