"""The watcher's counters, and their Prometheus text form (rendering is pure)."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    """Updated by the loop thread, read by the HTTP threads; one lock guards every field."""

    cycles: Counter[str] = field(default_factory=Counter)  # by result: nothing, applied, drift, error, ...
    changes: Counter[str] = field(default_factory=Counter)  # by Pulumi operation: create, update, delete, ...
    errors: Counter[str] = field(default_factory=Counter)  # by kind: source, manifest, guard, engine, settings
    webhooks: Counter[str] = field(default_factory=Counter)  # by result: accepted, rejected
    ref_checks: Counter[str] = field(default_factory=Counter)  # by result: ok, error (one ls-remote each for a remote)
    image_scans: Counter[str] = field(default_factory=Counter)  # by result: ok, error
    image_updates_by_mode: Counter[str] = field(default_factory=Counter)  # commit, readonly
    registry_requests_by_host: Counter[str] = field(default_factory=Counter)  # tokens included
    up_runs: int = 0
    up_seconds_sum: float = 0.0
    up_seconds_last: float = 0.0
    drift_checks: int = 0
    drift_found: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_up(self, seconds: float, changes: dict[str, int]) -> None:
        with self._lock:
            self.up_runs += 1
            self.up_seconds_sum += seconds
            self.up_seconds_last = seconds
            for op, count in changes.items():
                if op != "same":
                    self.changes[op] += count

    def cycle(self, result: str) -> None:
        """One cycle, by result: nothing, backoff, stalled, changed, unchanged, error."""
        self._add(self.cycles, result)

    def error(self, kind: str) -> None:
        self._add(self.errors, kind)

    def ref_check(self, ok: bool) -> None:
        self._add(self.ref_checks, "ok" if ok else "error")

    def webhook(self, accepted: bool) -> None:
        self._add(self.webhooks, "accepted" if accepted else "rejected")

    def image_scan(self, ok: bool) -> None:
        self._add(self.image_scans, "ok" if ok else "error")

    def image_updates(self, mode: str, count: int) -> None:
        self._add(self.image_updates_by_mode, mode, count)

    def registry_requests(self, host: str, count: int) -> None:
        self._add(self.registry_requests_by_host, host, count)

    def drift(self, found: bool) -> None:
        with self._lock:
            self.drift_checks += 1
            self.drift_found += int(found)

    def _add(self, counter: Counter[str], label: str, amount: int = 1) -> None:
        with self._lock:
            counter[label] += amount

    def render(self) -> str:
        with self._lock:
            return render_metrics(self)


def _labels(name: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{{{name}="{escaped}"}}'


def render_metrics(m: Metrics) -> str:
    """Prometheus text exposition format 0.0.4."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value:g}")

    family("gitops_watch_cycles_total", "counter", "Watcher cycles by result.",
           [(_labels("result", k), v) for k, v in sorted(m.cycles.items())])
    # A summary without quantiles: its samples are the `_sum` and `_count` series.
    family("gitops_watch_up_duration_seconds", "summary", "Duration of pulumi up runs.", [])
    lines.append(f"gitops_watch_up_duration_seconds_sum {m.up_seconds_sum:g}")
    lines.append(f"gitops_watch_up_duration_seconds_count {m.up_runs:g}")
    family("gitops_watch_last_up_duration_seconds", "gauge", "Duration of the last pulumi up.",
           [("", m.up_seconds_last)])
    family("gitops_watch_changes_total", "counter", "Resource changes applied, by Pulumi operation.",
           [(_labels("op", k), v) for k, v in sorted(m.changes.items())])
    family("gitops_watch_errors_total", "counter", "Failed cycles by kind of error.",
           [(_labels("kind", k), v) for k, v in sorted(m.errors.items())])
    family("gitops_watch_drift_checks_total", "counter", "Drift checks run.", [("", m.drift_checks)])
    family("gitops_watch_drift_detected_total", "counter", "Drift checks that found a difference.",
           [("", m.drift_found)])
    family("gitops_watch_webhooks_total", "counter", "Webhook requests by result.",
           [(_labels("result", k), v) for k, v in sorted(m.webhooks.items())])
    family("gitops_watch_ref_checks_total", "counter", "Resolutions of the ref (one ls-remote each for a remote repo).",
           [(_labels("result", k), v) for k, v in sorted(m.ref_checks.items())])
    family("gitops_watch_image_scans_total", "counter", "Image scans by result.",
           [(_labels("result", k), v) for k, v in sorted(m.image_scans.items())])
    family("gitops_watch_image_updates_total", "counter", "Image fields moved to a new tag, by mode.",
           [(_labels("mode", k), v) for k, v in sorted(m.image_updates_by_mode.items())])
    family("gitops_watch_registry_requests_total", "counter", "Registry API requests by host.",
           [(_labels("host", k), v) for k, v in sorted(m.registry_requests_by_host.items())])
    return "\n".join(lines) + "\n"
