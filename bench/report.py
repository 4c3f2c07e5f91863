"""From a run's figures to what people read: summary lines, tables, a plot.

The tables go into ``docs/performance.md`` between two markers (with
``python -m bench --docs``, which ``make bench`` passes), and the plot
beside it as ``docs/performance-latency.png``. The text around the
markers is written by hand and left alone.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.processes import REPO_ROOT
from bench.scenarios import KNEE_P99_MS


__all__ = ["markdown", "plot", "summary_lines", "targets", "update_docs"]

DOC_PATH = REPO_ROOT / "docs" / "performance.md"
PLOT_PATH = REPO_ROOT / "docs" / "performance-latency.png"
BEGIN = "<!-- bench:results:begin (written by python -m bench --docs) -->"
END = "<!-- bench:results:end -->"

# The delivery rate at which costs are compared (as in the anchors' "@10k/s").
COMPARE_AT = 10_000
# A step where other processes used more than this share of a core is
# flagged as disturbed.
_DISTURBED_CORE_SHARE = 0.15


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _with_unit(value: float | None, unit: str, digits: int) -> str:
    return f"{_num(value, digits)} {unit}".strip()


def _scenarios(results: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [s for s in results.get(group, []) if "error" not in s]


def _by_label(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for group in ("idle", "fanout", "redis", "durable"):
        for scenario in _scenarios(results, group):
            found[scenario["label"]] = scenario
    return found


def _step_at(scenario: dict[str, Any] | None, rate: int) -> dict[str, Any] | None:
    if scenario is None:
        return None
    steps: list[dict[str, Any]] = scenario.get("steps", [])
    for step in steps:
        if step["target_deliveries_per_sec"] == rate:
            return step
    return None


def _cost_at(scenario: dict[str, Any] | None, rate: int) -> float | None:
    step = _step_at(scenario, rate)
    return None if step is None else step["server_us_per_delivery"]


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# --- targets ------------------------------------------------------------------


def _verdict(value: float | None, limit: float, *, at_most: bool) -> str:
    if value is None:
        return "not measured"
    if at_most:
        if value <= limit:
            return "met"
        if limit == 0:
            return f"missed ({_num(value)})"
        return f"missed: {value / limit:.2f} times the limit"
    if value >= limit:
        return "met"
    return f"missed: {value / limit:.0%} of the target"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's performance targets against this run's figures."""
    s = _by_label(results)
    rows: list[dict[str, Any]] = []

    def add(
        name: str, value: float | None, limit: float, unit: str, *, at_most: bool
    ) -> None:
        rows.append(
            {
                "target": name,
                "measured": value,
                "limit": limit,
                "unit": unit,
                "verdict": _verdict(value, limit, at_most=at_most),
            }
        )

    for shape, label in (("f50", "fan-out 50"), ("f1000", "fan-out 1,000")):
        reference = _cost_at(s.get(f"{shape}-reference"), COMPARE_AT)
        add(
            f"CPU/delivery vs reference, {label}, in-process, @10k/s",
            _ratio(_cost_at(s.get(f"{shape}-tickmark"), COMPARE_AT), reference),
            1.3,
            "x",
            at_most=True,
        )
        add(
            f"CPU/delivery vs reference, {label}, Redis, @10k/s",
            _ratio(
                _cost_at(s.get(f"{shape}-tickmark-redis-x1"), COMPARE_AT), reference
            ),
            2.0,
            "x",
            at_most=True,
        )
    for shape, label, limit in (
        ("f50", "fan-out 50", 10.0),
        ("f1000", "fan-out 1,000", 50.0),
    ):
        scenario = s.get(f"{shape}-tickmark")
        p99 = None
        if scenario is not None and scenario.get("half_knee_step") is not None:
            p99 = scenario["half_knee_p99_ms"]
        add(f"p99 at half the knee, {label}", p99, limit, "ms", at_most=True)
        if scenario is not None and p99 is None and scenario.get("steps"):
            lowest = scenario["steps"][0]
            rows[-1]["verdict"] = (
                f"missed: no step held p99 < {KNEE_P99_MS:.0f} ms with 0 lost "
                f"(lowest step, {lowest['target_deliveries_per_sec']:,}/s: "
                f"p99 {lowest['latency_ms']['p99']:,.0f} ms)"
            )
    for label, limit in (("idle-tickmark", 20.0), ("idle-tickmark-deflate", 32.0)):
        scenario = s.get(label)
        value = scenario["ladder"][-1]["rss_per_connection_kib"] if scenario else None
        name = "RSS per idle authenticated connection" + (
            ", compression negotiated" if "deflate" in label else ""
        )
        add(name, value, limit, "KiB", at_most=True)
    durable = s.get("durable")
    add(
        "durable posts per second, one process with Redis",
        durable["durable_posts_per_sec"] if durable else None,
        2000.0,
        "posts/s",
        at_most=False,
    )
    for shape, label in (("f50", "fan-out 50"), ("f1000", "fan-out 1,000")):
        add(
            f"two processes: summed CPU/delivery vs one, {label}, @10k/s",
            _ratio(
                _cost_at(s.get(f"{shape}-tickmark-redis-x2"), COMPARE_AT),
                _cost_at(s.get(f"{shape}-tickmark-redis-x1"), COMPARE_AT),
            ),
            1.2,
            "x",
            at_most=True,
        )
    storm = (s.get("f50-tickmark") or {}).get("storm")
    add(
        "reconnect storm: all recovered within",
        storm["all_recovered_secs"] if storm else None,
        30.0,
        "s",
        at_most=True,
    )
    add(
        "reconnect storm: lost + duplicated",
        (storm["lost"] + storm["duplicated"] + storm["not_recovered"])
        if storm
        else None,
        0.0,
        "",
        at_most=True,
    )
    return rows


