"""The Celery application's own settings (portal/celery.py)."""
def test_the_worker_logs_what_it_prints_as_information() -> None:
    """The console e-mail backend prints each e-mail; Celery logs a worker's stdout at this level."""
    from portal.celery import app

    assert app.conf.worker_redirect_stdouts_level == "INFO"
