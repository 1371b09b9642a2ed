"""Settings of scale-out (the ``cluster:`` section; see docs/scale-out.md).

Kept out of :mod:`vigil.cluster` so that :mod:`vigil.config` imports no engine code.
"""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def default_worker_id() -> str:
    """``<host name>-<pid>``: unique among the processes of one host and across hosts."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterSettings(_Model):
    """Several workers share the streams through a Kafka consumer group (needs
    ``kafka.bootstrap_servers``). Off: this process owns every stream, as without Kafka."""

    enabled: bool = Field(
        False,
        description="Join the worker group: streams come from the control topic, and this "
        "worker runs those of the partitions Kafka assigns to it",
    )
    worker_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="This worker's name in the status topic, `GET /api/v1/cluster` and "
        "`analyticsModule.source` of its events (default: <host>-<pid>)",
    )
    advertised_url: str | None = Field(
        None,
        pattern=r"^https?://[^/?#]+$",
        description="This worker's REST API as the other workers reach it, to pass them calls "
        "about its streams (default: http(s)://<api.host>:<api.port>, the host name when "
        "api.host is a wildcard)",
    )
    group_id: str = Field("vigil-workers", min_length=1, description="Consumer group of workers")
    control_topic: str = Field(
        "vigil-streams",
        min_length=1,
        description="Desired streams: key = stream id, value = StreamSpec JSON, null = removed "
        "(compacted)",
    )
    status_topic: str = Field(
        "vigil-workers", min_length=1, description="Workers publish their status here"
    )
    model_topic: str = Field(
        "vigil-model",
        min_length=1,
        description="The model version every worker serves: a swap asked of any worker is "
        "written here and applied by all (compacted, one partition)",
    )
    partitions: int = Field(
        24,
        ge=1,
        le=1000,
        description="Partitions of the control topic when Vigil creates it: the most workers "
        "that can own streams at once",
    )
    max_streams: int | None = Field(
        None,
        ge=0,
        le=10_000,
        description="The most cluster streams this worker runs (unset: no limit); the group "
        "places no more on it, and streams no worker has room for wait, shown pending",
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1000,
        le=300_000,
        description="A worker that has not heartbeated for this long loses its streams to others",
    )
    heartbeat_interval_ms: int = Field(
        2000, ge=100, description="How often a worker heartbeats (below session_timeout_ms / 3)"
    )
    status_interval_s: float = Field(
        2.0, gt=0, le=300, description="How often a worker publishes its status"
    )
    rebalance_delay_s: float = Field(
        2.0,
        ge=0,
        le=300,
        description="While moving streams would even out the workers, the group leader asks "
        "for a rebalance once neither the streams nor the assignment changed for this long "
        "(bulk adds make one rebalance)",
    )
    request_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A REST call that adds a stream waits this long for its owner to report "
        "it, else answers 202 with the link to poll",
    )

    @property
    def worker(self) -> str:
        """This worker's id: ``worker_id``, or ``<host name>-<pid>``."""
        return self.worker_id or default_worker_id()

    @model_validator(mode="after")
    def _check_heartbeat(self) -> ClusterSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "cluster.heartbeat_interval_ms must be at most a third of session_timeout_ms"
            )
        return self