# --- lines and tables ---------------------------------------------------------


def summary_lines(results: dict[str, Any]) -> list[str]:
    """One line per scenario."""
    lines = []
    labels = _by_label(results)
    for group in ("idle", "fanout", "redis", "durable"):
        for scenario in results.get(group, []):
            label = scenario["label"]
            if "error" in scenario:
                lines.append(f"{label}: FAILED {scenario['error']}")
                continue
            if group == "idle":
                top = scenario["ladder"][-1]
                lines.append(
                    f"{label}: {top['connected']:,} conns, "
                    f"{top['rss_per_connection_kib']:.1f} KiB/conn, "
                    f"{top['connects_per_sec']:,.0f} conn/s, "
                    f"upgrade p99 {top['upgrade_ms']['p99']:.0f} ms, "
                    f"ready p99 {top['ready_ms']['p99']:.0f} ms, "
                    f"failed {sum(top['failures'].values())}"
                )
            elif group == "durable":
                lines.append(
                    f"{label}: {scenario['durable_posts_per_sec']:,.0f} posts/s "
                    f"sustained (stored, acked, fanned out to {scenario['fanout']}), "
                    f"best acked {scenario['best_acked_per_sec']:,.0f}/s"
                )
            else:
                lines.append(_fanout_line(scenario, labels))
            if "storm" in scenario:
                storm = scenario["storm"]
                lines.append(
                    f"{label} storm: {storm['clients']:,} clients recovered in "
                    f"{_num(storm['all_recovered_secs'], 1)} s "
                    f"(p50 {storm['recovered_ms']['p50'] / 1000:.1f} s), "
                    f"lost {storm['lost']}, duplicated {storm['duplicated']}, "
                    f"not recovered {storm['not_recovered']}"
                )
    return lines


