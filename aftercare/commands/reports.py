"""`aftercare stats` and `aftercare export`: how reminders went over a period, and one patient's whole history."""

from __future__ import annotations

import sys

import click

from aftercare.output import emit, print_json

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.command()
@click.option("--clinic", "clinic_slug", help="Only this clinic (default: all)")
@click.option("--since", help="Start of the period: a date (YYYY-MM-DD, midnight UTC) or an ISO time; default 30 "
                              "days ago")
@json_option
def stats(clinic_slug: str | None, since: str | None, as_json: bool) -> None:
    """Sent, delivered and failed by channel, reply rate, escalations, response times, review items, opt-outs."""
    from aftercare.db import session_scope
    from aftercare.models import utcnow
    from aftercare.stats import compute_stats, parse_since

    now = utcnow()
    with session_scope() as session:
        data = compute_stats(session, clinic_slug=clinic_slug, since=parse_since(since, now=now), now=now)
    if as_json:
        print_json(data)
        return
    title = f"{data['clinic'] or 'all clinics'} from {data['since'][:16]} to {data['until'][:16]} UTC"
    emit([{"channel": channel, **counts} for channel, counts in data["messages"].items()], as_json=False,
         columns=["channel", "sent", "delivered", "failed"], title=f"messages, {title}")
    rate = data["reply_rate"]
    times = {name: data[f"{name}_seconds"] for name in ("reply_to_page", "page_to_ack")}
    emit({"reply rate": f"{rate['patients_replied']}/{rate['patients_messaged']} patients"
                        + (f" ({rate['rate']:.0%})" if rate["rate"] is not None else ""),
          **{f"escalations {level}": n for level, n in data["escalations"].items()},
          **{f"{name.replace('_', ' ')} (median / p90)": _durations(t) for name, t in times.items()},
          **{f"review items {status}": n for status, n in data["review_items"].items()},
          "opt-outs": data["opt_outs"]}, as_json=False, title="replies and escalations")


def _durations(summary: dict) -> str:
    if not summary["count"]:
        return "-"
    return f"{_human(summary['median'])} / {_human(summary['p90'])} ({summary['count']})"


def _human(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@click.command()
@click.argument("patient_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["json", "csv"], case_sensitive=False), default="json",
              show_default=True)
def export(patient_id: int, fmt: str) -> None:
    """A patient's whole history for the medical record, to stdout (CSV: one row per event)."""
    from aftercare.db import session_scope
    from aftercare.export import export_patient, to_csv

    with session_scope() as session:
        history = export_patient(session, patient_id)
    if fmt == "csv":
        sys.stdout.write(to_csv(history))
    else:
        print_json(history)
