"""Guest names: one per browser session, so a guest keeps theirs across reloads and reconnects."""

import secrets

# Set by the room view in the Django session; read by the consumer from scope["session"].
SESSION_KEY = "chat_guest_name"


def new_guest_name() -> str:
    return f"guest-{secrets.token_hex(2)}"
