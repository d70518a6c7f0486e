"""The worker's logging: faust's terminal spinner would set the root logger to DEBUG, building a record for every
debug line of aiokafka and faust (one per message sent) that nothing prints."""

from __future__ import annotations

import logging
from pathlib import Path

from consentflow.streams.worker import WorkerSettings, build_app, faust_worker


def test_the_worker_keeps_the_root_logger_at_its_level(tmp_path: Path) -> None:
    app = build_app(WorkerSettings(prefix="logging-test", app_id="logging-test-w", data_dir=tmp_path, store="memory://"))
    worker = faust_worker(app, "warning")
    root = logging.Logger("root-under-test", logging.WARNING)
    root.addHandler(logging.StreamHandler())
    worker.on_setup_root_logger(root, logging.WARNING)  # what faust calls when it configures logging
    assert root.level == logging.WARNING
    assert not root.isEnabledFor(logging.DEBUG)
    assert len(root.handlers) == 1  # no spinner handler
