"""The page's WebSocket: it may watch the progress topics of tasks, and nothing else."""

import re

from switchboard.realtime import RealtimeConsumer

# switchboard.tasks.progress_topic(): "task." and the result id, 32 random letters and digits.
TASK_TOPIC = re.compile(r"task\.[A-Za-z0-9]{32}")


class ProgressConsumer(RealtimeConsumer):
    async def topic_allowed(self, topic: str, action: str) -> bool:
        # An id cannot be guessed, and only the page that started a task is told it: knowing
        # the id is the permission to watch the task (a site whose tasks are private would
        # check the task's owner here instead).
        return action == "subscribe" and TASK_TOPIC.fullmatch(topic) is not None
