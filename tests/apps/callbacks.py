"""A Hydra callback that records what it sees at the end of every job."""

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class RecordJobEnd(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        out = Path(config.hydra.runtime.output_dir) / "job_end.txt"
        out.write_text(f"{job_return.status.name} {job_return._return_value!r}")
