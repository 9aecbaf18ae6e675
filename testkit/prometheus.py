"""One reader of Prometheus text pages (ours, and Triton's), on prometheus_client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def samples(text: str) -> dict[str, float]:
    """Every sample on the page, keyed by its series as the page writes it:
    ``name{label="value",...}`` with the labels in the page's order, or the bare name."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def metric_value(text: str, series: str) -> float:
    """The value of one series (name plus labels, exactly as the page writes them); -1 if absent."""
    return samples(text).get(series, -1.0)
