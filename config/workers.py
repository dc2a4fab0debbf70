"""The gunicorn worker class of the web role (deploy/gunicorn.conf.py): uvicorn with uvloop and
httptools, and websocket frames sent uncompressed. Chat frames are a few hundred bytes;
per-message deflate cost CPU on both ends for almost no bytes saved."""

from typing import Any

from uvicorn_worker import UvicornWorker


class WebWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": "auto", "ws_per_message_deflate": False}