def _fanout_line(scenario: dict[str, Any], labels: dict[str, dict[str, Any]]) -> str:
    label = scenario["label"]
    step = _step_at(scenario, COMPARE_AT)
    reference = labels.get(f"{scenario['shape']}-reference")
    ratio = _ratio(_cost_at(scenario, COMPARE_AT), _cost_at(reference, COMPARE_AT))
    lost = sum(s["lost"] for s in scenario["steps"])
    duplicated = sum(s["duplicated"] for s in scenario["steps"])
    text = f"{label}: knee {scenario['knee_deliveries_per_sec']:,}/s"
    if step is not None:
        text += (
            f"; @10k/s p99 {step['latency_ms']['p99']:.1f} ms, "
            f"{_num(step['server_us_per_delivery'], 1)} us CPU/delivery"
        )
        if ratio is not None and scenario["kind"] != "reference":
            text += f" ({ratio:.2f}x reference)"
    return text + f"; lost {lost}, duplicated {duplicated}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    return out


def _other_load(results: dict[str, Any]) -> float:
    shares = [
        step["usage"]["other_core_share"]
        for group in ("fanout", "redis", "durable")
        for scenario in _scenarios(results, group)
        for step in scenario.get("steps", [])
    ]
    return max(shares, default=0.0)


def markdown(results: dict[str, Any]) -> str:
    """Every table of the run, as Markdown."""
    env = results["environment"]
    out = [
        f"Run of {env['started_at']} on commit `{env['commit']}`"
        + (
            " with uncommitted changes in "
            + ", ".join(env["server_files_changed_since_commit"])
            if env["server_files_changed_since_commit"]
            else ""
        )
        + f"; {results.get('total_secs', 0) / 60:.1f} minutes in all; "
        f"Python {env['python']}, websockets {env['websockets']}, "
        f"uvicorn {env['uvicorn']}, starlette {env['starlette']}; "
        f"most CPU used by other processes during a step: "
        f"{_other_load(results):.0%} of a core.",
        "",
        "### Targets",
        "",
    ]
    out += _table(
        ["target", "limit", "measured", "verdict"],
        (
            [
                r["target"],
                _with_unit(r["limit"], r["unit"], 1 if r["unit"] == "x" else 0),
                _with_unit(r["measured"], r["unit"], 2 if r["unit"] == "x" else 1),
                r["verdict"],
            ]
            for r in targets(results)
        ),
    )
    out += ["", "### Idle connections (3 channels each)", ""]
    out += _table(
        [
            "server",
            "connections",
            "RSS/conn KiB",
            "connects/s",
            "upgrade p50 / p99 ms",
            "subscribed p50 / p99 ms",
            "server CPU ms/connect",
            "failed",
        ],
        (
            [
                s["label"].removeprefix("idle-"),
                f"{row['connections']:,}",
                f"{row['rss_per_connection_kib']:.1f}",
                f"{row['connects_per_sec']:,.0f}",
                f"{row['upgrade_ms']['p50']:.0f} / {row['upgrade_ms']['p99']:.0f}",
                f"{row['ready_ms']['p50']:.0f} / {row['ready_ms']['p99']:.0f}",
                f"{row['server_ms_per_connect']:.2f}",
                str(sum(row["failures"].values())),
            ]
            for s in _scenarios(results, "idle")
            for row in s["ladder"]
        ),
    )
    out += ["", "### Fan-out ladders", ""]
    out += _fanout_table(results)
    out += ["", "### Knees and costs against the reference", ""]
    out += _knee_table(results)
    out += _durable_section(results)
    out += _storm_section(results)
    out += _frames_section(results)
    return "\n".join(out) + "\n"


def _fanout_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for group in ("fanout", "redis"):
        for s in _scenarios(results, group):
            for step in s["steps"]:
                lat = step["latency_ms"]
                disturbed = step["usage"]["other_core_share"] > _DISTURBED_CORE_SHARE
                rows.append(
                    [
                        s["label"],
                        f"{step['target_deliveries_per_sec']:,}",
                        f"{step['deliveries_per_sec']:,.0f}",
                        f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / "
                        f"{lat['max']:.0f}",
                        _num(step["server_us_per_delivery"], 1),
                        f"{step['usage']['server_core_share']:.0%}",
                        f"{step['usage']['postgres_core_share']:.0%}",
                        f"{step['lost']} / {step['duplicated']} / {step['reordered']}",
                        ("yes" if step["sustained"] else "no")
                        + (" (disturbed)" if disturbed else ""),
                    ]
                )
    return _table(
        [
            "config",
            "target deliv/s",
            "delivered/s",
            "latency p50 / p95 / p99 / max ms",
            "server µs CPU/delivery",
            "server core",
            "PostgreSQL",
            "lost / dup / reordered",
            "sustained",
        ],
        rows,
    )


