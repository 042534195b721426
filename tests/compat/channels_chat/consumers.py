# A chat app written against Django Channels, in the style of its tutorial.
# The compatibility test loads this file with only `channels` -> `switchboard` in imports.
import json

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room_name"]
        self.group = f"chat_{self.room}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data):
        text = json.loads(text_data)["message"]
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "message": text})

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"]}))


class SyncChatConsumer(WebsocketConsumer):
    def connect(self):
        self.group = "chat_" + self.scope["url_route"]["kwargs"]["room_name"]
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()

    def disconnect(self, close_code):
        async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive(self, text_data):
        text = json.loads(text_data)["message"]
        async_to_sync(self.channel_layer.group_send)(
            self.group, {"type": "chat.message", "message": text}
        )

    def chat_message(self, event):
        self.send(text_data=json.dumps({"message": event["message"]}))
