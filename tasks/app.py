"""The Celery app. Redis (or the embedded filesystem broker) only ever carries work that is due now."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from kombu import Queue

from aftercare.config import Settings, get_settings


def broker_options(settings: Settings) -> dict:
    if settings.embedded_broker:
        folder = (settings.home / "broker").resolve()
        control = folder / "control"  # kombu's default is ./control, in whatever folder the process started in
        control.mkdir(parents=True, exist_ok=True)
        return {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False,
                "control_folder": str(control)}
    # A task not acknowledged within this time is redelivered; our own claim lease is the real safety net.
    return {"visibility_timeout": 3600, "queue_order_strategy": "priority"}


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("aftercare", include=["tasks.dispatch", "tasks.media"])
    app.conf.update(
        broker_url=settings.effective_broker_url,
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        task_queues=(Queue("dispatch"), Queue("celery")),
        task_routes={"tasks.dispatch.tick": {"queue": "dispatch"}},
        worker_hijack_root_logger=False,
        beat_schedule={
            "dispatch-tick": {
                "task": "tasks.dispatch.tick",
                "schedule": settings.dispatch_interval,
                # A tick that waited in the queue longer than this is pointless: the next one is coming.
                "options": {"expires": max(settings.dispatch_interval * 3, 5)},
            }
        },
        beat_schedule_filename=str((settings.home / "celerybeat-schedule").resolve()),
        timezone="UTC",
    )
    return app


app = make_app()


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    # Sockets inherited from the parent process must not be shared by forked workers.
    from aftercare.channels import reset_channels
    from aftercare.db import reset_engines

    reset_engines()
    reset_channels()


@setup_logging.connect
def _our_logging(**_kwargs) -> None:
    # Connecting this signal stops Celery from installing its own handlers; ours never log message contents.
    from aftercare.logs import configure_logging

    configure_logging(get_settings().log_level)
