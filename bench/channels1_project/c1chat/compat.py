"""The one place that knows which stack runs: Switchboard if importable, else Channels 1."""

try:
    from switchboard import Channel, Group, route
    from switchboard.sessions import channel_session
except ImportError:
    from channels import Channel, Group, route
    from channels.sessions import channel_session

__all__ = ["Channel", "Group", "channel_session", "route"]
