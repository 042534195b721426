"""asgiref's communicator already runs an app instance with queues for input and output."""

from asgiref.testing import ApplicationCommunicator

__all__ = ["ApplicationCommunicator"]