def _knee_table(results: dict[str, Any]) -> list[str]:
    labels = _by_label(results)
    rows = []
    for group in ("fanout", "redis"):
        for s in _scenarios(results, group):
            reference = labels.get(f"{s['shape']}-reference")
            costs = []
            for rate in (5_000, 10_000, 20_000):
                ratio = _ratio(_cost_at(s, rate), _cost_at(reference, rate))
                costs.append("–" if ratio is None else f"{ratio:.2f}x")
            best = min(
                (
                    st["server_us_per_delivery"]
                    for st in s["steps"]
                    if st["server_us_per_delivery"]
                ),
                default=None,
            )
            rows.append(
                [
                    s["label"],
                    f"{s['knee_deliveries_per_sec']:,}",
                    _num(s.get("half_knee_p99_ms"), 1),
                    _num(best, 1),
                    *costs,
                ]
            )
    return _table(
        [
            "config",
            f"knee (p99 < {KNEE_P99_MS:.0f} ms, 0 lost)",
            "p99 at half knee ms",
            "best µs CPU/delivery",
            "cost vs ref @5k/s",
            "@10k/s",
            "@20k/s",
        ],
        rows,
    )


def _durable_section(results: dict[str, Any]) -> list[str]:
    scenarios = _scenarios(results, "durable")
    if not scenarios:
        return []
    s = scenarios[0]
    out = [
        "",
        f"### Durable posts ({s['channels']} transactions, {s['fanout']} subscribers "
        "each, one process with Redis)",
        "",
    ]
    rows = []
    for step in s["steps"]:
        usage = step["usage"]
        rows.append(
            [
                f"{step['target_posts_per_sec']:,.0f}",
                f"{step['posts_per_sec']:,.0f}",
                f"{step['acked'] / max(1e-9, usage['wall_secs']):,.0f}",
                f"{step['ack_ms']['p50']:.1f} / {step['ack_ms']['p99']:.1f}",
                f"{step['latency_ms']['p50']:.1f} / {step['latency_ms']['p99']:.1f}",
                _num(step["server_us_per_post"], 0),
                f"{usage['server_core_share']:.0%}",
                f"{usage['postgres_core_share']:.0%}",
                f"{usage['redis_core_share']:.0%}",
                f"{step['lost']} / {step['duplicated']}",
                "yes" if step["sustained"] else "no",
            ]
        )
    out += _table(
        [
            "target posts/s",
            "sent/s",
            "acked/s",
            "ack p50 / p99 ms",
            "delivery p50 / p99 ms",
            "server µs CPU/post",
            "server core",
            "PostgreSQL",
            "Redis",
            "lost / dup",
            "sustained",
        ],
        rows,
    )
    return out


def _storm_section(results: dict[str, Any]) -> list[str]:
    for s in _scenarios(results, "fanout"):
        storm = s.get("storm")
        if storm is None:
            continue
        return [
            "",
            "### Reconnect storm",
            "",
            f"{storm['clients']:,} subscribers of {s['label']} dropped at once (no "
            f"close frame) while {storm['posts_per_sec']} posts/s continued; each "
            "came back with `since` set to its last position. "
            f"Reconnected {storm['reconnected']:,} in {storm['reconnect_secs']:.1f} s "
            f"({storm['retries']} retries after refusals, failures "
            f"{storm['reconnect_failures'] or 'none'}); subscribed p50 / p99 "
            f"{storm['ready_ms']['p50']:.0f} / {storm['ready_ms']['p99']:.0f} ms; "
            f"recovered (every message up to the head it was told of) p50 / p99 / "
            f"all {storm['recovered_ms']['p50'] / 1000:.1f} / "
            f"{storm['recovered_ms']['p99'] / 1000:.1f} / "
            f"{_num(storm['all_recovered_secs'], 1)} s; not recovered "
            f"{storm['not_recovered']}; posts {storm['posts_acked']:,} acked of "
            f"{storm['posts_sent']:,}; deliveries expected {storm['expected']:,}, "
            f"lost {storm['lost']}, duplicated {storm['duplicated']}, reordered "
            f"{storm['reordered']}; server core "
            f"{storm['usage']['server_core_share']:.0%}, PostgreSQL "
            f"{storm['usage']['postgres_core_share']:.0%}.",
        ]
    return []


