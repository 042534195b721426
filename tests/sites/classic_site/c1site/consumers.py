"""A socket for bad input: its receive consumer raises on "raise" and echoes anything else."""

import os


def faults_connect(message):
    pass  # answering nothing accepts the socket


def faults_receive(message):
    if message["text"] == "raise":
        # Sent all the same, after the consumer raised, as Channels 1.1's worker did.
        message.reply_channel.send({"text": "sent before raising"})
        raise RuntimeError("the faults consumer was told to raise")
    message.reply_channel.send({"text": f"echo {message['text']} from {os.getpid()}"})


def faults_disconnect(message):
    pass
