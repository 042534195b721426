"""Test helpers: drive ASGI applications without a server, or serve the project for real."""

from switchboard.testing.application import ApplicationCommunicator
from switchboard.testing.http import HttpCommunicator
from switchboard.testing.live import ChannelsLiveServerTestCase, SwitchboardLiveServerTestCase
from switchboard.testing.websocket import WebsocketCommunicator

__all__ = [
    "ApplicationCommunicator",
    "ChannelsLiveServerTestCase",
    "HttpCommunicator",
    "SwitchboardLiveServerTestCase",
    "WebsocketCommunicator",
]
