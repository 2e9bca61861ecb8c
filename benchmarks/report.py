"""The results: the table on stdout, the targets, the JSON file and the PNG chart."""

import json
from pathlib import Path

from s3zip_dagster.core.limits import GiB, MiB

from .contenders import NAMES

MB = 1_000_000


def _ratio(value, base) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}"


def _through(run: dict) -> int:
    return run["http"]["sent_bytes"] + run["http"]["received_bytes"]


def table(results: dict) -> str:
    """One line per set and contender; ratios are to contender (a) on the same set."""
    head = (f"{'set':6} {'contender':26} {'status':7} {'time s':>8} {'/a':>5} "
            f"{'through MB':>11} {'/a':>6} {'%arch':>7} {'requests':>9} {'/a':>6} "
            f"{'extra MB':>9} {'peak MiB':>9} {'/a':>5} {'steps':>5}")
    lines = [head, "-" * len(head)]
    for name, data in results["sets"].items():
        runs = data["contenders"]
        base = runs.get("a") if runs.get("a", {}).get("ok") else None
        for letter, run in runs.items():
            label = f"({letter}) {NAMES[letter]}"
            if not run["ok"]:
                lines.append(f"{name:6} {label:26} FAILED  {run['error'][:120]}")
                continue
            through = _through(run)
            requests = sum(run["http"]["requests"].values())
            extra = run["figures"].get("extra_copied_bytes")
            steps = run["figures"].get("dagster_steps", "-")
            b = base or {}
            lines.append(
                f"{name:6} {label:26} {'ok':7} {run['seconds']:8.1f} "
                f"{_ratio(run['seconds'], b.get('seconds')):>5} {through / MB:11.1f} "
                f"{_ratio(through, _through(b) if b else None):>6} "
                f"{through / run['archive_bytes']:7.1%} {requests:9d} "
                f"{_ratio(requests, sum(b['http']['requests'].values()) if b else None):>6} "
                f"{'-' if extra is None else f'{extra / MB:.1f}':>9} "
                f"{run['peak_memory'] / MiB:9.0f} "
                f"{_ratio(run['peak_memory'], b.get('peak_memory')):>5} {steps:>5}")
    return "\n".join(lines)


def requests_by_operation(results: dict) -> str:
    lines = []
    for name, data in results["sets"].items():
        for letter, run in data["contenders"].items():
            if run["ok"]:
                answers = run["http"].get("answers", {})
                ops = []
                for op, sent in sorted(run["http"]["requests"].items()):
                    lost = sent - answers.get(op, sent)
                    ops.append(f"{op} {sent}" + (f" ({lost} unanswered)" if lost else ""))
                lines.append(f"{name:6} ({letter}) {', '.join(ops)}")
    return "\n".join(lines)


def _run(results: dict, set_name: str, letter: str) -> dict | None:
    run = results["sets"].get(set_name, {}).get("contenders", {}).get(letter)
    return run if run and run["ok"] else None


