"""The media engine this deployment configured (``PARLEY_MEDIA_ENGINE``)."""

from __future__ import annotations

from server.config import Settings
from server.media.engine import MediaEngine


def make_media_engine(settings: Settings) -> tuple[MediaEngine, int | None]:
    """The engine, and the meeting size it is sized for (None: no stated ceiling)."""
    if settings.media_engine == "janus":
        from server.media.janus import JanusClient
        from server.media.janus_engine import JanusEngine

        assert settings.janus_url is not None  # checked when the settings were read
        client = JanusClient(settings.janus_url, settings.janus_api_secret)
        return JanusEngine(client, admin_key=settings.janus_admin_key), None
    from server.media.embedded import EMBEDDED_CEILING, EmbeddedEngine

    return EmbeddedEngine(), EMBEDDED_CEILING