def _frames_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for group in ("idle", "fanout", "redis", "durable"):
        for s in _scenarios(results, group):
            frames = s.get("frames", {})
            sizes = s.get("frame_bytes", {})
            listed = ", ".join(
                f"{kind} {count:,} ({sizes.get(kind, 0) / 1e6:.1f} MB)"
                for kind, count in sorted(frames.items())
            )
            closes = s.get("closed_by_server") or {}
            errors = s.get("errors") or {}
            rows.append(
                [
                    s["label"],
                    listed or "–",
                    ", ".join(f"{k}: {v}" for k, v in errors.items()) or "–",
                    ", ".join(f"{k}: {v}" for k, v in closes.items()) or "–",
                ]
            )
    return [
        "",
        "### Frames other than messages that subscribers received",
        "",
        *_table(["config", "frames by type", "error codes", "closed by server"], rows),
    ]


# --- the plot -----------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Latency against delivery rate, one panel per fan-out; None without matplotlib."""
    try:
        # Imported by name: matplotlib is in the ``bench`` extra only, and
        # the type checks run where just the ``test`` extra is installed.
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    styles = {
        "reference": ("tab:gray", "o"),
        "tickmark": ("tab:blue", "s"),
        "tickmark-redis-x1": ("tab:orange", "^"),
        "tickmark-redis-x2": ("tab:green", "v"),
    }
    for axis, shape, title in zip(
        axes,
        ("f1000", "f50"),
        ("1 channel × 1,000 subscribers", "100 channels × 50"),
        strict=True,
    ):
        for group in ("fanout", "redis"):
            for s in _scenarios(results, group):
                if s["shape"] != shape:
                    continue
                variant = s["label"].removeprefix(shape + "-")
                color, marker = styles.get(variant, ("black", "x"))
                rates = [st["deliveries_per_sec"] for st in s["steps"]]
                axis.plot(
                    rates,
                    [st["latency_ms"]["p99"] for st in s["steps"]],
                    color=color,
                    marker=marker,
                    label=f"{variant} p99",
                )
                axis.plot(
                    rates,
                    [max(0.05, st["latency_ms"]["p50"]) for st in s["steps"]],
                    color=color,
                    marker=marker,
                    linestyle="--",
                    alpha=0.6,
                    label=f"{variant} p50",
                )
        axis.axhline(KNEE_P99_MS, color="red", linewidth=0.8, linestyle=":")
        axis.set_title(f"fan-out: {title}")
        axis.set_xlabel("deliveries per second")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("publish-to-delivery latency, ms")
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="upper left")
    env = results["environment"]
    figure.suptitle(
        f"Tickmark vs reference, same run ({env['started_at'][:16]}, {env['commit']}); "
        f"dotted: the {KNEE_P99_MS:.0f} ms knee",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def update_docs(tables: str, plot_path: Path | None) -> None:
    """Put the tables between the markers of docs/performance.md; copy the plot.

    Raises:
        RuntimeError: the document lacks the markers.

    """
    text = DOC_PATH.read_text() if DOC_PATH.exists() else ""
    if BEGIN not in text or END not in text:
        raise RuntimeError(f"{DOC_PATH} has no {BEGIN!r} ... {END!r} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC_PATH.write_text(head + BEGIN + "\n\n" + tables + "\n" + END + tail)
    if plot_path is not None:
        shutil.copyfile(plot_path, PLOT_PATH)
