"""A stage that sleeps, registered for the kill -9 resume test (imported by the test and its subprocess)."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, ConfigDict

from curate.stages import register


class SlowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register("testing.slow", version=1, config=SlowConfig)
def slow_batch(batch, config):
    """Sleep SLOW_STAGE_SECONDS per batch, then pass rows through."""
    time.sleep(float(os.environ.get("SLOW_STAGE_SECONDS", "0")))
    return batch
