"""A nameko timer whose interval comes from the container's config at start."""

from __future__ import annotations

from nameko.timer import Timer


class ConfiguredTimer(Timer):
    """`@ConfiguredTimer.decorator("DEADLINE_SCAN_S", default=5)`: tests and
    deployments set the interval without re-importing the service."""

    def __init__(self, config_key: str, default: float, **kwargs):
        self.config_key = config_key
        super().__init__(interval=default, **kwargs)

    def setup(self) -> None:
        configured = self.container.config.get(self.config_key)
        if configured:
            self.interval = float(configured)
        super().setup()


def every(config_key: str, default: float):
    return ConfiguredTimer.decorator(config_key, default)
