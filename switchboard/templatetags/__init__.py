"""Switchboard's template tag libraries (``{% load switchboard %}``)."""