def targets(results: dict) -> list[dict]:
    """Each target of the issue with its measured value; met is None when not measured."""
    found = []

    def add(name: str, met, measured: str) -> None:
        found.append({"target": name, "met": met, "measured": measured})

    for letter in ("d", "e"):
        run = _run(results, "big", letter)
        if run:
            share = _through(run) / run["archive_bytes"]
            add(f"big-heavy: ({letter}) bytes through workers <= 1% of the archive",
                share <= 0.01, f"{_through(run):,} B = {share:.3%} of {run['archive_bytes']:,} B")
        else:
            add(f"big-heavy: ({letter}) bytes through workers <= 1% of the archive", None,
                "not run or failed")

    for letter in ("d", "e"):
        run = _run(results, "seed", letter)
        name = f"seed shape: ({letter}) bytes through <= 2 x small bytes + 1 MiB per batch"
        if run:
            small = results["sets"]["seed"]["small_bytes"]
            batches = run["figures"].get("batches", 1)
            limit = 2 * small + batches * MiB
            add(name, _through(run) <= limit,
                f"{_through(run):,} B; limit {limit:,} B (small {small:,} B, {batches} batches)")
        else:
            add(name, None, "not run or failed")

    a, d = _run(results, "big", "a"), _run(results, "big", "d")
    add("big-heavy: (d) at least 3x faster than (a)",
        (a["seconds"] / d["seconds"] >= 3) if a and d else None,
        f"(a) {a['seconds']:.1f} s / (d) {d['seconds']:.1f} s = "
        f"{a['seconds'] / d['seconds']:.1f}x" if a and d else "not run or failed")
    for set_name in results["sets"]:
        b, d = _run(results, set_name, "b"), _run(results, set_name, "d")
        add(f"{set_name}: (d) faster than (b)",
            (d["seconds"] < b["seconds"]) if b and d else None,
            f"(d) {d['seconds']:.1f} s, (b) {b['seconds']:.1f} s" if b and d
            else "not run or failed")

    d, e = _run(results, "seed", "d"), _run(results, "seed", "e")
    add("seed shape: (e) - (d) <= 10 s", (e["seconds"] - d["seconds"] <= 10) if d and e else None,
        f"(e) {e['seconds']:.1f} s - (d) {d['seconds']:.1f} s = "
        f"{e['seconds'] - d['seconds']:.1f} s" if d and e else "not run or failed")

    scale = results.get("planner")
    if scale and "seconds" in scale:
        add(f"planner: {scale['entries']:,} entries in <= 10 s", scale["seconds"] <= 10,
            f"{scale['seconds']:.1f} s")
        add(f"planner: {scale['entries']:,} entries in <= 2 GB",
            scale["peak_memory"] <= 2 * GiB, f"peak {scale['peak_memory'] / MiB:.0f} MiB")
    else:
        add("planner: 1,000,000 entries in <= 10 s and <= 2 GB", None, "not run")
    return found


def targets_text(found: list[dict]) -> str:
    marks = {True: "met   ", False: "MISSED", None: "n/a   "}
    return "\n".join(f"{marks[t['met']]} {t['target']}: {t['measured']}" for t in found)


def save_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def save_chart(results: dict, path: Path) -> None:
    """Time and bytes through our processes, per contender, one column per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(results["sets"])
    width = max(4.2 * len(sets), 8.5)  # room for the title when there is one set
    figure, axes = plt.subplots(2, len(sets), figsize=(width, 7), squeeze=False)
    colours = {"a": "#8c8c8c", "b": "#d98c3f", "c": "#6a9fd4", "d": "#2b6cb0", "e": "#38a169"}
    for column, set_name in enumerate(sets):
        data = results["sets"][set_name]
        runs = data["contenders"]
        letters = list(runs)
        for row, (label, value) in enumerate((
                ("wall time (s)", lambda r: r["seconds"]),
                ("bytes through our processes (MB)", lambda r: _through(r) / MB))):
            ax = axes[row][column]
            heights = [value(runs[x]) if runs[x]["ok"] else 0 for x in letters]
            bars = ax.bar(letters, heights, color=[colours.get(x, "#999") for x in letters])
            for bar, letter, height in zip(bars, letters, heights, strict=True):
                text = f"{height:.1f}" if runs[letter]["ok"] else "failed"
                ax.annotate(text, (bar.get_x() + bar.get_width() / 2, height),
                            ha="center", va="bottom", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.margins(y=0.15)
            if row == 0:
                ax.set_title(f"{data['title']}\narchive {data['archive_bytes'] / MB:,.0f} MB",
                             fontsize=9)
    names = [f"({x}) {n}" for x, n in NAMES.items()]
    legend = ", ".join(names[:3]) + ",\n" + ", ".join(names[3:])
    figure.suptitle(f"s3zip-dagster make bench, {results['threads']} threads, local "
                    f"SeaweedFS\n{legend}", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
