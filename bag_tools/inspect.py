"""Summaries of bags (what ``ptr inspect`` prints)."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from bag_tools.reader import open_bag

__all__ = ['BagSummary', 'TopicSummary', 'summarize_bag']


class TopicSummary(TypedDict):
    topic: str
    type: str  # the first connection's type
    types: list[str]  # every type on the topic (several: a mixed-type topic)
    count: int
    rate_hz: float  # mean rate from log times; 0.0 with fewer than two messages
    header_stamps: bool


class BagSummary(TypedDict):
    path: str
    start_ns: int
    end_ns: int
    duration_s: float
    messages: int
    topics: list[TopicSummary]


def summarize_bag(path: str | Path) -> BagSummary:
    """Read every message's log time once and summarize the bag per topic.

    Raises ``BagOpenError`` for a non-bag or a corrupt/truncated bag and ``MissingTypeError``
    when a topic's type has no definition.
    """
    with open_bag(path) as bag:
        bag.require_defined()
        infos = bag.topics()
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        counts = dict.fromkeys(infos, 0)
        for raw in bag.raw_messages():
            first.setdefault(raw.topic, raw.log_time_ns)
            last[raw.topic] = raw.log_time_ns
            counts[raw.topic] += 1
        topics: list[TopicSummary] = []
        for topic, info in infos.items():
            n = counts[topic]
            span = (last[topic] - first[topic]) / 1e9 if n > 1 else 0.0
            topics.append(
                TopicSummary(
                    topic=topic,
                    type=info.msgtype,
                    types=list(info.msgtypes or (info.msgtype,)),
                    count=n,
                    rate_hz=(n - 1) / span if span > 0 else 0.0,
                    header_stamps=info.has_header,
                )
            )
        return BagSummary(
            path=str(path),
            start_ns=bag.start_ns if bag.message_count else 0,
            end_ns=bag.end_ns if bag.message_count else 0,
            duration_s=bag.duration_ns / 1e9,
            messages=sum(counts.values()),
            topics=topics,
        )
