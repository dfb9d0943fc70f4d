"""Celery app and tasks: thin wrappers around aftercare's service functions.

`celery -A tasks worker|beat` finds the app as `tasks.celery` (Celery's own convention); `-A tasks.app` works too.
The attribute is looked up lazily so that importing one task module does not depend on this file's order."""


def __getattr__(name: str):
    # Not called `app`: that name is the tasks.app submodule, which `-A tasks.app` and `from tasks.app import` use.
    if name == "celery":
        from tasks.app import app

        return app
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")
