"""Channels 1 routing: ``route``, ``route_class``, ``include``, and the router of a layer.

A routing is a list searched in order; the first entry that matches a message names the
consumer. ``route(channel, consumer, **filters)`` matches messages on ``channel`` whose
content matches every filter, a regular expression searched from the start of that key's
value (``path="^/chat/(?P<room>[^/]+)/$"``); named groups become keyword arguments of the
consumer. ``include(routing, **filters)`` nests a routing (or its dotted path) under filters:
the part of each filtered value they matched is cut off before the nested routes see it, so a
nested ``path`` filter matches what follows the prefix. The routing of a ``CHANNEL_LAYERS``
entry is its ``ROUTING`` (a list, a ``{channel: consumer}`` dict, or a dotted path to one).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

__all__ = [
    "Include",
    "Route",
    "RouteClass",
    "Router",
    "RoutingError",
    "include",
    "route",
    "route_class",
    "router_for",
]

Consumer = Callable[..., Any]
Match = tuple[Consumer, dict[str, Any]]


class RoutingError(ValueError):
    """A routing that cannot be used: said at startup, not at the first message."""


class Routable(Protocol):
    def match(self, message: Any) -> Match | None: ...

    def channel_names(self) -> set[str]: ...


def _as_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    return None


class _Filtered:
    """Filters on content keys: compiled regular expressions, anchored at the start."""

    def __init__(self, filters: Mapping[str, str]) -> None:
        self.filters: dict[str, re.Pattern[str]] = {}
        for key, pattern in filters.items():
            if not isinstance(pattern, str):
                raise RoutingError(f"Filter {key}={pattern!r} must be a regular expression string")
            if not pattern.startswith("^"):
                pattern = "^" + pattern  # matched from the start, as Channels 1 did
            try:
                self.filters[key] = re.compile(pattern)
            except re.error as exc:
                raise RoutingError(f"Filter {key}={pattern!r}: {exc}") from None

    def matches(self, content: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]] | None:
        """Named groups, and how much of each filtered value was matched; None if not."""
        kwargs: dict[str, Any] = {}
        consumed: dict[str, int] = {}
        for key, pattern in self.filters.items():
            value = _as_text(content.get(key))
            if value is None:
                return None
            found = pattern.match(value)
            if found is None:
                return None
            kwargs.update({k: v for k, v in found.groupdict().items() if v is not None})
            consumed[key] = found.end()
        return kwargs, consumed


class Route(_Filtered):
    """``consumer`` for messages on ``channel`` that pass the filters."""

    def __init__(self, channel: str, consumer: Consumer | str, **filters: str) -> None:
        super().__init__(filters)
        if not isinstance(channel, str) or not channel:
            raise RoutingError(f"A route's channel must be a channel name, not {channel!r}")
        self.channel = channel
        self.consumer = _resolve(consumer) if isinstance(consumer, str) else consumer
        if not callable(self.consumer):
            raise RoutingError(f"The consumer for {channel!r} is not callable: {consumer!r}")

    def match(self, message: Any) -> Match | None:
        if message.channel.name != self.channel:
            return None
        found = self.matches(message.content)
        return None if found is None else (self.consumer, found[0])

    def channel_names(self) -> set[str]:
        return {self.channel}

    def __repr__(self) -> str:
        return f"route({self.channel!r}, {self.consumer!r})"


class RouteClass(_Filtered):
    """A class-based consumer (its ``channel_names()``) for the messages that pass the filters."""

    def __init__(self, consumer: Any, **filters: str) -> None:
        super().__init__(filters)
        if isinstance(consumer, str):
            consumer = _resolve(consumer)
        names = getattr(consumer, "channel_names", None)
        if names is None:
            raise RoutingError(f"route_class needs a class with channel_names(): {consumer!r}")
        self.consumer = consumer
        self.channels = set(names())

    def match(self, message: Any) -> Match | None:
        if message.channel.name not in self.channels:
            return None
        found = self.matches(message.content)
        return None if found is None else (self.consumer, found[0])

    def channel_names(self) -> set[str]:
        return set(self.channels)


class Include(_Filtered):
    """A nested routing under filters; each filtered value loses its matched prefix."""

    def __init__(self, routing: Any, **filters: str) -> None:
        super().__init__(filters)
        self.routing = Router(routing)

    def match(self, message: Any) -> Match | None:
        found = self.matches(message.content)
        if found is None:
            return None
        kwargs, consumed = found
        if consumed:
            trimmed = dict(message.content)
            for key, length in consumed.items():
                value = message.content[key]
                trimmed[key] = value[length:]
            inner = _Trimmed(message, trimmed)
        else:
            inner = message
        result = self.routing.match(inner)
        if result is None:
            return None
        consumer, inner_kwargs = result
        return consumer, {**kwargs, **inner_kwargs}  # the inner route's win on a clash

    def channel_names(self) -> set[str]:
        return self.routing.channel_names()


class _Trimmed:
    """A message as nested routes see it: filtered values with their prefix cut off."""

    def __init__(self, message: Any, content: dict[str, Any]) -> None:
        self.channel = message.channel
        self.content = content


def route(channel: str, consumer: Consumer | str, **filters: str) -> Route:
    return Route(channel, consumer, **filters)


def route_class(consumer: Any, **filters: str) -> RouteClass:
    return RouteClass(consumer, **filters)


def include(routing: Any, **filters: str) -> Include:
    return Include(routing, **filters)


def _resolve(path: str) -> Any:
    module, _, name = path.rpartition(".")
    if not module:
        raise RoutingError(f"{path!r} is not a dotted path")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise RoutingError(f"Cannot import {path!r}: {exc}") from exc


def _entries(routing: Any) -> list[Routable]:
    if isinstance(routing, str):
        routing = _resolve(routing)
    if isinstance(routing, Router):
        return list(routing.routing)
    if isinstance(routing, Mapping):  # the pre-1.0 {channel: consumer} form
        return [Route(channel, consumer) for channel, consumer in routing.items()]
    if not isinstance(routing, Iterable):
        raise RoutingError(f"A routing is a list of routes, not {type(routing).__name__}")
    entries = []
    for entry in routing:
        if not (hasattr(entry, "match") and hasattr(entry, "channel_names")):
            raise RoutingError(
                f"Routing entry {entry!r} is not a route: use route(), route_class() or include()"
            )
        entries.append(entry)
    return entries


class Router:
    """A whole routing: the first matching entry names the consumer for a message."""

    def __init__(self, routing: Any) -> None:
        self.routing: list[Routable] = _entries(routing)

    def match(self, message: Any) -> Match | None:
        for entry in self.routing:
            found = entry.match(message)
            if found is not None:
                return found
        return None

    def channel_names(self) -> set[str]:
        names: set[str] = set()
        for entry in self.routing:
            names |= entry.channel_names()
        return names


def router_for(alias: str) -> Router | None:
    """The router of ``CHANNEL_LAYERS[alias]["ROUTING"]``, or None when it names none (a
    Channels 2+ project). Raises :class:`RoutingError` for a routing that cannot be used."""
    from django.conf import settings

    entry = getattr(settings, "CHANNEL_LAYERS", {}).get(alias) or {}
    routing = entry.get("ROUTING")
    if routing is None:
        return None
    try:
        return Router(routing)
    except RoutingError as exc:
        raise RoutingError(f"CHANNEL_LAYERS[{alias!r}]['ROUTING']: {exc}") from None
